// Retention of undelivered messages, with a ManualClock driving the server:
// entries older than retentionDays are purged (by purgeNow(), and at start),
// younger ones stay, and the device then receives exactly the survivors.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { describe, it } from "node:test";
import { ManualClock } from "../src/clock.ts";
import { hex, login, messageTo, type RawClient, type RawIdentity, registerRaw } from "./gateway-helpers/raw-client.ts";
import { startTestServer, tempDir } from "./gateway-helpers/server.ts";

const DAY = 86_400_000;

/** Sends one message per body to `to` (device 1) and waits for their acks; returns the ids. */
async function sendAll(from: RawClient, to: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const msg = messageTo(to, [1], randomBytes(32));
    if (msg.kind !== "message") throw new Error("unreachable");
    ids.push(hex(msg.id));
    from.send(msg);
  }
  await from.waitFor((c) => ids.every((id) => c.received.some((s) => s.kind === "ack" && hex(s.id) === id)), "acks");
  for (const s of from.received) if (s.kind === "ack") assert.equal(s.error, undefined);
  return ids;
}

async function backlogOf(url: string, id: RawIdentity): Promise<{ client: RawClient; ids: string[] }> {
  const client = await login(url, id);
  await client.waitFor(
    (c) => c.received.some((s) => s.kind === "notification" && s.event.type === "queue-empty"),
    "the end of the backlog",
  );
  return { client, ids: client.deliveries().map((d) => hex(d.id)) };
}

describe("purge of undelivered messages past the retention", () => {
  it("removes only entries older than 30 days; the device then receives the fresh ones only", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const env = await startTestServer({ retentionDays: 30 }, clock);
    try {
      const [alice, bob] = await Promise.all([registerRaw(env.url, "alice"), registerRaw(env.url, "bob")]);
      const a = await login(env.url, alice);
      const old = await sendAll(a, "bob", 3); // bob is offline
      clock.advance(30 * DAY);
      const fresh = await sendAll(a, "bob", 2);
      const freshAt = Math.floor(clock.now() / 1000);
      clock.advance(DAY); // old: 31 days, fresh: 1 day

      assert.equal(await env.server.purgeNow(), old.length);
      assert.equal(await env.server.purgeNow(), 0); // idempotent
      assert.ok(env.logs.some((l) => l.msg === "purged undelivered messages past retention" && l.purged === 3));

      const { client: b, ids } = await backlogOf(env.url, bob);
      assert.equal(b.serverHello.result === "ok" && b.serverHello.queueCount, fresh.length);
      assert.deepEqual(ids, fresh);
      for (const d of b.deliveries()) {
        assert.deepEqual(d.from, { user: "alice", device: 1 });
        assert.equal(d.timestamp, freshAt); // stamped with the server's (manual) clock on arrival
      }
      // Only delivered messages produce a second tick: none for the purged ones.
      await a.waitFor(
        (c) =>
          c.received.filter((s) => s.kind === "receipt").flatMap((s) => (s.kind === "receipt" ? s.ids : [])).length >=
          2,
        "delivered receipts",
      );
      await new Promise((r) => setTimeout(r, 50));
      const receipted = a.received.flatMap((s) =>
        s.kind === "receipt" && s.type === "delivered" ? s.ids.map(hex) : [],
      );
      assert.deepEqual(receipted.sort(), [...fresh].sort());
      a.close();
      b.close();
    } finally {
      await env.stop();
    }
  });

  it("honours retentionDays, keeping an entry exactly at the limit and purging it one millisecond later", async () => {
    const clock = new ManualClock(Date.UTC(2026, 5, 1));
    const env = await startTestServer({ retentionDays: 2 }, clock);
    try {
      const [alice, bob] = await Promise.all([registerRaw(env.url, "alice"), registerRaw(env.url, "bob")]);
      const a = await login(env.url, alice);
      await sendAll(a, "bob", 1);
      clock.advance(DAY);
      const kept = await sendAll(a, "bob", 1);
      clock.advance(DAY); // first: exactly 2 days old
      assert.equal(await env.server.purgeNow(), 0);
      clock.advance(1);
      assert.equal(await env.server.purgeNow(), 1);
      clock.advance(DAY - 1); // second: exactly 2 days old
      assert.equal(await env.server.purgeNow(), 0);
      const { client: b, ids } = await backlogOf(env.url, bob);
      assert.deepEqual(ids, kept);
      a.close();
      b.close();
    } finally {
      await env.stop();
    }
  });

  it("purges at start: a server restarted after the retention has passed no longer holds the entries", async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 1));
    const dataDir = tempDir("purge-restart");
    try {
      let env = await startTestServer({ dataDir, retentionDays: 30 }, clock);
      const [alice, bob] = await Promise.all([registerRaw(env.url, "alice"), registerRaw(env.url, "bob")]);
      const a = await login(env.url, alice);
      await sendAll(a, "bob", 4);
      a.close();
      await a.waitClosed();
      await env.stop();

      clock.advance(31 * DAY);
      env = await startTestServer({ dataDir, retentionDays: 30 }, clock);
      try {
        assert.ok(env.logs.some((l) => l.msg === "purged undelivered messages past retention" && l.purged === 4));
        const { client: b, ids } = await backlogOf(env.url, bob);
        assert.equal(b.serverHello.result === "ok" && b.serverHello.queueCount, 0);
        assert.deepEqual(ids, []);
        b.close();
      } finally {
        await env.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
