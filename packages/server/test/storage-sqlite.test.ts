import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { ManualClock } from "../src/clock.ts";
import { newTestDevice, runStorageConformance, type StorageHarness } from "../src/storage/conformance.ts";
import { DATABASE_FILE_NAME, SqliteStorage, StorageError } from "../src/storage/index.ts";
import { GroupCommitter } from "../src/storage/sqlite/group-commit.ts";
import { SCHEMA_VERSION } from "../src/storage/sqlite/schema.ts";
import type { ServerStorage } from "../src/storage/types.ts";

const clock = new ManualClock();

async function makeSqliteHarness(): Promise<StorageHarness> {
  const dir = mkdtempSync(join(tmpdir(), "parley-storage-"));
  const open = () => new SqliteStorage({ dataDir: dir, clock });
  const opened: ServerStorage[] = [];
  let current = open();
  opened.push(current);
  const harness: StorageHarness = {
    get storage() {
      return current;
    },
    async cleanup() {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
    async reopen() {
      await current.close();
      current = open();
      opened.push(current);
      return current;
    },
    async openPeer() {
      const peer = open();
      opened.push(peer);
      return peer;
    },
    async payloadCount() {
      const db = new Database(current.file, { readonly: true });
      try {
        return (db.prepare("SELECT COUNT(*) AS n FROM payloads").get() as { n: number }).n;
      } finally {
        db.close();
      }
    },
  };
  return harness;
}

runStorageConformance("SqliteStorage", makeSqliteHarness, clock);

describe("SqliteStorage specifics", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "parley-storage-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("commits all enqueues of one event-loop turn in one transaction", async () => {
    const storage = new SqliteStorage({ dataDir: dir, clock });
    try {
      const { account } = await storage.createAccount("turns", newTestDevice());
      const before = storage.commitStats;
      const calls = Array.from({ length: 100 }, (_, i) =>
        storage.enqueue([{ accountId: account.id, deviceId: 1, envelope: new Uint8Array([i + 1]) }]),
      );
      await Promise.all(calls);
      assert.deepEqual(storage.commitStats, { batches: before.batches + 1, writes: before.writes + 100 });
      // and separate turns get separate commits
      await storage.enqueue([{ accountId: account.id, deviceId: 1, envelope: new Uint8Array([1]) }]);
      await storage.ack(account.id, 1, [1]);
      assert.equal(storage.commitStats.batches, before.batches + 3);
    } finally {
      await storage.close();
    }
  });

  it("runs a write's commit callback at the commit, before the fsync its promise waits for", async () => {
    const file = join(dir, "commit.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (v INTEGER NOT NULL)");
    const committer = new GroupCommitter(db, (e) => e, `${file}-wal`);
    try {
      const order: string[] = [];
      const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
      const ok = committer.write(
        () => insert.run(1).changes,
        true,
        true,
        (changes) => order.push(`committed ${changes}`),
      );
      const failing = committer.write(
        () => {
          throw new StorageError("NOT_FOUND", "no such device");
        },
        true,
        true,
        () => order.push("callback of a failed write"),
      );
      const throwing = committer.write(
        () => insert.run(2).changes,
        false,
        true,
        () => {
          throw new Error("a buggy callback");
        },
      );
      void ok.then(() => order.push("durable"));
      const failed = assert.rejects(failing, StorageError);
      // a throwing callback fails its own write, whose row stays committed
      const callbackFailed = assert.rejects(throwing, /a buggy callback/);
      committer.flush(); // commits synchronously; the fsync runs on the thread pool
      assert.deepEqual(order, ["committed 1"]);
      // another connection sees the committed row before the fsync finished
      const reader = new Database(file, { readonly: true });
      assert.equal((reader.prepare("SELECT COUNT(*) AS n FROM t").get() as { n: number }).n, 2);
      reader.close();
      assert.equal(await ok, 1);
      assert.deepEqual(order, ["committed 1", "durable"]);
      await failed;
      await callbackFailed;
    } finally {
      await committer.close();
      db.close();
    }
  });

  it("uses WAL, records the schema version, and migrates only once across openings", async () => {
    const first = new SqliteStorage({ dataDir: dir, clock });
    const second = new SqliteStorage({ dataDir: dir, clock });
    assert.equal(first.file, join(dir, DATABASE_FILE_NAME));
    await first.close();
    await second.close();
    const db = new Database(join(dir, DATABASE_FILE_NAME), { readonly: true });
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(
        (db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map((r) => r.version),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
    } finally {
      db.close();
    }
  });

  it("refuses a database written by a newer server", () => {
    const file = join(dir, "future.db");
    new SqliteStorage({ file, clock }).close();
    const db = new Database(file);
    db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)").run(SCHEMA_VERSION + 1);
    db.close();
    assert.throws(
      () => new SqliteStorage({ file, clock }),
      (e: unknown) => e instanceof StorageError && e.code === "INTERNAL",
    );
  });

  it("needs a file or a data directory", () => {
    assert.throws(
      () => new SqliteStorage({}),
      (e: unknown) => e instanceof StorageError && e.code === "INVALID_ARGUMENT",
    );
  });
});
