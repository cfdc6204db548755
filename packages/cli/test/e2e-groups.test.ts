// Groups end to end (docs/groups.md): real server, real clients with two devices each.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type GroupEvent, groupChatId, openClient, type ParleyClient } from "@parley/client";
import { queueShardFileName, ShardedStorage, SqliteStorage } from "@parley/server";
import { groupDecrypt, SenderKeyRecord, xeddsaSign } from "@parley/signal";
import {
  decodeStanza,
  encodeGroupChange,
  encodeSignedGroupChange,
  encodeStanza,
  groupChangeSignedBytes,
} from "@parley/wire";
import Database from "better-sqlite3";
import { newUser, startTestServer, tempDir, waitFor } from "./helpers.ts";

type Env = Awaited<ReturnType<typeof startTestServer>>;

interface Person {
  name: string;
  phone: ParleyClient;
  laptop: ParleyClient;
}

async function linkLaptop(phone: ParleyClient, url: string): Promise<ParleyClient> {
  const laptop = await openClient({ dir: tempDir("laptop"), serverUrl: url, preKeyBatch: 5 });
  const request = await laptop.createLinkRequest();
  await Promise.all([phone.acceptLink(request.code), request.linked]);
  await laptop.start();
  return laptop;
}

async function person(name: string, url: string): Promise<Person> {
  const phone = await newUser(name, url);
  return { name, phone, laptop: await linkLaptop(phone, url) };
}

const devices = (people: Person[]) => people.flatMap((p) => [p.phone, p.laptop]);
const bodies = (c: ParleyClient, group: string) =>
  c.store
    .history(groupChatId(group), { limit: 1000 })
    .messages.map((m) => m.body)
    .reverse(); // history pages newest first

/** Records every verified group event a client applies. */
function recordChanges(c: ParleyClient): GroupEvent[] {
  const events: GroupEvent[] = [];
  c.on("group", (e) => events.push(e));
  return events;
}

describe("groups", () => {
  let env: Env;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let dave: Person;
  const errors = new Map<ParleyClient, Error[]>();

  before(async () => {
    env = await startTestServer();
    [alice, bob, carol, dave] = (await Promise.all(
      ["alice", "bob", "carol", "dave"].map((n) => person(n, env.url)),
    )) as [Person, Person, Person, Person];
    for (const c of devices([alice, bob, carol, dave])) {
      const list: Error[] = [];
      errors.set(c, list);
      c.on("error", (e) => list.push(e.error));
    }
  });
  after(async () => {
    for (const c of devices([alice, bob, carol, dave])) await c.stop();
    await env.stop();
    rmSync(env.dataDir, { recursive: true, force: true }); // restarted on the same data: stop() keeps it
  });

  it("4 members × 2 devices: create, messages in order on every device, per-member receipts, blue when all read", async () => {
    const seen = devices([alice, bob, carol, dave]).map(recordChanges);
    const g = await alice.phone.createGroup("Team", ["bob", "carol", "dave"]);
    assert.equal(g.members.length, 4);
    // Every other device verifies and applies the creation (alice's laptop too).
    await waitFor(() => seen.every((s, i) => i === 0 || s.some((e) => e.group === g.id)), 20_000, "create everywhere");
    for (const c of devices([alice, bob, carol, dave])) assert.equal(c.group(g.id)?.subject, "Team");

    // Messages from three members, interleaved; each device sees each sender's messages in order.
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      for (const p of [alice, bob, carol]) sent.push(p.phone.queueGroupText(g.id, `${p.name} ${i}`));
    }
    const everyone = devices([alice, bob, carol, dave]);
    await waitFor(() => everyone.every((c) => bodies(c, g.id).length === 15), 30_000, "15 messages on 8 devices").catch(
      (err) => {
        for (const c of everyone)
          console.log(c.accountName, c.deviceId, bodies(c, g.id).length, errors.get(c)?.map(String));
        throw err;
      },
    );
    for (const c of everyone) {
      for (const p of [alice, bob, carol]) {
        const mine = bodies(c, g.id).filter((b) => b?.startsWith(`${p.name} `));
        assert.deepEqual(
          mine,
          [0, 1, 2, 3, 4].map((i) => `${p.name} ${i}`),
          `${c.accountName}.${c.deviceId} order`,
        );
      }
    }

    // Per-member receipts: delivered once every member has it; blue only when every member read it.
    const id = await alice.phone.sendGroupText(g.id, "who read this?");
    await alice.phone.waitForStatus(id, "delivered", 20_000);
    await waitFor(() => bodies(dave.laptop, g.id).includes("who read this?"), 20_000, "dave has it");
    bob.phone.markGroupRead(g.id);
    carol.laptop.markGroupRead(g.id);
    await waitFor(
      () => alice.phone.receiptsOf(id).filter((r) => r.status === "read").length === 2,
      20_000,
      "bob's and carol's read receipts",
    );
    assert.equal(alice.phone.store.getMessage("alice", id)?.status, "delivered", "not blue while dave has not read");
    dave.phone.markGroupRead(g.id);
    await alice.phone.waitForStatus(id, "read", 20_000);
    const readers = new Set(
      alice.phone
        .receiptsOf(id)
        .filter((r) => r.status === "read")
        .map((r) => r.recipient.name),
    );
    assert.deepEqual([...readers].sort(), ["bob", "carol", "dave"]);

    // Typing reaches the other members, tagged with the group.
    const typing = new Promise<string | undefined>((r) => bob.laptop.once("typing", (e) => r(e.group)));
    alice.phone.sendGroupTyping(g.id, "composing");
    assert.equal(await typing, g.id);
  });

  it("membership: admin-only, notifications in order, removal rotates the key, invites, concurrent admins", async () => {
    const g = await alice.phone.createGroup("Membership", ["bob", "carol"]);
    await waitFor(() => carol.laptop.group(g.id) && bob.phone.group(g.id), 20_000, "created");

    // A non-admin is refused by the server.
    await assert.rejects(
      bob.phone.addGroupMembers(g.id, ["dave"]),
      (e: Error & { code?: string }) => e.code === "FORBIDDEN",
    );
    // (the client checks first; the server refuses too when a client skips the check)
    const bobState = bob.phone.group(g.id)!;
    assert.equal(bobState.members.find((m) => m.user === "bob")?.role, "member");

    // Two admins at once: both changes land, in some order, on every device.
    await alice.phone.promoteGroupAdmins(g.id, ["bob"]);
    await waitFor(() => bob.phone.group(g.id)?.version === 2, 20_000, "bob sees his promotion");
    await Promise.all([alice.phone.addGroupMembers(g.id, ["dave"]), bob.phone.setGroupSubject(g.id, "Renamed")]);
    const everyone = devices([alice, bob, carol, dave]);
    await waitFor(() => everyone.every((c) => c.group(g.id)?.version === 4), 20_000, "version 4 everywhere");
    for (const c of everyone) {
      const v = c.group(g.id)!;
      assert.equal(v.subject, "Renamed");
      assert.deepEqual(v.members.map((m) => m.user).sort(), ["alice", "bob", "carol", "dave"]);
    }

    // Carol gets the key, then is removed; her client keeps running.
    await alice.phone.sendGroupText(g.id, "before removal");
    await waitFor(() => bodies(carol.laptop, g.id).includes("before removal"), 20_000, "carol reads before removal");
    const carolEvents = recordChanges(carol.phone);
    await alice.phone.removeGroupMembers(g.id, ["carol"]);
    await waitFor(() => carolEvents.some((e) => e.change.action === "remove"), 20_000, "carol is told");
    assert.equal(carol.phone.group(g.id)?.active, false);

    // Dave's laptop goes offline so the next message stays in its queue on the server.
    await dave.laptop.stop();
    const afterId = await alice.phone.sendGroupText(g.id, "after removal");
    await waitFor(() => bodies(bob.laptop, g.id).includes("after removal"), 20_000, "bob gets it");
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!bodies(carol.phone, g.id).includes("after removal"), "the server did not route it to carol");

    // Even with the ciphertext in hand, carol's keys cannot open it: alice rotated her sender key.
    // The queues live in the worker's shard file (docs/architecture.md): read it as an attacker would.
    const accounts = new SqliteStorage({ dataDir: env.dataDir });
    const daveId = (await accounts.getAccountByName("dave"))!.id;
    await accounts.close();
    const shard = new Database(join(env.dataDir, queueShardFileName(0)), { readonly: true });
    let body: Uint8Array | undefined;
    try {
      const rows = shard
        .prepare(
          `SELECT COALESCE(q.envelope, p.data) AS envelope FROM queue q LEFT JOIN payloads p ON p.id = q.payload_id
           WHERE q.account_id = ? AND q.device_id = 2 ORDER BY q.seq`,
        )
        .all(daveId) as { envelope: Buffer }[];
      const delivery = rows
        .map((r) => decodeStanza(new Uint8Array(r.envelope)))
        .find((s) => s.kind === "delivery" && s.type === "skmsg" && Buffer.from(s.id).toString("hex") === afterId);
      assert.ok(delivery && delivery.kind === "delivery", "the sender-key message waits in dave's laptop queue");
      body = delivery.body;
    } finally {
      shard.close();
    }
    const carolKeys = {
      loadSenderKey: async (sender: { name: string; deviceId: number }, distributionId: string) => {
        const bytes = carol.phone.store.getSenderKey(sender, distributionId);
        return bytes ? SenderKeyRecord.deserialize(bytes) : undefined;
      },
      storeSenderKey: async () => {},
    };
    await assert.rejects(groupDecrypt(carolKeys, { name: "alice", deviceId: 1 }, body), /NO_SENDER_KEY|sender key/);
    await dave.laptop.start();
    await waitFor(() => bodies(dave.laptop, g.id).includes("after removal"), 20_000, "dave's laptop catches up");

    // Invite links: join with the code, revoke, a later join fails.
    const code = await alice.phone.createGroupInvite(g.id);
    const erin = await newUser("erin", env.url);
    try {
      const joined = await erin.joinGroup(code);
      assert.ok(joined.members.some((m) => m.user === "erin"));
      await waitFor(() => bob.phone.group(g.id)?.members.some((m) => m.user === "erin"), 20_000, "bob sees erin");
      await alice.phone.revokeGroupInvite(g.id);
      const frank = await newUser("frank", env.url);
      try {
        await assert.rejects(frank.joinGroup(code), (e: Error & { code?: string }) => e.code === "not-found");
      } finally {
        await frank.stop();
      }
      await alice.phone.sendGroupText(g.id, "welcome erin");
      await waitFor(() => bodies(erin, g.id).includes("welcome erin"), 20_000, "erin reads new messages");
      assert.ok(!bodies(erin, g.id).includes("after removal"), "nothing from before she joined");
    } finally {
      await erin.stop();
    }
  });

  it("ignores a forged membership change injected by a malicious server", async () => {
    const g = await alice.phone.createGroup("Forgery", ["bob", "carol"]);
    await waitFor(() => carol.phone.group(g.id), 20_000, "created");
    const before = carol.phone.group(g.id)!;
    // Bob (not an admin) signs "add mallory" with his real key; a server that wanted to could queue it.
    const state = bob.phone.group(g.id)!;
    const { createHash } = await import("node:crypto");
    const log = (await bob.phone.iq({ op: "group-log", group: g.id, after: 0 })) as { changes: Uint8Array[] };
    const bytes = encodeGroupChange({
      group: g.id,
      version: state.version + 1,
      prev: new Uint8Array(createHash("sha256").update(log.changes.at(-1)!).digest()),
      author: { user: "bob", device: 1 },
      time: Date.now(),
      action: "add",
      users: ["mallory"],
    });
    const identity = bob.phone.store.getMeta("identityKeyPair")!;
    const forged = encodeSignedGroupChange(bytes, xeddsaSign(identity.slice(0, 32), groupChangeSignedBytes(bytes)));
    // A malicious server queues it for carol's phone. (The test stops the server and writes the
    // queue shard as its only writer, then restarts the server on the same ports and data.)
    await carol.phone.stop();
    const ports = { port: env.server.httpPort, tcpPort: env.server.tcpPort };
    await env.server.close();
    const storage = new ShardedStorage({ dataDir: env.dataDir, shard: { index: 0, count: 1 } });
    try {
      const carolId = (await storage.getAccountByName("carol"))!.id;
      await storage.enqueue([
        {
          accountId: carolId,
          deviceId: 1,
          envelope: encodeStanza({
            kind: "notification",
            id: 0,
            timestamp: 0,
            event: { type: "group-change", change: forged },
          }),
        },
      ]);
    } finally {
      await storage.close();
    }
    env = await startTestServer({ dataDir: env.dataDir, ...ports });
    const rejected = new Promise<Error>((r) => carol.phone.on("error", (e) => r(e.error)));
    await carol.phone.start();
    const err = await rejected;
    assert.match(String((err as Error & { code?: string }).code), /REJECTED_FORBIDDEN/);
    assert.deepEqual(carol.phone.group(g.id), before, "the group is as the admins left it");
    // Everyone is back on the restarted server before the next test.
    await Promise.all(devices([alice, bob, carol, dave]).map((c) => c.waitConnected()));
  });

  it("a message that arrives before its sender key is buffered, the key requested, then shown", async () => {
    const g = await alice.phone.createGroup("Late key", ["bob"]);
    await waitFor(() => bob.laptop.group(g.id), 20_000, "created");
    // Alice's phone wrongly believes bob's laptop has her key: her first message skips it there.
    const first = await alice.phone.sendGroupText(g.id, "warm-up"); // creates the key and shares it
    await waitFor(() => bodies(bob.laptop, g.id).includes("warm-up"), 20_000, "warm-up");
    void first;
    // Drop the laptop's copy of alice's sender key: the next message arrives before any key.
    for (const [distribution] of [[aliceDistribution(alice.phone, g.id)]]) {
      bob.laptop.store.deleteSenderKey({ name: "alice", deviceId: 1 }, distribution!);
    }
    const failed = new Promise<string>((r) => bob.laptop.once("decrypt-failed", (e) => r(e.error)));
    await alice.phone.sendGroupText(g.id, "arrives before its key");
    assert.match(await failed, /buffered/);
    // Bob's laptop buffers it, sends a retry receipt; alice resends it with her key; it shows.
    await waitFor(() => bodies(bob.laptop, g.id).includes("arrives before its key"), 20_000, "shown after the key");
    await waitFor(() => bob.laptop.bufferedGroupMessages === 0, 20_000, "buffer drained");
    await alice.phone.sendGroupText(g.id, "and the next one decrypts directly");
    await waitFor(() => bodies(bob.laptop, g.id).includes("and the next one decrypts directly"), 20_000, "next");
  });
});

describe("groups: late members and devices", () => {
  it("a member added while offline catches up; a device linked later gets nothing sent before it", async () => {
    const env = await startTestServer();
    const ann = await newUser("ann", env.url);
    const ben = await newUser("ben", env.url);
    const cat = await newUser("cat", env.url);
    let tablet: ParleyClient | undefined;
    try {
      const g = await ann.createGroup("Late", ["ben"]);
      await waitFor(() => ben.group(g.id), 20_000, "ben has it");
      await ann.sendGroupText(g.id, "before cat");
      await waitFor(() => bodies(ben, g.id).includes("before cat"), 20_000, "ben reads");

      // Cat is offline when added; on reconnecting she verifies the log and reads what follows.
      await cat.stop();
      await ann.addGroupMembers(g.id, ["cat"]);
      await ann.sendGroupText(g.id, "after cat joined");
      await cat.start();
      await waitFor(() => bodies(cat, g.id).includes("after cat joined"), 20_000, "cat catches up");
      assert.deepEqual(
        cat
          .group(g.id)
          ?.members.map((m) => m.user)
          .sort(),
        ["ann", "ben", "cat"],
      );
      assert.ok(!bodies(cat, g.id).includes("before cat"));

      // Ben links a tablet: it learns the group but not the message sent before it existed.
      tablet = await linkLaptop(ben, env.url);
      await waitFor(() => tablet!.group(g.id), 20_000, "the tablet syncs the group");
      await ann.sendGroupText(g.id, "after the tablet");
      await waitFor(() => bodies(tablet!, g.id).includes("after the tablet"), 20_000, "tablet reads new messages");
      assert.ok(!bodies(tablet, g.id).includes("after cat joined"), "nothing from before the device existed");

      // Ben unlinks the tablet: ann's next message uses a new sender key the tablet never gets.
      const keyBefore = aliceDistribution(ann, g.id);
      await ben.unlinkDevice(tablet.deviceId!);
      await new Promise((r) => setTimeout(r, 300)); // ann hears that ben's devices changed
      await ann.sendGroupText(g.id, "after the unlink");
      await waitFor(() => bodies(ben, g.id).includes("after the unlink"), 20_000, "ben reads it");
      assert.notEqual(aliceDistribution(ann, g.id), keyBefore, "ann rotated her sender key");
      assert.ok(!bodies(tablet, g.id).includes("after the unlink"));
    } finally {
      for (const c of [ann, ben, cat, tablet]) await c?.stop();
      await env.stop();
    }
  });
});

function aliceDistribution(c: ParleyClient, group: string): string {
  const raw = c.store.getOpaque(`group-sk:${group}`);
  assert.ok(raw, "alice has a sender key for the group");
  return new TextDecoder().decode(raw);
}
