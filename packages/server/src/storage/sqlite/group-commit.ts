import { type FileHandle, open, stat } from "node:fs/promises";
import type Database from "better-sqlite3";
import { record, timing } from "../../debug-timing.ts";
import { StorageError } from "../errors.ts";

interface PendingWrite {
  work: () => unknown;
  /** Must survive power loss once resolved (fsync). False for writes whose loss is harmless. */
  durable: boolean;
  /**
   * True: the write runs in its own savepoint, so its failure rolls back only its own changes.
   * False (cheaper: a savepoint costs about as much as a small insert): the write promises to throw a
   * StorageError only before it changes anything; any other error rolls back and fails the whole batch.
   */
  isolated: boolean;
  /** Runs with the write's result as soon as its transaction commits, before any fsync. */
  onCommit: ((value: unknown) => void) | undefined;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: every write requested during one event-loop turn runs in ONE transaction, committed
 * (and, with synchronous=FULL, fsynced) once, after which all their promises settle. A commit per
 * message would cap the relay at a few thousand messages/s; one per turn amortizes the fsync.
 *
 * Each write runs inside its own savepoint, so one failing write (e.g. an enqueue to a removed
 * device) is rolled back alone and rejects alone, while the rest of the batch commits.
 *
 * A batch made only of non-durable writes (queue acks: losing one merely redelivers an entry the
 * client dedupes) commits with synchronous=NORMAL: written to the WAL, safe against a process
 * crash, without the fsync. Any durable write in the batch makes the whole commit synchronous=FULL.
 *
 * With `walFile` set (the default for SqliteStorage) the fsync leaves the event loop: every batch
 * commits with synchronous=NORMAL (its WAL frames are written, not yet synced), and durable writes
 * resolve only after an fsync of the WAL file, run on libuv's thread pool. That is exactly the
 * guarantee of synchronous=FULL (a commit is durable once its WAL frames are on disk), but the
 * event loop keeps serving while the disk works, the write lock is held only for the write() calls,
 * and concurrent batches share one fsync.
 *
 * The batch flushes on setImmediate, i.e. after the current turn's I/O callbacks have all had a
 * chance to add to it. The transaction is BEGIN IMMEDIATE: it takes the file's write lock up
 * front, so several processes sharing the file serialize cleanly (waiting up to busy_timeout)
 * instead of failing on a read-to-write lock upgrade.
 */
export class GroupCommitter {
  private pending: PendingWrite[] = [];
  private scheduled = false;
  private batches = 0;
  private writes = 0;
  private readonly runBatch: (writes: PendingWrite[]) => unknown[];
  private readonly setSynchronous: (full: boolean) => void;
  private synchronousFull = true;

  private wal: { handle: FileHandle; ino: number } | undefined;
  private syncing: Promise<void> | undefined;
  private syncQueued: Promise<void> | undefined;

  constructor(
    db: Database.Database,
    private readonly mapError: (error: unknown) => unknown,
    private readonly walFile?: string,
    /**
     * Default true: stat the WAL before every fsync, in case SQLite replaced it (another process's
     * connection was the last to close it). False when this connection stays open for as long as
     * the committer: SQLite deletes a WAL only when its last connection closes.
     */
    private readonly followWalInode = true,
    /**
     * Called synchronously, before any promise settles, when a batch or one write of it was rolled
     * back: for caches the writes keep in step with the file (QueueShard's queue counts).
     */
    private readonly onRollback?: () => void,
  ) {
    const full = db.prepare("PRAGMA synchronous = FULL");
    const normal = db.prepare("PRAGMA synchronous = NORMAL");
    this.setSynchronous = (wantFull) => {
      if (wantFull === this.synchronousFull) return;
      (wantFull ? full : normal).run();
      this.synchronousFull = wantFull;
    };
    // better-sqlite3 turns a transaction function called inside another into a SAVEPOINT.
    const one = db.transaction((write: PendingWrite) => write.work());
    const batch = db.transaction((writes: PendingWrite[]) =>
      writes.map((write): unknown => {
        if (!write.isolated) {
          try {
            return { ok: true, value: write.work() };
          } catch (error) {
            // A StorageError is a failed check, thrown before any change: it fails alone. Anything
            // else (an SQLite error mid-write) leaves the batch untrustworthy: rethrowing rolls the
            // whole transaction back and fails every write of it.
            if (error instanceof StorageError) return { ok: false, error };
            throw error;
          }
        }
        try {
          return { ok: true, value: one(write) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    );
    this.runBatch = (writes) => batch.immediate(writes);
  }

  /**
   * Queues `work` for the current turn's transaction; resolves with its result after the commit
   * (for a durable write, after the fsync too). `onCommit` runs with the result right after the
   * commit, before the fsync: the rows are visible to every connection then, and a crash of the
   * process keeps them; only a power cut before the fsync could lose them. Store-and-forward uses it
   * to push a message to a connected recipient while the disk syncs: the durability promise is the
   * sender's tick, which still waits (a message lost to a power cut was never acked, so the sender
   * sends it again, and devices dedupe). If `onCommit` throws, the promise rejects with its error.
   */
  write<T>(work: () => T, durable = true, isolated = true, onCommit?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (timing) {
        const t0 = performance.now();
        const done = resolve;
        resolve = ((v: T) => {
          record(durable ? "write-durable" : "write-nondurable", performance.now() - t0);
          done(v);
        }) as typeof resolve;
      }
      this.pending.push({
        work,
        durable,
        isolated,
        onCommit: onCommit as ((value: unknown) => void) | undefined,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Runs and commits everything queued so far (also called by close()). */
  flush(): void {
    const t0 = performance.now();
    const n = this.pending.length;
    this.flushInner();
    if (timing && n > 0) {
      record("commit-batch-ms", performance.now() - t0);
      record("commit-batch-size", n);
    }
  }

  private flushInner(): void {
    this.scheduled = false;
    const writes = this.pending;
    if (writes.length === 0) return;
    this.pending = [];
    this.batches++;
    this.writes += writes.length;
    let outcomes: unknown[];
    const durable = writes.some((w) => w.durable);
    try {
      this.setSynchronous(durable && this.walFile === undefined);
      outcomes = this.runBatch(writes);
    } catch (error) {
      // BEGIN or COMMIT failed (busy past the timeout, I/O error): nothing of the batch is durable.
      this.onRollback?.();
      const mapped = this.mapError(error);
      for (const write of writes) write.reject(mapped);
      return;
    }
    if (this.onRollback && outcomes.some((o) => !(o as { ok: boolean }).ok)) this.onRollback();
    writes.forEach((write, i) => {
      const outcome = outcomes[i] as { ok: boolean; value?: unknown };
      if (write.onCommit === undefined || !outcome.ok) return;
      try {
        write.onCommit(outcome.value);
      } catch (error) {
        // A failing callback fails its own write's promise (its rows stay committed), never the
        // batch's other writes.
        outcomes[i] = { ok: false, error };
      }
    });
    const settle = (which: "all" | "durable" | "non-durable", syncError?: unknown) =>
      writes.forEach((write, i) => {
        if (which === "durable" && !write.durable) return;
        if (which === "non-durable" && write.durable) return;
        const outcome = outcomes[i] as { ok: true; value: unknown } | { ok: false; error: unknown };
        if (!outcome.ok) write.reject(this.mapError(outcome.error));
        else if (syncError !== undefined && write.durable) write.reject(this.mapError(syncError));
        else write.resolve(outcome.value);
      });
    if (!durable || this.walFile === undefined) {
      settle("all");
      return;
    }
    // Non-durable writes (acks, receipts) are committed now: they need not wait for the batch's fsync.
    settle("non-durable");
    this.syncWal().then(
      () => settle("durable"),
      (error) => settle("durable", error),
    );
  }

  /**
   * fsyncs the WAL; calls that arrive while one runs share the NEXT sync (their frames may have
   * been written after the running one started).
   */
  private syncWal(): Promise<void> {
    if (!this.syncing) {
      this.syncing = this.fsyncWal().finally(() => {
        this.syncing = undefined;
      });
      return this.syncing;
    }
    if (!this.syncQueued) {
      this.syncQueued = this.syncing
        .catch(() => {})
        .then(() => {
          this.syncQueued = undefined;
          return this.syncWal();
        });
    }
    return this.syncQueued;
  }

  private async fsyncWal(): Promise<void> {
    const t0 = performance.now();
    try {
      await this.fsyncWalInner();
    } finally {
      if (timing) record("fsync", performance.now() - t0);
    }
  }

  private async fsyncWalInner(): Promise<void> {
    const file = this.walFile!;
    if (this.wal && !this.followWalInode) {
      await this.wal.handle.datasync();
      return;
    }
    // SQLite may delete and recreate the WAL (e.g. when the last other connection closes): follow the inode.
    const ino = (await stat(file)).ino;
    if (this.wal?.ino !== ino) {
      await this.wal?.handle.close().catch(() => {});
      this.wal = { handle: await open(file, "r"), ino };
    }
    // fdatasync: the WAL's data (and its size, if it grew); no journal commit for timestamps.
    await this.wal.handle.datasync();
  }

  /** Waits for any fsync in flight and releases the WAL handle. */
  async close(): Promise<void> {
    await this.syncQueued?.catch(() => {});
    await this.syncing?.catch(() => {});
    await this.wal?.handle.close().catch(() => {});
    this.wal = undefined;
  }

  /** Writes waiting for the next commit. */
  get size(): number {
    return this.pending.length;
  }

  /** Batches committed (or attempted) and writes run so far, for metrics and tests. */
  get stats(): { batches: number; writes: number } {
    return { batches: this.batches, writes: this.writes };
  }
}
