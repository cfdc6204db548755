// Delivery guarantees end to end: offline queues, a server killed with -9, the
// client outbox across restarts, and session repair after a decryption failure.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { directChatId, openClient } from "@parley/client";
import { SqliteStorage } from "@parley/server";
import { freePort, newUser, startServerProcess, startTestServer, tempDir, waitFor } from "./helpers.ts";

type User = Awaited<ReturnType<typeof newUser>>;

/**
 * Runs `body` with the server `startServer` starts and two users, Alice and Bob, whose session is
 * set up by one delivered message (`first`); stops all three afterwards.
 */
async function withAliceAndBob<S extends { url: string; stop(): Promise<unknown> }>(
  startServer: () => Promise<S>,
  first: string,
  body: (alice: User, bob: User, env: S) => Promise<void>,
): Promise<void> {
  const env = await startServer();
  const alice = await newUser("alice", env.url);
  const bob = await newUser("bob", env.url);
  try {
    await alice.sendText("bob", first);
    await waitFor(() => bob.store.countMessages(directChatId("alice")) === 1, 15_000, "first message");
    await body(alice, bob, env);
  } finally {
    await alice.stop();
    await bob.stop();
    await env.stop();
  }
}

/** Where a `parley serve` process runs: a fresh data directory and free ports, to restart it on. */
async function serverPlace(prefix: string, workers: number) {
  return { dataDir: tempDir(prefix), port: await freePort(), tcpPort: await freePort(), workers };
}

describe("delivery guarantees", () => {
  it("queues 1,000 messages for an offline device and delivers them in order, exactly once", async () => {
    await withAliceAndBob(startTestServer, "warm-up", async (alice, bob, env) => {
      await bob.stop();
      const texts = Array.from({ length: 1000 }, (_, i) => `offline message ${i}`);
      const ids = texts.map((t) => alice.queueText("bob", t));
      await Promise.all(ids.map((id) => alice.waitForStatus(id, "sent", 120_000)));

      const received: string[] = [];
      bob.on("message", (e) => received.push(e.message.body ?? ""));
      const drained = new Promise<void>((r) => bob.once("queue-empty", () => r()));
      await bob.start();
      await drained;
      await waitFor(() => received.length >= 1000, 60_000, "all 1,000 received");
      assert.deepEqual(received, texts, "in order, exactly once");
      assert.equal(bob.store.countMessages(directChatId("alice")), 1001);
      // Nothing stays on the server after delivery.
      await waitFor(async () => true, 100);
      const storage = new SqliteStorage({ dataDir: env.dataDir });
      try {
        const account = await storage.getAccountByName("bob");
        await waitFor(() => true);
        let depth = -1;
        for (let i = 0; i < 50 && depth !== 0; i++) {
          depth = await storage.depth(account!.id, 1);
          if (depth !== 0) await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(depth, 0, "Bob's queue is empty");
      } finally {
        await storage.close();
      }
      await Promise.all(ids.map((id) => alice.waitForStatus(id, "delivered", 60_000)));
    });
  });

  it("stop() during an offline drain leaves the backlog queued: nothing lost, nothing twice, in order", async () => {
    await withAliceAndBob(startTestServer, "warm-up", async (alice, bob) => {
      await bob.stop();
      const texts = Array.from({ length: 300 }, (_, i) => `drained later ${i}`);
      const ids = texts.map((t) => alice.queueText("bob", t));
      await Promise.all(ids.map((id) => alice.waitForStatus(id, "sent", 60_000)));

      const received: string[] = [];
      let stopped: Promise<void> | undefined;
      bob.on("message", (e) => {
        received.push(e.message.body ?? "");
        // stop() from inside the handler of the 5th message: the deliveries pushed behind it are
        // already in the client's inbound queue.
        if (received.length === 5) stopped = bob.stop();
      });
      await bob.start();
      await waitFor(() => stopped, 30_000, "the drain started");
      await stopped;
      // Only the stanza being processed when stop() was called finishes; the pushed backlog
      // waiting behind it is not worked through first (it stays queued on the server).
      assert.equal(received.length, 5, `stop() went on processing ${received.length - 5} more messages`);

      const drained = new Promise<void>((r) => bob.once("queue-empty", () => r()));
      await bob.start();
      await drained;
      await waitFor(() => received.length >= texts.length, 60_000, "all received after the restart");
      assert.deepEqual(received, texts, "in order, exactly once across the stop");
      await Promise.all(ids.map((id) => alice.waitForStatus(id, "delivered", 60_000)));
    });
  });

  it("stop() while the server holds back the acks, then start() on the same client: the outbox goes out", async () => {
    const place = await serverPlace("held-acks", 1);
    await withAliceAndBob(
      () => startServerProcess(place),
      "warm-up",
      async (alice, bob, server) => {
        const group = -server.child.pid!;
        try {
          const received: string[] = [];
          bob.on("message", (e) => received.push(e.message.body ?? ""));
          // The server stops answering: Alice's sends leave, their acks (first ticks) do not come back.
          process.kill(group, "SIGSTOP");
          const texts = Array.from({ length: 50 }, (_, i) => `sent while the server hung ${i}`); // > one send window (32)
          const ids = texts.map((t) => alice.queueText("bob", t));
          await new Promise((r) => setTimeout(r, 300));
          await alice.stop();
          // A lost connection is not a failed attempt: nothing counts towards giving up on a message.
          const outbox = alice.store.nextOutboxBatch({ now: Date.now() + 3_600_000, limit: 100 });
          assert.equal(outbox.length, texts.length);
          assert.deepEqual(new Set(outbox.map((o) => o.attempts)), new Set([0]));
          process.kill(group, "SIGCONT");
          // The same client object starts again: the sends that waited for acks must not block its outbox.
          await alice.start();
          await Promise.all(ids.map((id) => alice.waitForStatus(id, "sent", 30_000)));
          await waitFor(() => received.length >= texts.length, 30_000, "all delivered");
          assert.deepEqual(received, texts, "in order, once each (the server got some of them twice)");
        } finally {
          process.kill(group, "SIGCONT");
        }
      },
    );
  });

  it("a message put off by a failed attempt goes out when it is due, with nothing else to trigger it", async () => {
    await withAliceAndBob(startTestServer, "warm-up", async (alice, bob) => {
      const received: string[] = [];
      bob.on("message", (e) => received.push(e.message.body ?? ""));
      // As after an attempt that failed (a timeout, say): in the outbox, due in 1.5 s.
      const id = "00112233aabbccdd";
      alice.store.queueOutgoing({ id, chatId: directChatId("bob"), body: "retried later", sentAt: Date.now() });
      alice.store.markAttemptFailed(id, Date.now() + 1500, "TIMEOUT: no answer to fetch-bundles");
      await alice.flushOutbox(); // nothing is due yet
      assert.equal(alice.store.outboxSize(), 1);
      await alice.waitForStatus(id, "sent", 15_000);
      await waitFor(() => received.includes("retried later"), 15_000, "delivered");
    });
  });

  it("after kill -9 of the server, every message that got a first tick is delivered, without duplicates", async () => {
    const place = await serverPlace("kill9", 2);
    let server = await startServerProcess(place);
    const alice = await newUser("alice", server.url);
    const bob = await newUser("bob", server.url);
    try {
      await bob.stop();
      const texts = Array.from({ length: 300 }, (_, i) => `kill test ${i}`);
      const ids: string[] = [];
      const ticked = new Set<string>();
      alice.on("status", (e) => {
        if (e.status === "sent") ticked.add(e.id);
      });
      for (const t of texts) ids.push(alice.queueText("bob", t));
      await waitFor(() => ticked.size >= 50, 60_000, "some first ticks");
      await server.kill9();
      const tickedAtKill = new Set(ticked);
      assert.ok(tickedAtKill.size >= 50);

      server = await startServerProcess(place);
      // Alice reconnects by herself and sends what had no tick yet.
      await Promise.all(ids.map((id) => alice.waitForStatus(id, "sent", 120_000)));
      const received = new Map<string, number>();
      bob.on("message", (e) => received.set(e.message.body ?? "", (received.get(e.message.body ?? "") ?? 0) + 1));
      await bob.start();
      await waitFor(() => received.size >= texts.length, 60_000, "all messages at Bob");
      for (const id of tickedAtKill) {
        const m = alice.store.getMessage("alice", id);
        assert.ok(m && received.has(m.body ?? ""), `ticked message ${id} delivered`);
      }
      const history = bob.store.history(directChatId("alice"), { limit: 1000 }).messages;
      assert.equal(history.length, texts.length, "no duplicates in Bob's history");
      assert.equal(new Set(history.map((m) => m.id)).size, texts.length);
    } finally {
      await alice.stop();
      await bob.stop();
      await server.stop();
    }
  });

  it("delivers messages written while the server was down, also across a client restart", async () => {
    const place = await serverPlace("outbox", 1);
    let server = await startServerProcess(place);
    const aliceDir = tempDir("alice-outbox");
    let alice = await newUser("alice", server.url, aliceDir);
    const bob = await newUser("bob", server.url);
    await server.stop();
    try {
      const first = ["written offline 1", "written offline 2"].map((t) => alice.queueText("bob", t));
      await alice.stop();
      alice.store.close();
      // A new process would open the same profile: the outbox is in the encrypted file.
      alice = await openClient({ dir: aliceDir });
      const second = alice.queueText("bob", "written offline 3 after restart");
      assert.equal(alice.store.outboxSize(), 3);

      // Listen before the server is back: Bob's own reconnect timer may bring him online (and the
      // messages in) while Alice is still waiting for her ticks.
      const received: string[] = [];
      bob.on("message", (e) => received.push(e.message.body ?? ""));
      server = await startServerProcess(place);
      await alice.start();
      for (const id of [...first, second]) await alice.waitForStatus(id, "sent", 60_000);
      await bob.start().catch(() => bob.waitConnected());
      await waitFor(() => received.length === 3, 30_000, "outbox delivered");
      assert.deepEqual(received, ["written offline 1", "written offline 2", "written offline 3 after restart"]);
    } finally {
      await alice.stop();
      await bob.stop();
      await server.stop();
    }
  });

  it("repairs a broken session: placeholder, one retry receipt, resend, then the real message", async () => {
    await withAliceAndBob(startTestServer, "before the break", async (alice, bob) => {
      // Bob loses his session (e.g. restored an old backup): Alice's next message cannot be decrypted.
      bob.store.deleteSession({ name: "alice", deviceId: 1 });
      const failures: string[] = [];
      bob.on("decrypt-failed", (e) => failures.push(e.id));
      const id = await alice.sendText("bob", "after the break");
      await waitFor(() => failures.length === 1, 15_000, "decrypt failure");
      await waitFor(
        () => bob.store.history(directChatId("alice")).messages.some((m) => m.body === "after the break"),
        20_000,
        "message after repair",
      );
      const history = bob.store.history(directChatId("alice")).messages;
      assert.equal(history.filter((m) => m.kind === "placeholder").length, 0, "placeholder replaced");
      assert.equal(failures.length, 1, "no error storm");
      await alice.waitForStatus(id, "delivered");
      // The repaired session keeps working both ways.
      await bob.sendText("alice", "works again");
      await waitFor(() => alice.store.countMessages(directChatId("bob")) === 3, 15_000, "reply");
    });
  });
});
