// One shard of the device queues: its own SQLite file (`queue-<index>.db` in the data directory),
// written by exactly one process (the worker that owns the shard), read by any.
//
// Why a file per shard: SQLite has one write lock per file. Workers sharing one file serialize
// their commits on it, and a waiting writer sleeps in SQLite's busy handler with its event loop
// blocked. With one writer per file, every commit is uncontended and the event loop never sleeps.
//
// Seqs are assigned here, not by SQLite: seq = counter * SHARD_STRIDE + shard index. They are
// unique across all shards (entries can move between shards when the worker count changes), strictly
// increasing per device (one writer assigns them in commit order), and never reused (the counter is
// persisted in the same transaction as the entries).
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { StorageError } from "../errors.ts";
import type { AccountId, AckedEntry, DeviceId, EnqueueItem, QueueEntry, QueueRecipient, QueueSeq } from "../types.ts";
import { Checkpointer } from "./checkpointer.ts";
import { GroupCommitter } from "./group-commit.ts";
import { type AckRow, type QueueRow, toAcked, toQueueEntry } from "./queue-rows.ts";

/** Seqs of shard i are ≡ i (mod SHARD_STRIDE); more than the largest worker count (64). */
export const SHARD_STRIDE = 128;

/**
 * The counter is persisted in blocks (hi-lo): a transaction that comes within half a block of the
 * persisted bound raises it to a block past its last seq; opening the shard reserves a block too.
 * Persisting it with every enqueue cost one more row write (and a WAL page) per commit; a restart
 * now skips at most a block and a half of seqs, never reuses one.
 */
export const COUNTER_BLOCK = 4096;

/**
 * How many of the entries this process inserted last it remembers the receipt routing of (see
 * `recent`), a power of two: ~1 MiB of slots plus the entries not yet acked; older entries are
 * acked through DELETE … RETURNING as before.
 */
export const RECENT_ENTRIES = 65_536;

/** A seq's slot in the recent ring: its counter (consecutive per insert) modulo the ring's size. */
const recentSlot = (seq: QueueSeq) => Math.floor(seq / SHARD_STRIDE) & (RECENT_ENTRIES - 1);

/** Accounts the owner's counts may hold (most of them zeros) before they are rebuilt without the zeros. */
const MAX_COUNTED = 200_000;

export const queueShardFileName = (index: number) => `queue-${index}.db`;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS shard_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
  -- A ciphertext shared by many entries of this shard (group messages) is stored once; refs counts
  -- the entries pointing at it and the trigger drops it with the last one.
  CREATE TABLE IF NOT EXISTS payloads (id INTEGER PRIMARY KEY, data BLOB NOT NULL, refs INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    envelope BLOB,
    payload_id INTEGER,
    sender_account_id TEXT,
    sender_device_id INTEGER,
    message_id TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((envelope IS NULL) <> (payload_id IS NULL))
  );
  CREATE INDEX IF NOT EXISTS queue_by_device ON queue (account_id, device_id, seq);

  CREATE TRIGGER IF NOT EXISTS queue_release_payload AFTER DELETE ON queue
  WHEN old.payload_id IS NOT NULL
  BEGIN
    UPDATE payloads SET refs = refs - 1 WHERE id = old.payload_id;
    DELETE FROM payloads WHERE id = old.payload_id AND refs <= 0;
  END;
`;

/** A row as it leaves a shard when entries move to another one (payloads inlined; a new seq there). */
export type MovedRow = Omit<QueueRow, "seq">;

export interface QueueShardOptions {
  file: string;
  index: number;
  /** Read-only handle on another process's shard (fetch / depth); never writes. */
  readonly?: boolean;
  /** fsync the WAL off the event loop (default true; see GroupCommitter). */
  walSync?: boolean;
  mapError: (error: unknown) => unknown;
  /** Checkpoint from a worker thread instead of inside commits (the shard's owner). */
  checkpointThread?: boolean;
}

export class QueueShard {
  readonly file: string;
  readonly index: number;
  private readonly db: Database.Database;
  private readonly committer: GroupCommitter | undefined;
  private readonly checkpointer: Checkpointer | undefined;
  private counter = 0;
  /** The counter value persisted (in a committed or in-flight transaction): seqs up to it are reserved. */
  private reserved = 0;
  /** Part of `reserved` that is committed and fsynced (seqs below it may be handed out outside a transaction). */
  private committedReserve = 0;
  private readonly stmt: Record<string, Database.Statement>;
  /**
   * What an ack of the entries inserted lately returns: an ack found here is a plain DELETE
   * instead of DELETE … RETURNING, whose result table costs about as much again as the delete
   * (measured ~3.5 vs ~7 µs per row). A ring indexed by the seq's counter (consecutive per
   * insert), so the oldest entry is overwritten at no cost (a Map evicting its first key cost
   * ~25 µs per insert once full: V8 skips the deleted slots from the start on every lookup).
   * `seqs` says which seq a slot holds. Safe when stale (the row was purged, dropped or its
   * insert rolled back): seqs are never reused, and the DELETE still checks the account and
   * device, so an entry counts as acked only if its row was deleted by this ack.
   */
  private recent: { seqs: Float64Array; entries: (AckedEntry | undefined)[] } | undefined;
  /**
   * The owner's count of entries per account (all its device queues), so that a fetch or depth of
   * an empty queue (every login of a device with nothing waiting) needs no SQL: one such read cost
   * ~10–40 µs here, mostly taking and releasing the WAL read locks. Kept in step inside the
   * transactions that change rows; built from the file on first use and again after anything it
   * cannot follow (a rolled-back batch, a drop, a move; a purge by another process only leaves
   * counts too high, which costs a read and is then corrected). Per account, not per device: the
   * account id is a long-lived string whose hash V8 caches, so an update is one Map operation with
   * no key to build (a per-device key cost ~2% of the server at full messaging load). Zeros stay
   * (no delete and re-insert per message) until `MAX_COUNTED` accounts, then they are swept.
   */
  private counts: Map<AccountId, number> | undefined;
  private countsLimit = MAX_COUNTED;
  private readonly mapError: (error: unknown) => unknown;

  constructor(options: QueueShardOptions) {
    this.file = options.file;
    this.index = options.index;
    this.mapError = options.mapError;
    if (options.readonly) {
      // The owner creates the file; until it exists there is nothing to read.
      if (!existsSync(options.file))
        throw new StorageError("NOT_FOUND", `queue shard ${options.index} not created yet`);
      this.db = new Database(options.file, { readonly: true, fileMustExist: true, timeout: 5000 });
    } else {
      this.db = new Database(options.file, { timeout: 5000 });
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = FULL");
      this.db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      this.db.exec(SCHEMA);
    }
    const prepare = (sql: string) => this.db.prepare(sql);
    this.stmt = {
      fetch: prepare(
        `SELECT q.seq, q.account_id, q.device_id, COALESCE(q.envelope, p.data) AS envelope,
           q.sender_account_id, q.sender_device_id, q.message_id, q.created_at
         FROM queue q LEFT JOIN payloads p ON p.id = q.payload_id
         WHERE q.account_id = ? AND q.device_id = ? AND q.seq > ? ORDER BY q.seq LIMIT ?`,
      ),
      depth: prepare("SELECT COUNT(*) AS n FROM queue WHERE account_id = ? AND device_id = ?"),
      total: prepare("SELECT COUNT(*) AS n FROM queue"),
      ...(options.readonly
        ? {}
        : {
            insert: prepare(
              `INSERT INTO queue (seq, account_id, device_id, envelope, payload_id, sender_account_id,
                 sender_device_id, message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            ),
            insertPayload: prepare("INSERT INTO payloads (data, refs) VALUES (?, ?) RETURNING id"),
            saveCounter: prepare(
              "INSERT INTO shard_meta (key, value) VALUES ('counter', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
            countByAccount: prepare("SELECT account_id, COUNT(*) AS n FROM queue GROUP BY account_id"),
            accountDepth: prepare("SELECT COUNT(*) AS n FROM queue WHERE account_id = ?"),
            ackKnown: prepare("DELETE FROM queue WHERE account_id = ? AND device_id = ? AND seq = ?"),
            ack: prepare(
              `DELETE FROM queue WHERE account_id = ? AND device_id = ? AND seq = ?
                 RETURNING seq, sender_account_id, sender_device_id, message_id, payload_id IS NOT NULL AS shared`,
            ),
            dropDevice: prepare("DELETE FROM queue WHERE account_id = ? AND device_id = ?"),
            dropAccount: prepare("DELETE FROM queue WHERE account_id = ?"),
            purgeChunk: prepare(
              // No index on created_at (it would cost every insert and delete): the hourly purge scans in seq
              // order, which is nearly creation order, and stops after a chunk.
              "DELETE FROM queue WHERE seq IN (SELECT seq FROM queue WHERE created_at < ? ORDER BY seq LIMIT ?)",
            ),
            takeChunk: prepare(
              `SELECT q.seq, q.account_id, q.device_id, COALESCE(q.envelope, p.data) AS envelope,
                 q.sender_account_id, q.sender_device_id, q.message_id, q.created_at
               FROM queue q LEFT JOIN payloads p ON p.id = q.payload_id WHERE q.seq > ? ORDER BY q.seq LIMIT ?`,
            ),
            deleteSeq: prepare("DELETE FROM queue WHERE seq = ?"),
          }),
    };
    if (!options.readonly) {
      const saved = (
        this.db.prepare("SELECT value FROM shard_meta WHERE key = 'counter'").get() as { value: number } | undefined
      )?.value;
      const maxSeq = (this.db.prepare("SELECT MAX(seq) AS m FROM queue").get() as { m: number | null }).m ?? 0;
      this.counter = Math.max(saved ?? 0, Math.floor(maxSeq / SHARD_STRIDE) + 1);
      // A first block reserved now (autocommit with synchronous=FULL: on disk before this returns),
      // so seqs for memory pushes exist from the first message on. Otherwise they would wait for
      // the first enqueue's fsync, which with push-at-commit comes after its receipt is routed.
      this.reserved = this.counter + COUNTER_BLOCK;
      this.stmt.saveCounter!.run(this.reserved);
      this.committedReserve = this.reserved;
      this.committer = new GroupCommitter(
        this.db,
        this.mapError,
        options.walSync === false ? undefined : `${this.file}-wal`,
        false, // this connection outlives the committer, so the WAL file stays the same
        () => {
          this.counts = undefined;
        },
      );
      if (options.checkpointThread) {
        this.db.pragma("wal_autocheckpoint = 0");
        this.checkpointer = new Checkpointer(this.file);
      }
    }
  }

  private get writer(): GroupCommitter {
    if (!this.committer) throw new StorageError("INTERNAL", `queue shard ${this.index} is open read-only`);
    return this.committer;
  }

  private nextSeq(): number {
    return ++this.counter * SHARD_STRIDE + this.index;
  }

  /**
   * Inside a transaction about to take `n` seqs: persists a higher bound first if they would pass
   * the reserved one; returns the bound raised (0: none).
   */
  private reserve(n: number): number {
    // Raised half a block early: takeMemorySeq hands out seqs only below the bound whose fsync is
    // done, and the next bound is committed and synced while the rest of this one is used.
    if (this.counter + n <= this.reserved - COUNTER_BLOCK / 2) return 0;
    this.reserved = this.counter + n + COUNTER_BLOCK;
    this.stmt.saveCounter!.run(this.reserved);
    return this.reserved;
  }

  /** Writes that take seqs: tracks which reserved bound is committed. */
  private writeWithSeqs(
    work: (reserve: (n: number) => void) => QueueSeq[],
    durable: boolean,
    onCommit: ((seqs: QueueSeq[]) => void) | undefined,
  ): Promise<QueueSeq[]> {
    let bound = 0;
    return this.writer
      .write(
        () =>
          work((n) => {
            bound = this.reserve(n) || bound;
          }),
        durable,
        false,
        onCommit,
      )
      .then(
        (seqs) => {
          if (bound > this.committedReserve) this.committedReserve = bound;
          return seqs;
        },
        (error: unknown) => {
          // Rolled back: the bound was not persisted; the next write persists one again.
          if (bound > 0) this.reserved = Math.max(this.committedReserve, this.counter);
          throw error;
        },
      );
  }

  /**
   * A seq for an entry that is pushed from memory and never stored (a delivered receipt to a device
   * connected here), or null when the committed reservation is used up (then store the entry).
   * Being below the persisted bound, it is never handed out again, also after a restart.
   */
  takeMemorySeq(): QueueSeq | null {
    if (this.committer === undefined || this.counter + 1 > this.committedReserve) return null;
    return this.nextSeq();
  }

  /**
   * Appends entries; `check` runs inside the transaction, right before the rows go in (the device
   * existence check against the accounts database). `onCommit` gets the seqs once the rows are
   * committed, before the fsync that the returned promise waits for (GroupCommitter.write).
   */
  enqueue(
    items: readonly EnqueueItem[],
    now: number,
    check: () => void,
    onCommit?: (seqs: QueueSeq[]) => void,
  ): Promise<QueueSeq[]> {
    const durable = items.some((item) => item.durable !== false);
    return this.writeWithSeqs(
      (reserve) => {
        check();
        reserve(items.length);
        return items.map((item) => this.insertEntry(item, item.envelope, null, now));
      },
      durable,
      onCommit,
    );
  }

  /** One queue row with the next seq: its own envelope, or a reference to a shared payload. */
  private insertEntry(r: QueueRecipient, envelope: Uint8Array | null, payloadId: number | null, now: number): QueueSeq {
    const seq = this.nextSeq();
    this.stmt.insert!.run(
      seq,
      r.accountId,
      r.deviceId,
      envelope,
      payloadId,
      r.senderAccountId ?? null,
      r.senderDeviceId ?? null,
      r.messageId ?? null,
      now,
    );
    const counts = this.counts;
    if (counts !== undefined) counts.set(r.accountId, (counts.get(r.accountId) ?? 0) + 1);
    // Allocated on first insert: the primary's purge and rebalancing handles never need it.
    this.recent ??= { seqs: new Float64Array(RECENT_ENTRIES), entries: new Array(RECENT_ENTRIES) };
    const slot = recentSlot(seq);
    this.recent.seqs[slot] = seq;
    this.recent.entries[slot] = {
      seq,
      senderAccountId: r.senderAccountId ?? null,
      senderDeviceId: r.senderDeviceId ?? null,
      messageId: r.messageId ?? null,
      shared: payloadId !== null,
    };
    return seq;
  }

  enqueueShared(
    payload: Uint8Array,
    recipients: readonly QueueRecipient[],
    now: number,
    check: () => void,
    onCommit?: (seqs: QueueSeq[]) => void,
  ) {
    return this.writeWithSeqs(
      (reserve) => {
        check();
        reserve(recipients.length);
        const payloadId = (this.stmt.insertPayload!.get(payload, recipients.length) as { id: number }).id;
        return recipients.map((r) => this.insertEntry(r, null, payloadId, now));
      },
      true,
      onCommit,
    );
  }

  /** Not fsynced on its own: a lost ack only redelivers an entry, which devices dedupe. */
  ack(accountId: AccountId, deviceId: DeviceId, seqs: readonly QueueSeq[]): Promise<AckedEntry[]> {
    return this.writer.write(
      () => {
        const acked: AckedEntry[] = [];
        for (const seq of seqs) {
          const slot = recentSlot(seq);
          const known = this.recent?.seqs[slot] === seq ? this.recent.entries[slot] : undefined;
          if (known !== undefined) {
            // (an ack naming another device's seq deletes nothing and leaves the entry known)
            if (this.stmt.ackKnown!.run(accountId, deviceId, seq).changes === 1) {
              this.recent!.entries[slot] = undefined;
              acked.push(known);
            }
            continue;
          }
          const row = this.stmt.ack!.get(accountId, deviceId, seq) as AckRow | undefined;
          if (row !== undefined) acked.push(toAcked(row));
        }
        const counts = this.counts;
        if (counts !== undefined && acked.length > 0)
          counts.set(accountId, (counts.get(accountId) ?? 0) - acked.length);
        return acked;
      },
      false,
      false,
    );
  }

  /** Deletes a device's queue (deviceId given) or every queue of an account. */
  drop(accountId: AccountId, deviceId?: DeviceId): Promise<void> {
    return this.writer.write(() => {
      if (deviceId === undefined) this.stmt.dropAccount!.run(accountId);
      else this.stmt.dropDevice!.run(accountId, deviceId);
      this.counts = undefined; // rare: rebuilt on next use
    });
  }

  fetch(accountId: AccountId, deviceId: DeviceId, afterSeq: QueueSeq, limit: number): QueueEntry[] {
    const owner = this.committer !== undefined;
    if (owner && this.knownEmpty(accountId)) return [];
    const rows = (this.stmt.fetch!.all(accountId, deviceId, afterSeq, limit) as QueueRow[]).map(toQueueEntry);
    // This device's queue read from the start, and nothing was left: if the account's count says
    // more than that, one count of its rows corrects a count a purge by another process left high.
    if (owner && afterSeq === 0 && rows.length < limit && (this.counts?.get(accountId) ?? 0) > rows.length) {
      this.counts?.set(accountId, (this.stmt.accountDepth!.get(accountId) as { n: number }).n);
    }
    return rows;
  }

  depth(accountId: AccountId, deviceId: DeviceId): number {
    if (this.committer !== undefined && this.knownEmpty(accountId)) return 0;
    return (this.stmt.depth!.get(accountId, deviceId) as { n: number }).n;
  }

  /** The owner's counts say none of `accountId`'s queues holds an entry (see `counts`). */
  private knownEmpty(accountId: AccountId): boolean {
    let counts = this.counts;
    if (counts === undefined || counts.size > this.countsLimit) {
      counts = new Map();
      for (const r of this.stmt.countByAccount!.all() as { account_id: string; n: number }[]) {
        counts.set(r.account_id, r.n);
      }
      this.counts = counts;
      // (if most accounts really have entries waiting, sweep only after the map has doubled)
      this.countsLimit = Math.max(MAX_COUNTED, 2 * counts.size);
    }
    return (counts.get(accountId) ?? 0) <= 0;
  }

  total(): number {
    return (this.stmt.total!.get() as { n: number }).n;
  }

  /** Deletes entries created before `cutoff`, in chunks; returns how many. */
  async purge(cutoff: number, chunk: number): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await this.writer.write(() => {
        this.counts = undefined;
        return this.stmt.purgeChunk!.run(cutoff, chunk).changes;
      });
      total += deleted;
      if (deleted < chunk) return total;
    }
  }

  /**
   * Moves every entry that `keep` rejects to other shards (rebalancing after the worker count
   * changed): `put` must have stored them durably before they are deleted here. Synchronous;
   * runs at start-up, before any worker serves.
   */
  moveOut(keep: (accountId: AccountId) => boolean, put: (rows: MovedRow[]) => void): number {
    this.counts = undefined;
    let after = -1;
    let moved = 0;
    for (;;) {
      const rows = this.stmt.takeChunk!.all(after, 5_000) as QueueRow[];
      if (rows.length === 0) return moved;
      after = rows[rows.length - 1]!.seq;
      const leaving = rows.filter((r) => !keep(r.account_id));
      if (leaving.length === 0) continue;
      put(leaving);
      this.db.transaction(() => {
        for (const r of leaving) this.stmt.deleteSeq!.run(r.seq);
      })();
      moved += leaving.length;
    }
  }

  /** Appends moved rows with fresh seqs, in the order given (their per-device order is kept). Synchronous, durable. */
  putMoved(rows: readonly MovedRow[]): void {
    this.counts = undefined;
    this.db.transaction(() => {
      for (const r of rows) {
        this.stmt.insert!.run(
          this.nextSeq(),
          r.account_id,
          r.device_id,
          r.envelope,
          null,
          r.sender_account_id,
          r.sender_device_id,
          r.message_id,
          r.created_at,
        );
      }
      this.stmt.saveCounter!.run(Math.max(this.counter, this.reserved));
    })();
    this.reserved = Math.max(this.reserved, this.counter);
    this.committedReserve = Math.max(this.committedReserve, this.counter);
  }

  get commitStats(): { batches: number; writes: number } {
    return this.committer?.stats ?? { batches: 0, writes: 0 };
  }

  /** Flushes pending writes (and their fsync) and closes the file. */
  async close(): Promise<void> {
    if (this.committer) {
      this.committer.flush();
      await this.committer.close();
    }
    this.db.close();
    await this.checkpointer?.close();
  }
}
