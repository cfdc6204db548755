// ShardedStorage: the conformance suite with one shard (the in-process server) and with two shards
// in one process joined by an in-memory link (every queue call for the other shard's accounts is
// forwarded, reads go to the other shard's file), plus rebalancing when the shard count changes.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { ManualClock } from "../src/clock.ts";
import { newTestDevice, runStorageConformance, type StorageHarness } from "../src/storage/conformance.ts";
import { SqliteStorage } from "../src/storage/index.ts";
import {
  rebalanceQueueShards,
  ShardedStorage,
  type ShardLink,
  type ShardOp,
  shardOf,
} from "../src/storage/sharded-storage.ts";
import type { ServerStorage } from "../src/storage/types.ts";

const clock = new ManualClock();

/** In-memory links between shards of one process; calls cross a turn like a socket would. */
function memoryLinks(count: number): ShardLink[] {
  const handlers: ((op: ShardOp) => Promise<unknown>)[] = [];
  return Array.from({ length: count }, (_, i) => ({
    call: (shard: number, op: ShardOp) =>
      new Promise<unknown>((resolve, reject) => {
        setImmediate(() => handlers[shard]!(op).then(resolve, reject));
      }),
    serve(handler: (op: ShardOp) => Promise<unknown>) {
      handlers[i] = handler;
    },
  }));
}

/**
 * Distinct shared payloads held over all shards. A group payload is stored once per shard that
 * holds one of its recipients' queues (recipients are spread over the shards); the suite checks
 * that it is not stored per recipient and that it goes with its last reference.
 */
function payloadCount(dir: string, count: number): number {
  const distinct = new Set<string>();
  for (let s = 0; s < count; s++) {
    const db = new Database(join(dir, `queue-${s}.db`), { readonly: true });
    try {
      for (const row of db.prepare("SELECT data FROM payloads").all() as { data: Buffer }[]) {
        distinct.add(row.data.toString("hex"));
      }
    } finally {
      db.close();
    }
  }
  return distinct.size;
}

function makeHarness(count: number): () => Promise<StorageHarness> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-sharded-"));
    const openAll = () => {
      const links = memoryLinks(count);
      return Array.from(
        { length: count },
        (_, index) => new ShardedStorage({ dataDir: dir, clock, shard: { index, count }, link: links[index]! }),
      );
    };
    let shards = openAll();
    const closeAll = async () => {
      for (const s of shards) await s.close();
    };
    const harness: StorageHarness = {
      get storage(): ServerStorage {
        return shards[0]!;
      },
      async cleanup() {
        await closeAll();
        rmSync(dir, { recursive: true, force: true });
      },
      async reopen() {
        await closeAll();
        shards = openAll();
        return shards[0]!;
      },
      async openPeer() {
        // Another worker: the second shard (or, with one shard, just the same store).
        return shards[count - 1]!;
      },
      async payloadCount() {
        return payloadCount(dir, count);
      },
    };
    return harness;
  };
}

runStorageConformance("ShardedStorage, one shard", makeHarness(1), clock);
runStorageConformance("ShardedStorage, two shards in one process", makeHarness(2), clock);

describe("ShardedStorage specifics", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "parley-sharded-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("spreads accounts over the shards", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[shardOf(`${i}-4b3c-8d2e-${i * 7919}`, 4)]!++;
    for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven: ${counts.join(", ")}`);
  });

  it("moves entries to their new shards when the shard count changes, keeping each queue's order", async () => {
    // An upgrade: an older version left an entry in the shared database's queue; the first start
    // with shards moves it into its shard before anything else is written there.
    const legacy = new SqliteStorage({ dataDir: dir, clock });
    const accounts: string[] = [];
    for (let i = 0; i < 12; i++) accounts.push((await legacy.createAccount(`user${i}`, newTestDevice())).account.id);
    await legacy.enqueue([{ accountId: accounts[0]!, deviceId: 1, envelope: new Uint8Array([99]) }]);
    await legacy.close();
    await rebalanceQueueShards(dir, 2);
    {
      const links = memoryLinks(2);
      const [a, b] = [0, 1].map(
        (index) => new ShardedStorage({ dataDir: dir, clock, shard: { index, count: 2 }, link: links[index]! }),
      ) as [ShardedStorage, ShardedStorage];
      for (let round = 0; round < 5; round++) {
        for (const id of accounts) await b.enqueue([{ accountId: id, deviceId: 1, envelope: new Uint8Array([round]) }]);
      }
      await a.close();
      await b.close();
    }

    // The worker count changes: entries whose account now belongs to another shard move there.
    await rebalanceQueueShards(dir, 3);
    const links = memoryLinks(3);
    const three = [0, 1, 2].map(
      (index) => new ShardedStorage({ dataDir: dir, clock, shard: { index, count: 3 }, link: links[index]! }),
    );
    try {
      for (const id of accounts) {
        const entries = await three[1]!.fetch(id, 1, 0, 100);
        const expected = id === accounts[0] ? [99, 0, 1, 2, 3, 4] : [0, 1, 2, 3, 4];
        assert.deepEqual(
          entries.map((e) => e.envelope[0]),
          expected,
        );
        assert.ok(entries.every((e, i) => i === 0 || e.seq > entries[i - 1]!.seq));
        assert.equal(await three[2]!.depth(id, 1), expected.length);
      }
      assert.equal(await three[0]!.totalDepth(), 12 * 5 + 1);
    } finally {
      for (const s of three) await s.close();
    }
    await rebalanceQueueShards(dir, 1);
    assert.deepEqual(
      readdirSync(dir)
        .filter((f) => f.startsWith("queue-"))
        .sort(),
      ["queue-0.db", "queue-0.db-shm", "queue-0.db-wal"].filter((f) => readdirSync(dir).includes(f)),
    );
    const one = new ShardedStorage({ dataDir: dir, clock, shard: { index: 0, count: 1 } });
    try {
      assert.equal(await one.totalDepth(), 12 * 5 + 1);
    } finally {
      await one.close();
    }
  });

  it("never hands out a seq twice, across restarts and emptied queues, in stored or memory entries", async () => {
    const open = () => new ShardedStorage({ dataDir: dir, clock, shard: { index: 0, count: 1 } });
    let store = open();
    const id = (await store.createAccount("seq_user", newTestDevice())).account.id;
    const seen = new Set<number>();
    const take = (seq: number) => {
      assert.ok(!seen.has(seq), `seq ${seq} handed out twice`);
      seen.add(seq);
    };
    for (let round = 0; round < 3; round++) {
      // Stored entries, then acked (the queue is empty again: the largest seq is gone from the table).
      const seqs = await store.enqueue(
        Array.from({ length: 5 }, () => ({ accountId: id, deviceId: 1, envelope: new Uint8Array([round]) })),
      );
      seqs.forEach(take);
      // Memory seqs come after every stored one and before the next.
      for (let i = 0; i < 3; i++) {
        const m = store.memorySeq(id);
        assert.ok(m !== null, "the committed reservation covers memory seqs");
        assert.ok(m > Math.max(...seqs));
        take(m);
      }
      await store.ack(id, 1, seqs);
      assert.equal(await store.depth(id, 1), 0);
      await store.close();
      store = open();
      const next = await store.enqueue([{ accountId: id, deviceId: 1, envelope: new Uint8Array([9]) }]);
      assert.ok(next[0]! > Math.max(...seen), "a restart resumes above every seq handed out");
      take(next[0]!);
      await store.ack(id, 1, next);
    }
    await store.close();
  });

  it("has memory seqs from the first message on, also while a commit's fsync is pending", async () => {
    // Push at commit: a recipient can ack, and its delivered receipt be routed from memory, before
    // the sender's write is fsynced. Memory seqs must not wait for that fsync (they did once: the
    // first block was reserved by the first enqueue, so early receipts were stored instead).
    const store = new ShardedStorage({ dataDir: dir, clock, shard: { index: 0, count: 1 } });
    try {
      const id = (await store.createAccount("early_user", newTestDevice())).account.id;
      const first = store.memorySeq(id);
      assert.ok(first !== null, "a freshly opened shard has a reserved block");
      let last = first;
      // Through more than a block of stored entries, asking for a memory seq at every commit.
      for (let round = 0; round < 3; round++) {
        const atCommit: (number | null)[] = [];
        const seqs = await store.enqueue(
          Array.from({ length: 2_000 }, () => ({ accountId: id, deviceId: 1, envelope: new Uint8Array([round]) })),
          () => atCommit.push(store.memorySeq(id)),
        );
        assert.equal(atCommit.length, 1);
        const m = atCommit[0]!;
        assert.ok(m !== null, `round ${round}: a memory seq before the fsync`);
        assert.ok(seqs[0]! > last && m > Math.max(...seqs));
        last = m;
        await store.ack(id, 1, seqs);
      }
    } finally {
      await store.close();
    }
  });

  it("tells the owner about entries it committed for another shard", async () => {
    const links = memoryLinks(2);
    const [a, b] = [0, 1].map(
      (index) => new ShardedStorage({ dataDir: dir, clock, shard: { index, count: 2 }, link: links[index]! }),
    ) as [ShardedStorage, ShardedStorage];
    try {
      const heard: { shard: number; seqs: number[]; op: string }[] = [];
      a.onRemoteCommit((commit, seqs) => heard.push({ shard: 0, seqs, op: commit.op }));
      b.onRemoteCommit((commit, seqs) => heard.push({ shard: 1, seqs, op: commit.op }));
      // An account of each shard.
      let ofA: string | undefined;
      let ofB: string | undefined;
      for (let i = 0; (ofA === undefined || ofB === undefined) && i < 50; i++) {
        const acc = (await a.createAccount(`owner_${i}`, newTestDevice())).account.id;
        if (a.queueOwner(acc) === 0) ofA ??= acc;
        else ofB ??= acc;
      }
      assert.ok(ofA && ofB);
      assert.equal(b.memorySeq(ofA), null, "only the owner assigns an account's seqs");
      // From shard 0 for an account of shard 1: shard 1 commits it and hears of it; a local one is silent.
      const remote = await a.enqueue([{ accountId: ofB, deviceId: 1, envelope: new Uint8Array([1]) }]);
      await a.enqueue([{ accountId: ofA, deviceId: 1, envelope: new Uint8Array([2]) }]);
      await a.enqueueShared(new Uint8Array([3]), [{ accountId: ofB, deviceId: 1 }]);
      assert.deepEqual(heard[0], { shard: 1, seqs: remote, op: "enqueue" });
      assert.equal(heard.length, 2);
      assert.equal(heard[1]!.op, "enqueueShared");
      assert.ok(heard.every((h) => h.shard === 1));
    } finally {
      await a.close();
      await b.close();
    }
  });
});
