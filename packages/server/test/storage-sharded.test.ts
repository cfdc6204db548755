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
});
