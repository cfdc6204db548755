// What a queue shard's owner keeps in memory to spare SQL work, and must never get wrong:
// - counts of entries per account, which answer fetch/depth of an empty queue; they may run high
//   (then a read corrects them) but never low: a queue counted empty while it holds entries would
//   never be delivered;
// - the receipt routing of the entries inserted last, which an ack returns without RETURNING.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { QueueShard, RECENT_ENTRIES } from "../src/storage/sqlite/queue-shard.ts";
import type { EnqueueItem } from "../src/storage/types.ts";

let dir: string;
let owner: QueueShard;
const open = (readonly = false) =>
  new QueueShard({ file: join(dir, "queue-0.db"), index: 0, readonly, mapError: (e) => e });
const item = (accountId: string, text: string): EnqueueItem => ({
  accountId,
  deviceId: 1,
  envelope: new TextEncoder().encode(text),
  durable: false,
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "parley-shard-counts-"));
  owner = open();
});
afterEach(async () => {
  await owner.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("queue shard counts", () => {
  it("follow enqueues and acks, per device", async () => {
    assert.equal(owner.depth("a", 1), 0);
    assert.deepEqual(owner.fetch("a", 1, 0, 10), []);
    const seqs = await owner.enqueue([item("a", "1"), item("a", "2"), item("b", "3")], 1, () => {});
    assert.equal(owner.depth("a", 1), 2);
    assert.equal(owner.depth("b", 1), 1);
    assert.equal(owner.depth("a", 2), 0);
    await owner.ack("a", 1, [seqs[0]!, seqs[2]!]); // seqs[2] is b's: not deleted, not counted
    assert.equal(owner.depth("a", 1), 1);
    assert.equal(owner.depth("b", 1), 1);
    await owner.ack("a", 1, [seqs[1]!]);
    assert.deepEqual(owner.fetch("a", 1, 0, 10), []);
    assert.equal(owner.fetch("b", 1, 0, 10).length, 1);
  });

  it("count an account's devices together: another device's entries only cost a read", async () => {
    const [seq] = await owner.enqueue([{ ...item("a", "for 2"), deviceId: 2 }], 1, () => {});
    assert.deepEqual(owner.fetch("a", 1, 0, 10), []);
    assert.equal(owner.depth("a", 1), 0);
    assert.equal(owner.depth("a", 2), 1);
    assert.deepEqual((await owner.ack("a", 1, [seq!])).length, 0, "device 1 cannot ack device 2's entry");
    assert.equal((await owner.ack("a", 2, [seq!])).length, 1);
    assert.equal(owner.depth("a", 2), 0);
  });

  it("are rebuilt after a rolled-back batch, so an ack that did not happen is not counted", async () => {
    const [seq] = await owner.enqueue([item("a", "kept")], 1, () => {});
    assert.equal(owner.depth("a", 1), 1);
    // Same turn: the ack and an enqueue that fails mid-write (the CHECK constraint), which rolls
    // the whole batch back.
    const ack = owner.ack("a", 1, [seq!]);
    const bad = owner.enqueue([{ accountId: "a", deviceId: 1, envelope: null as unknown as Uint8Array }], 1, () => {});
    await assert.rejects(ack);
    await assert.rejects(bad);
    assert.deepEqual(
      owner.fetch("a", 1, 0, 10).map((e) => e.seq),
      [seq],
    );
    assert.equal(owner.depth("a", 1), 1);
  });

  it("start from the file, and a purge by another process only leaves them high until the next read", async () => {
    await owner.enqueue([item("a", "1"), item("a", "2")], 1, () => {});
    await owner.close();
    owner = open();
    assert.equal(owner.depth("a", 1), 2, "counts built from the file at first use");
    const purger = open(); // the cluster primary's hourly purge opens the file itself
    assert.equal(await purger.purge(Number.MAX_SAFE_INTEGER, 100), 2);
    await purger.close();
    assert.equal(owner.depth("a", 1), 0);
    assert.deepEqual(owner.fetch("a", 1, 0, 10), []);
    const [seq] = await owner.enqueue([item("a", "3")], 1, () => {});
    assert.deepEqual(
      owner.fetch("a", 1, 0, 10).map((e) => e.seq),
      [seq],
    );
  });

  it("are the owner's only: a read-only handle on the file reads it", async () => {
    const reader = open(true);
    try {
      await owner.enqueue([item("a", "1")], 1, () => {});
      assert.equal(reader.depth("a", 1), 1);
      assert.equal(reader.fetch("a", 1, 0, 10).length, 1);
    } finally {
      await reader.close();
    }
  });
});

describe("queue shard recent receipt routing", () => {
  it("acks return the sender for entries inserted last and for older ones alike", async () => {
    const routed = (n: number): EnqueueItem => ({
      ...item("a", `m${n}`),
      senderAccountId: "s",
      senderDeviceId: n % 3,
      messageId: `id${n}`,
    });
    // More entries than the ring holds: the first ones are acked through DELETE … RETURNING.
    const n = RECENT_ENTRIES + 100;
    const seqs = await owner.enqueue(
      Array.from({ length: n }, (_, i) => routed(i)),
      1,
      () => {},
    );
    const pick = [0, 99, 100, n - 1];
    const acked = await owner.ack(
      "a",
      1,
      pick.map((i) => seqs[i]!),
    );
    assert.deepEqual(
      acked,
      pick.map((i) => ({
        seq: seqs[i],
        senderAccountId: "s",
        senderDeviceId: i % 3,
        messageId: `id${i}`,
        shared: false,
      })),
    );
    assert.deepEqual(await owner.ack("a", 1, [seqs[n - 1]!, seqs[0]!]), [], "acked once only");
    assert.equal(owner.depth("a", 1), n - pick.length);
  });
});
