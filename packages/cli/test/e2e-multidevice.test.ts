// Multi-device end to end: a phone (primary), a linked laptop and Bob, against a real server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { directChatId, openClient, type ParleyClient, sendHistory } from "@parley/client";
import { SqliteStorage } from "@parley/server";
import { encodePublicKey, generateKeyPair } from "@parley/signal";
import { encodeDeviceList, encodeSignedDeviceList } from "@parley/wire";
import { newUser, startTestServer, tempDir, waitFor } from "./helpers.ts";

async function link(phone: ParleyClient, url: string): Promise<{ laptop: ParleyClient; device: number }> {
  const laptop = await openClient({ dir: tempDir("laptop"), serverUrl: url, preKeyBatch: 5 });
  const request = await laptop.createLinkRequest();
  const [device, linked] = await Promise.all([phone.acceptLink(request.code), request.linked]);
  assert.equal(linked.device, device);
  assert.equal(linked.user, phone.accountName);
  await laptop.start();
  return { laptop, device };
}

describe("multi-device", () => {
  it("links a laptop: history, fan-out to both devices, sent-message sync, read sync, revocation, device-list checks", async () => {
    const env = await startTestServer();
    const phone = await newUser("alice", env.url);
    const bob = await newUser("bob", env.url);
    let laptop: ParleyClient | undefined;
    try {
      // 1,000 messages of history on the phone before the laptop exists.
      const ids = Array.from({ length: 1000 }, (_, i) => phone.queueText("bob", `history ${i}`));
      await Promise.all(ids.map((id) => phone.waitForStatus(id, "delivered", 120_000)));
      await bob.sendText("alice", "last before linking");
      await waitFor(() => phone.store.countMessages(directChatId("bob")) === 1001, 20_000, "phone has 1,001");

      const linked = await link(phone, env.url);
      laptop = linked.laptop;
      const imported = new Promise<number>((r) => laptop!.once("history-imported", (e) => r(e.count)));
      assert.equal(await sendHistory(phone, linked.device), 1001);
      assert.equal(await imported, 1001);
      const phoneHistory = phone.store.history(directChatId("bob"), { limit: 1000 }).messages.map((m) => m.id);
      const laptopHistory = laptop.store.history(directChatId("bob"), { limit: 1000 }).messages.map((m) => m.id);
      assert.deepEqual(laptopHistory, phoneHistory, "complete and in order");
      assert.equal(laptop.store.countMessages(directChatId("bob")), 1001);

      // Bob's next message reaches both of Alice's devices (his client learns the new, signed list).
      const onPhone: string[] = [];
      const onLaptop: string[] = [];
      phone.on("message", (e) => onPhone.push(e.message.body ?? ""));
      laptop.on("message", (e) => onLaptop.push(e.message.body ?? ""));
      const toBoth = await bob.sendText("alice", "to both of your devices");
      await waitFor(
        () => onPhone.includes("to both of your devices") && onLaptop.includes("to both of your devices"),
        20_000,
        "both devices",
      );
      await bob.waitForStatus(toBoth, "delivered");

      // The laptop sends while the phone is offline; the phone later shows it as sent by me.
      await phone.stop();
      const atBob: string[] = [];
      bob.on("message", (e) => atBob.push(e.message.body ?? ""));
      const fromLaptop = await laptop.sendText("bob", "sent from the laptop");
      await waitFor(() => atBob.includes("sent from the laptop"), 20_000, "bob gets the laptop's message");
      await phone.start();
      await waitFor(() => phone.store.getMessage("alice", fromLaptop), 20_000, "phone syncs the sent message");
      const synced = phone.store.getMessage("alice", fromLaptop)!;
      assert.equal(synced.direction, "out");
      assert.ok(["sent", "delivered", "read"].includes(synced.status));

      // Read on the laptop: Bob's ticks turn blue, and the phone marks it read too.
      const readMe = await bob.sendText("alice", "read me on the laptop");
      await waitFor(
        () => onLaptop.includes("read me on the laptop") && onPhone.includes("read me on the laptop"),
        20_000,
        "read-me arrives",
      );
      laptop.markRead("bob");
      await bob.waitForStatus(readMe, "read");
      await waitFor(
        () => phone.store.getMessage("bob", readMe)?.status === "read",
        20_000,
        "read state synced to the phone",
      );

      // A forged or unsigned device list is rejected by Bob's client.
      const storage = new SqliteStorage({ dataDir: env.dataDir });
      const aliceId = (await storage.getAccountByName("alice"))!.id;
      const genuine = (await storage.getDeviceList(aliceId))!;
      const forger = generateKeyPair();
      const list = encodeDeviceList({
        user: "alice",
        version: genuine.version + 1,
        devices: [
          { id: 1, identityKey: encodePublicKey(forger.publicKey) },
          { id: linked.device, identityKey: encodePublicKey(forger.publicKey) },
        ],
      });
      await storage.setDeviceList(aliceId, {
        version: genuine.version + 1,
        blob: encodeSignedDeviceList(list, new Uint8Array(64)),
      });
      await assert.rejects(
        bob.verifiedDevices("alice"),
        (e: Error & { code?: string }) => e.code === "UNTRUSTED_DEVICE_LIST",
      );
      // Unsigned: the list bytes alone, no signature.
      const unsigned = encodeDeviceList({
        user: "alice",
        version: genuine.version + 2,
        devices: [
          { id: 1, identityKey: encodePublicKey(forger.publicKey) },
          { id: linked.device, identityKey: encodePublicKey(forger.publicKey) },
        ],
      });
      await storage.setDeviceList(aliceId, { version: genuine.version + 2, blob: unsigned });
      await assert.rejects(
        bob.verifiedDevices("alice"),
        (e: Error & { code?: string }) => e.code === "UNTRUSTED_DEVICE_LIST",
      );
      await storage.close();
      await phone.republishDeviceList(); // the primary re-signs and publishes the genuine list
      assert.deepEqual(await bob.verifiedDevices("alice"), [1, linked.device]);

      // Revoking the laptop: it gets nothing from that moment, although its process keeps trying.
      const laptopCount = laptop.store.countMessages(directChatId("bob"));
      const states: string[] = [];
      laptop.on("connection", (e) => states.push(e.state));
      await phone.unlinkDevice(linked.device);
      await waitFor(() => states.includes("disconnected"), 20_000, "laptop disconnected");
      assert.deepEqual(await bob.verifiedDevices("alice"), [1]);
      const afterRevoke = await bob.sendText("alice", "after the laptop was unlinked");
      await waitFor(() => onPhone.includes("after the laptop was unlinked"), 20_000, "phone still gets messages");
      await bob.waitForStatus(afterRevoke, "delivered");
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(laptop.store.countMessages(directChatId("bob")), laptopCount, "nothing reaches the revoked laptop");
      assert.ok(!onLaptop.includes("after the laptop was unlinked"));
      assert.notEqual(laptop.connectionState, "connected");
    } finally {
      await laptop?.stop();
      await phone.stop();
      await bob.stop();
      await env.stop();
    }
  });

  it("refuses wrong, reused and expired link codes", async () => {
    const env = await startTestServer();
    const phone = await newUser("alice", env.url);
    try {
      await assert.rejects(
        phone.acceptLink("parley-link:garbage!"),
        (e: Error & { code?: string }) => e.code === "BAD_CODE",
      );
      const laptop = await openClient({ dir: tempDir("laptop2"), serverUrl: env.url, preKeyBatch: 5 });
      const request = await laptop.createLinkRequest();
      await Promise.all([phone.acceptLink(request.code), request.linked]);
      await assert.rejects(phone.acceptLink(request.code), (e: Error & { code?: string }) => e.code === "gone");
      // A well-formed code nobody waits for.
      const other = await openClient({ dir: tempDir("laptop3"), serverUrl: env.url, preKeyBatch: 5 });
      const pending = await other.createLinkRequest();
      await other.stop();
      const forgedRef = `${pending.code.slice(0, -8)}AAAAAAAA`;
      await assert.rejects(phone.acceptLink(forgedRef), (e: Error & { code?: string }) =>
        ["BAD_CODE", "EXPIRED_CODE", "not-found", "gone"].includes(e.code ?? ""),
      );
      // An expired code is refused before anything is sent.
      const expiredClient = await openClient({
        dir: tempDir("laptop4"),
        serverUrl: env.url,
        preKeyBatch: 5,
        now: () => Date.now() - 3_600_000,
      });
      const expired = await expiredClient.createLinkRequest();
      await assert.rejects(phone.acceptLink(expired.code), (e: Error & { code?: string }) => e.code === "EXPIRED_CODE");
      await expiredClient.stop();
      await laptop.stop();
    } finally {
      await phone.stop();
      await env.stop();
    }
  });
});
