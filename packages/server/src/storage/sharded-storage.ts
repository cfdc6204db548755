// ServerStorage with the device queues sharded by recipient account over the worker processes.
//
// Accounts, devices, prekeys, contacts and pending registrations stay in the one shared database
// (parley.db, SqliteStorage): they change rarely. The device queues take every message, ack and
// receipt, so they are split: the queues of account A live in shard owner(A) = hash(A) mod N, a file
// of its own (queue-<i>.db) that only worker i writes. A worker that must enqueue or ack for another
// shard forwards the call to its owner over the worker mesh (ShardLink) and the owner commits it
// in its next group commit. Reads (fetch, depth) go straight to the owner's file through a
// read-only connection: SQLite's WAL lets any process read while one writes.
//
// With one shard (`parley serve --workers 0`, tests) everything is local.
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { type Clock, systemClock } from "../clock.ts";
import { StorageError } from "./errors.ts";
import { type MovedRow, QueueShard, queueShardFileName } from "./sqlite/queue-shard.ts";
import { DEFAULT_RETENTION_MS, mapSqliteError, SqliteStorage } from "./sqlite/sqlite-storage.ts";
import type {
  Account,
  AccountId,
  AckedEntry,
  Device,
  DeviceId,
  DeviceListBlob,
  EnqueueItem,
  GroupId,
  GroupUpdate,
  NewDevice,
  OnCommitted,
  PreKeyBundle,
  PreKeyCounts,
  PreKeyUpload,
  PresencePrivacy,
  QueueEntry,
  QueueRecipient,
  QueueSeq,
  RemoteCommit,
  ServerStorage,
  StoredGroup,
  VerifyCodeResult,
} from "./types.ts";
import {
  checkAccountId,
  checkDeviceId,
  checkEnvelope,
  checkFetchLimit,
  checkItems,
  checkNonNegativeInteger,
  checkRecipient,
} from "./validate.ts";

/** A queue operation forwarded to the shard that owns the queues it touches. */
export type ShardOp =
  | { op: "enqueue"; items: EnqueueItem[] }
  | { op: "enqueueShared"; payload: Uint8Array; recipients: QueueRecipient[] }
  | { op: "ack"; accountId: AccountId; deviceId: DeviceId; seqs: QueueSeq[] }
  | { op: "drop"; accountId: AccountId; deviceId?: DeviceId }
  | { op: "purge"; now: number };

/** How a shard reaches the others (the worker mesh between cluster workers, or in-process for tests). */
export interface ShardLink {
  /** Runs `op` on shard `shard`; settles with its result or its StorageError. */
  call(shard: number, op: ShardOp): Promise<unknown>;
  /** Serves calls from the other shards. */
  serve(handler: (op: ShardOp) => Promise<unknown>): void;
}

/** Which shard owns an account's queues: FNV-1a of the account id, mod the shard count. */
export function shardOf(accountId: AccountId, count: number): number {
  if (count === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < accountId.length; i++) {
    h ^= accountId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % count;
}

export interface ShardedStorageOptions {
  dataDir: string;
  clock?: Clock;
  retentionMs?: number;
  maxDevicesPerAccount?: number;
  maxEnvelopeBytes?: number;
  /** This process's shard and the number of shards (= workers; 1 in-process). */
  shard: { index: number; count: number };
  /** Required when count > 1. */
  link?: ShardLink;
}

const PURGE_CHUNK = 5_000;

export class ShardedStorage implements ServerStorage {
  /** The shared database: accounts, devices, prekeys, contacts, registrations. */
  readonly shared: SqliteStorage;
  readonly index: number;
  readonly count: number;
  private readonly local: QueueShard;
  private readonly readers = new Map<number, QueueShard>();
  private readonly link: ShardLink | undefined;
  private readonly clock: Clock;
  private readonly dataDir: string;
  private readonly retentionMs: number;
  private readonly maxEnvelopeBytes: number;
  private closed = false;
  /**
   * Devices known to exist, for the enqueue check at commit (a read of the shared database per entry
   * costs more than the insert). Every device removal ends with a "drop" at this owner, which
   * forgets the device, so an entry can only slip in before the drop deletes the queue.
   */
  private readonly knownDevices = new Map<AccountId, Set<DeviceId>>();

  constructor(options: ShardedStorageOptions) {
    const { index, count } = options.shard;
    if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
      throw new StorageError("INVALID_ARGUMENT", `bad shard ${index} of ${count}`);
    }
    if (count > 1 && !options.link) throw new StorageError("INVALID_ARGUMENT", "several shards need a link");
    this.index = index;
    this.count = count;
    this.link = options.link;
    this.clock = options.clock ?? systemClock;
    this.dataDir = options.dataDir;
    this.retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.maxEnvelopeBytes = options.maxEnvelopeBytes ?? 256 * 1024;
    this.shared = new SqliteStorage({
      dataDir: options.dataDir,
      clock: this.clock,
      retentionMs: this.retentionMs,
      ...(options.maxDevicesPerAccount !== undefined ? { maxDevicesPerAccount: options.maxDevicesPerAccount } : {}),
      maxEnvelopeBytes: this.maxEnvelopeBytes,
    });
    this.local = new QueueShard({
      file: join(options.dataDir, queueShardFileName(index)),
      index,
      mapError: mapSqliteError,
      checkpointThread: true,
    });
    this.link?.serve((op) => this.serveOp(op));
  }

  get file(): string {
    return this.shared.file;
  }

  // ------------------------------------------------------------------ helpers

  private ensureOpen(): void {
    if (this.closed) throw new StorageError("CLOSED", "storage is closed");
  }

  private guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      this.ensureOpen();
      return body();
    } catch (error) {
      return Promise.reject(mapSqliteError(error));
    }
  }

  private owner(accountId: AccountId): number {
    return shardOf(accountId, this.count);
  }

  /** The shard's file for reading: ours, or a read-only connection to another worker's (null: not created yet). */
  private reader(shard: number): QueueShard | null {
    if (shard === this.index) return this.local;
    let r = this.readers.get(shard);
    if (!r) {
      const file = join(this.dataDir, queueShardFileName(shard));
      if (!existsSync(file)) return null;
      r = new QueueShard({ file, index: shard, readonly: true, mapError: mapSqliteError });
      this.readers.set(shard, r);
    }
    return r;
  }

  /**
   * Runs a queue op on this process's shard (for local callers and for calls from other shards).
   * `onCommit`: an enqueue's seqs once committed, before its fsync (QueueShard.enqueue).
   */
  private runLocal(op: ShardOp, onCommit?: (seqs: QueueSeq[]) => void): Promise<unknown> {
    const now = this.clock.now();
    switch (op.op) {
      case "enqueue":
        return this.local.enqueue(op.items, now, () => this.requireDevices(op.items), onCommit);
      case "enqueueShared":
        return this.local.enqueueShared(
          op.payload,
          op.recipients,
          now,
          () => this.requireDevices(op.recipients),
          onCommit,
        );
      case "ack":
        return this.local.ack(op.accountId, op.deviceId, op.seqs);
      case "drop":
        if (op.deviceId === undefined) this.knownDevices.delete(op.accountId);
        else this.knownDevices.get(op.accountId)?.delete(op.deviceId);
        return this.local.drop(op.accountId, op.deviceId);
      case "purge":
        return this.local.purge(op.now - this.retentionMs, PURGE_CHUNK);
    }
  }

  private requireDevices(targets: readonly QueueRecipient[]): void {
    for (const t of targets) {
      if (this.knownDevices.get(t.accountId)?.has(t.deviceId)) continue;
      this.shared.requireDevicesNow([t]);
      if (this.knownDevices.size > 200_000) this.knownDevices.clear();
      let set = this.knownDevices.get(t.accountId);
      if (!set) {
        set = new Set();
        this.knownDevices.set(t.accountId, set);
      }
      set.add(t.deviceId);
    }
  }

  private serveOp(op: ShardOp): Promise<unknown> {
    if (this.closed) return Promise.reject(new StorageError("CLOSED", "storage is closed"));
    const listener = this.remoteCommitListener;
    // The owner delivers another worker's entries as soon as they are committed: a connected
    // recipient gets its push while the disk syncs, and the reply (the sender's tick) waits for the
    // fsync.
    if (listener && (op.op === "enqueue" || op.op === "enqueueShared"))
      return this.runLocal(op, (seqs) => listener(op, seqs));
    return this.runLocal(op);
  }

  private remoteCommitListener: ((commit: RemoteCommit, seqs: QueueSeq[]) => void) | undefined;

  onRemoteCommit(listener: (commit: RemoteCommit, seqs: QueueSeq[]) => void): void {
    this.remoteCommitListener = listener;
  }

  queueOwner(accountId: AccountId): number {
    return this.owner(accountId);
  }

  get shardIndex(): number {
    return this.index;
  }

  private run(shard: number, op: ShardOp, onCommit?: (seqs: QueueSeq[]) => void): Promise<unknown> {
    if (shard === this.index) return this.runLocal(op, onCommit);
    return this.link!.call(shard, op);
  }

  /**
   * Splits items by owning shard; one call per shard, results back in input order. `onCommitted`
   * gets the part stored here (see OnCommitted).
   */
  private split<T extends QueueRecipient>(
    items: readonly T[],
    makeOp: (part: T[]) => ShardOp,
    onCommitted: OnCommitted | undefined,
  ): Promise<QueueSeq[]> {
    const first = this.owner(items[0]!.accountId);
    let single = true;
    for (let i = 1; i < items.length && single; i++) single = this.owner(items[i]!.accountId) === first;
    // (the common case, one shard, without an async wrapper: a promise less per message)
    if (single) return this.run(first, makeOp(items as T[]), onCommitted) as Promise<QueueSeq[]>;
    return this.splitOverShards(items, makeOp, onCommitted);
  }

  private async splitOverShards<T extends QueueRecipient>(
    items: readonly T[],
    makeOp: (part: T[]) => ShardOp,
    onCommitted: OnCommitted | undefined,
  ): Promise<QueueSeq[]> {
    // Several shards: check every device first, so a missing one stores nothing anywhere. (A device
    // removed between this check and a shard's commit is the one race left; its entries are
    // dropped with its queue.)
    this.shared.requireDevicesNow(items);
    const parts = new Map<number, { items: T[]; at: number[] }>();
    items.forEach((item, i) => {
      const s = this.owner(item.accountId);
      let part = parts.get(s);
      if (!part) {
        part = { items: [], at: [] };
        parts.set(s, part);
      }
      part.items.push(item);
      part.at.push(i);
    });
    const seqs = new Array<QueueSeq>(items.length);
    await Promise.all(
      [...parts].map(async ([s, part]) => {
        const onCommit =
          onCommitted &&
          ((got: QueueSeq[]) => {
            const local = new Array<QueueSeq | undefined>(items.length);
            part.at.forEach((i, k) => {
              local[i] = got[k];
            });
            onCommitted(local);
          });
        const got = (await this.run(s, makeOp(part.items), onCommit)) as QueueSeq[];
        part.at.forEach((i, k) => {
          seqs[i] = got[k]!;
        });
      }),
    );
    return seqs;
  }

  private async dropQueues(accountId: AccountId, deviceId?: DeviceId): Promise<void> {
    await this.run(this.owner(accountId), { op: "drop", accountId, ...(deviceId !== undefined ? { deviceId } : {}) });
  }

  // --------------------------------------------------------------- delegated

  createAccount(name: string, primaryDevice: NewDevice): Promise<{ account: Account; device: Device }> {
    return this.shared.createAccount(name, primaryDevice);
  }
  getAccountByName(name: string): Promise<Account | null> {
    return this.shared.getAccountByName(name);
  }
  getAccount(id: AccountId): Promise<Account | null> {
    return this.shared.getAccount(id);
  }
  async deleteAccount(id: AccountId): Promise<void> {
    await this.shared.deleteAccount(id);
    await this.dropQueues(id);
  }
  setPresencePrivacy(id: AccountId, privacy: PresencePrivacy): Promise<void> {
    return this.shared.setPresencePrivacy(id, privacy);
  }
  putPendingRegistration(name: string, code: string, expiresAt: number): Promise<void> {
    return this.shared.putPendingRegistration(name, code, expiresAt);
  }
  verifyPendingRegistration(name: string, code: string, maxAttempts: number): Promise<VerifyCodeResult> {
    return this.shared.verifyPendingRegistration(name, code, maxAttempts);
  }
  setContacts(id: AccountId, names: string[]): Promise<void> {
    return this.shared.setContacts(id, names);
  }
  getContacts(id: AccountId): Promise<string[]> {
    return this.shared.getContacts(id);
  }

  // Groups live in the shared database: every worker routes by them.
  applyGroupUpdate(update: GroupUpdate): Promise<void> {
    return this.guard(() => this.shared.applyGroupUpdate(update));
  }
  getGroup(group: GroupId): Promise<StoredGroup | null> {
    return this.guard(() => this.shared.getGroup(group));
  }
  getGroupLog(group: GroupId, afterVersion: number, limit: number): Promise<Uint8Array[]> {
    return this.guard(() => this.shared.getGroupLog(group, afterVersion, limit));
  }
  findGroupByInvite(inviteHash: Uint8Array): Promise<GroupId | null> {
    return this.guard(() => this.shared.findGroupByInvite(inviteHash));
  }
  listGroups(accountId: AccountId): Promise<{ group: GroupId; version: number }[]> {
    return this.guard(() => this.shared.listGroups(accountId));
  }
  canSeePresence(viewer: AccountId, target: AccountId): Promise<boolean> {
    return this.shared.canSeePresence(viewer, target);
  }
  listPresenceWatchers(target: AccountId): Promise<AccountId[]> {
    return this.shared.listPresenceWatchers(target);
  }
  addDevice(accountId: AccountId, device: NewDevice): Promise<Device> {
    return this.shared.addDevice(accountId, device);
  }
  listDevices(accountId: AccountId): Promise<Device[]> {
    return this.shared.listDevices(accountId);
  }
  getDevice(accountId: AccountId, deviceId: DeviceId): Promise<Device | null> {
    return this.shared.getDevice(accountId, deviceId);
  }
  getDeviceByNoiseKey(noiseStaticKey: Uint8Array): Promise<Device | null> {
    return this.shared.getDeviceByNoiseKey(noiseStaticKey);
  }
  async removeDevice(accountId: AccountId, deviceId: DeviceId): Promise<void> {
    await this.shared.removeDevice(accountId, deviceId);
    await this.dropQueues(accountId, deviceId);
  }
  touchDevice(accountId: AccountId, deviceId: DeviceId, at: number): Promise<void> {
    return this.shared.touchDevice(accountId, deviceId, at);
  }
  setDeviceList(accountId: AccountId, list: DeviceListBlob): Promise<void> {
    return this.shared.setDeviceList(accountId, list);
  }
  getDeviceList(accountId: AccountId): Promise<DeviceListBlob | null> {
    return this.shared.getDeviceList(accountId);
  }
  uploadPreKeys(accountId: AccountId, deviceId: DeviceId, upload: PreKeyUpload): Promise<void> {
    return this.shared.uploadPreKeys(accountId, deviceId, upload);
  }
  getPreKeyCounts(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyCounts> {
    return this.shared.getPreKeyCounts(accountId, deviceId);
  }
  takePreKeyBundle(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyBundle> {
    return this.shared.takePreKeyBundle(accountId, deviceId);
  }
  takePreKeyBundles(accountId: AccountId): Promise<PreKeyBundle[]> {
    return this.shared.takePreKeyBundles(accountId);
  }

  // --------------------------------------------------------------------- queues

  enqueue(items: EnqueueItem[], onCommitted?: OnCommitted): Promise<QueueSeq[]> {
    return this.guard(() => {
      checkItems(items, "items");
      for (const item of items) {
        checkRecipient(item);
        checkEnvelope(item.envelope, this.maxEnvelopeBytes);
      }
      return this.split(items, (part) => ({ op: "enqueue", items: part }), onCommitted);
    });
  }

  enqueueShared(payload: Uint8Array, recipients: QueueRecipient[], onCommitted?: OnCommitted): Promise<QueueSeq[]> {
    return this.guard(() => {
      checkEnvelope(payload, this.maxEnvelopeBytes);
      checkItems(recipients, "recipients");
      recipients.forEach(checkRecipient);
      return this.split(recipients, (part) => ({ op: "enqueueShared", payload, recipients: part }), onCommitted);
    });
  }

  fetch(accountId: AccountId, deviceId: DeviceId, afterSeq: QueueSeq, limit: number): Promise<QueueEntry[]> {
    return this.guard(async () => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      checkNonNegativeInteger(afterSeq, "afterSeq");
      checkFetchLimit(limit);
      return this.reader(this.owner(accountId))?.fetch(accountId, deviceId, afterSeq, limit) ?? [];
    });
  }

  ack(accountId: AccountId, deviceId: DeviceId, seqs: QueueSeq[]): Promise<AckedEntry[]> {
    return this.guard(async () => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      if (!Array.isArray(seqs)) throw new StorageError("INVALID_ARGUMENT", "seqs must be an array");
      for (const seq of seqs) checkNonNegativeInteger(seq, "seq");
      if (seqs.length === 0) return [];
      return (await this.run(this.owner(accountId), { op: "ack", accountId, deviceId, seqs })) as AckedEntry[];
    });
  }

  memorySeq(accountId: AccountId): QueueSeq | null {
    if (this.closed || this.owner(accountId) !== this.index) return null;
    return this.local.takeMemorySeq();
  }

  depth(accountId: AccountId, deviceId: DeviceId): Promise<number> {
    return this.guard(async () => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      return this.reader(this.owner(accountId))?.depth(accountId, deviceId) ?? 0;
    });
  }

  /** Entries waiting in all shards (sampled by /metrics as parley_queue_depth). */
  totalDepth(): Promise<number> {
    return this.guard(async () => {
      let n = 0;
      for (let s = 0; s < this.count; s++) n += this.reader(s)?.total() ?? 0;
      return n;
    });
  }

  async purgeExpired(now: number): Promise<number> {
    checkNonNegativeInteger(now, "now");
    this.ensureOpen();
    let total = await this.shared.purgeExpired(now); // pending registrations (and any pre-shard queue rows)
    const counts = await Promise.all(
      Array.from({ length: this.count }, (_, s) => this.run(s, { op: "purge", now }) as Promise<number>),
    );
    for (const n of counts) total += n;
    return total;
  }

  get commitStats(): { batches: number; writes: number } {
    return this.local.commitStats;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.local.close();
    for (const r of this.readers.values()) await r.close();
    this.readers.clear();
    await this.shared.close();
  }
}

// ------------------------------------------------------------ maintenance

/**
 * Brings the queue files in line with `count` shards before any worker starts: entries whose
 * account now belongs to another shard move there (the worker count changed), and so do queue
 * rows of the single shared database of earlier versions; files of shards ≥ count are removed
 * once empty. Per device, entries keep their order. Returns the number of entries moved.
 */
export async function rebalanceQueueShards(dataDir: string, count: number): Promise<number> {
  const shardFiles = readdirSync(dataDir)
    .map((name) => /^queue-(\d+)\.db$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  const targets = new Map<number, QueueShard>();
  const target = (s: number) => {
    let t = targets.get(s);
    if (!t) {
      t = new QueueShard({
        file: join(dataDir, queueShardFileName(s)),
        index: s,
        walSync: false,
        mapError: mapSqliteError,
      });
      targets.set(s, t);
    }
    return t;
  };
  const put = (rows: MovedRow[]) => {
    const byShard = new Map<number, MovedRow[]>();
    for (const r of rows) {
      const s = shardOf(r.account_id, count);
      let list = byShard.get(s);
      if (!list) {
        list = [];
        byShard.set(s, list);
      }
      list.push(r);
    }
    for (const [s, list] of byShard) target(s).putMoved(list);
  };
  let moved = 0;
  try {
    moved += moveLegacyQueue(join(dataDir, "parley.db"), put);
    for (const s of shardFiles.sort((a, b) => a - b)) {
      const source = target(s);
      moved += source.moveOut((accountId) => shardOf(accountId, count) === s, put);
    }
  } finally {
    for (const t of targets.values()) await t.close();
  }
  for (const s of shardFiles) {
    if (s < count) continue;
    for (const suffix of ["", "-wal", "-shm"])
      rmSync(join(dataDir, `${queueShardFileName(s)}${suffix}`), { force: true });
  }
  return moved;
}

/** Moves queue rows out of the shared database (written there by versions before queue shards). */
function moveLegacyQueue(file: string, put: (rows: MovedRow[]) => void): number {
  if (!existsSync(file)) return 0;
  const db = new Database(file, { timeout: 5000 });
  try {
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue'").get();
    if (has === undefined) return 0;
    const take = db.prepare(
      `SELECT q.seq, q.account_id, q.device_id, COALESCE(q.envelope, p.data) AS envelope,
         q.sender_account_id, q.sender_device_id, q.message_id, q.created_at
       FROM queue q LEFT JOIN payloads p ON p.id = q.payload_id ORDER BY q.seq LIMIT 5000`,
    );
    const del = db.prepare("DELETE FROM queue WHERE seq = ?");
    let moved = 0;
    for (;;) {
      const rows = take.all() as (MovedRow & { seq: number })[];
      if (rows.length === 0) return moved;
      put(rows);
      db.transaction(() => {
        for (const r of rows) del.run(r.seq);
      })();
      moved += rows.length;
    }
  } finally {
    db.close();
  }
}

/** Purges expired entries in every shard file (the cluster primary's hourly job; brief lock sharing with the owner). */
export async function purgeQueueShards(dataDir: string, count: number, cutoff: number): Promise<number> {
  let total = 0;
  for (let s = 0; s < count; s++) {
    const file = join(dataDir, queueShardFileName(s));
    if (!existsSync(file)) continue;
    const shard = new QueueShard({ file, index: s, mapError: mapSqliteError });
    try {
      total += await shard.purge(cutoff, PURGE_CHUNK);
    } finally {
      await shard.close();
    }
  }
  return total;
}
