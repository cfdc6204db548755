import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { type Clock, systemClock } from "../../clock.ts";
import { StorageError } from "../errors.ts";
import { normalizeAccountName, tryNormalizeAccountName } from "../names.ts";
import { hashRegistrationCode, registrationCodeMatches } from "../registration-code.ts";
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
  ServerStorage,
  StoredGroup,
  VerifyCodeResult,
} from "../types.ts";
import {
  checkAccountId,
  checkBytes,
  checkDeviceId,
  checkDeviceList,
  checkEnvelope,
  checkFetchLimit,
  checkGroupUpdate,
  checkItems,
  checkNewDevice,
  checkNonNegativeInteger,
  checkPreKeyUpload,
  checkPrivacy,
  checkRecipient,
  checkRegistrationCode,
  MAX_CONTACTS,
  NOISE_STATIC_KEY_BYTES,
} from "../validate.ts";
import { GroupCommitter } from "./group-commit.ts";
import { type AckRow, bytes, type QueueRow, toAcked, toQueueEntry } from "./queue-rows.ts";
import { migrate } from "./schema.ts";
import { createStatements, type Statements } from "./statements.ts";

export const DEFAULT_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
export const DATABASE_FILE_NAME = "parley.db";

export interface SqliteStorageOptions {
  /** The database file. Either this or dataDir. */
  file?: string;
  /** Directory holding `parley.db` (created if missing). */
  dataDir?: string;
  clock?: Clock;
  /** Queue entries older than this are purged by purgeExpired (default 30 days). */
  retentionMs?: number;
  /** Devices per account, primary included (default 6). */
  maxDevicesPerAccount?: number;
  /** One-time prekeys of each kind a device may hold (default 1000). */
  maxOneTimePreKeysPerDevice?: number;
  /** Largest envelope / shared payload accepted, in bytes (default 256 KiB). */
  maxEnvelopeBytes?: number;
  /** How long a write waits for another process holding the file's write lock (default 5 s). */
  busyTimeoutMs?: number;
  /**
   * Default true: commit with synchronous=NORMAL and make durable writes wait for an fsync of the
   * WAL on the thread pool (same guarantee as synchronous=FULL, without blocking the event loop).
   * False: synchronous=FULL commits, fsynced on the event loop.
   */
  walSync?: boolean;
}

/** Rows as SQLite returns them. */
interface AccountRow {
  id: string;
  name: string;
  created_at: number;
  privacy: PresencePrivacy;
  last_seen_at: number | null;
}

interface DeviceRow {
  account_id: string;
  device_id: number;
  noise_static_key: Buffer;
  registration_id: number;
  identity_key: Buffer;
  signed_prekey_id: number;
  signed_prekey: Buffer;
  signed_prekey_signature: Buffer;
  last_resort_kem_id: number;
  last_resort_kem: Buffer;
  last_resort_kem_signature: Buffer;
  created_at: number;
  last_seen_at: number | null;
}

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    name: row.name,
    createdAt: row.created_at,
    privacy: row.privacy,
    lastSeenAt: row.last_seen_at,
  };
}

function toDevice(row: DeviceRow): Device {
  return {
    accountId: row.account_id,
    deviceId: row.device_id,
    noiseStaticKey: bytes(row.noise_static_key),
    registrationId: row.registration_id,
    identityKey: bytes(row.identity_key),
    signedPreKey: {
      id: row.signed_prekey_id,
      publicKey: bytes(row.signed_prekey),
      signature: bytes(row.signed_prekey_signature),
    },
    lastResortKemPreKey: {
      id: row.last_resort_kem_id,
      publicKey: bytes(row.last_resort_kem),
      signature: bytes(row.last_resort_kem_signature),
    },
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
  };
}

function sqliteCode(error: unknown): string | undefined {
  return error instanceof Database.SqliteError ? error.code : undefined;
}

/**
 * Translates driver errors to StorageError. Constraint violations that reach here are races the
 * explicit checks could not see (another process inserted the same name between check and insert).
 */
export function mapSqliteError(error: unknown): unknown {
  if (error instanceof StorageError) return error;
  const code = sqliteCode(error);
  if (code === undefined) return error;
  if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return new StorageError("CONFLICT", "already exists", { cause: error });
  }
  if (code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
    return new StorageError("NOT_FOUND", "referenced account or device does not exist", { cause: error });
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new StorageError("BUSY", "database is locked by another process", { cause: error });
  }
  return new StorageError("INTERNAL", `database error ${code}`, { cause: error });
}

function notFound(what: string): StorageError {
  return new StorageError("NOT_FOUND", `${what} not found`);
}

/** Rows deleted per transaction by purgeExpired, so a large purge never holds the write lock for long. */
const PURGE_CHUNK = 5_000;

/**
 * ServerStorage on one SQLite file (WAL; durable writes resolve after the WAL is fsynced, see GroupCommitter). Several processes may open the same
 * file: each has its own connection and its own group commit; writes serialize on SQLite's write
 * lock (BEGIN IMMEDIATE + busy_timeout), reads run concurrently on WAL snapshots.
 */
export class SqliteStorage implements ServerStorage {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly retentionMs: number;
  private readonly maxDevices: number;
  private readonly maxOneTimePreKeys: number;
  private readonly maxEnvelopeBytes: number;
  private readonly sql: Statements;
  private readonly committer: GroupCommitter;
  private closed = false;

  constructor(options: SqliteStorageOptions) {
    if (options.file === undefined && options.dataDir === undefined) {
      throw new StorageError("INVALID_ARGUMENT", "SqliteStorage needs `file` or `dataDir`");
    }
    if (options.file === undefined && options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true });
    this.file = options.file ?? join(options.dataDir!, DATABASE_FILE_NAME);
    this.clock = options.clock ?? systemClock;
    this.retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.maxDevices = options.maxDevicesPerAccount ?? 6;
    this.maxOneTimePreKeys = options.maxOneTimePreKeysPerDevice ?? 1000;
    this.maxEnvelopeBytes = options.maxEnvelopeBytes ?? 256 * 1024;
    checkNonNegativeInteger(this.retentionMs, "retentionMs");

    this.db = new Database(this.file, { timeout: options.busyTimeoutMs ?? 5000 });
    try {
      this.db.pragma("journal_mode = WAL");
      // FULL while migrating; afterwards the GroupCommitter commits with NORMAL and fsyncs the WAL
      // itself off the event loop (or keeps FULL when walSync is false), so a resolved enqueue
      // survives power loss, not only a process crash.
      this.db.pragma("synchronous = FULL");
      this.db.pragma("foreign_keys = ON");
      // After a checkpoint, truncate the WAL back to at most 64 MiB instead of keeping its peak size.
      this.db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      migrate(this.db, this.clock.now());
      this.sql = createStatements(this.db);
    } catch (error) {
      this.db.close();
      throw mapSqliteError(error);
    }
    this.committer = new GroupCommitter(
      this.db,
      mapSqliteError,
      options.walSync === false ? undefined : `${this.file}-wal`,
    );
  }

  // ------------------------------------------------------------------ helpers

  private ensureOpen(): void {
    if (this.closed) throw new StorageError("CLOSED", "storage is closed");
  }

  /** A group-committed write; argument checks run before it is queued. */
  private write<T>(work: () => T, durable = true, onCommit?: (value: T) => void): Promise<T> {
    this.ensureOpen();
    return this.committer.write(work, durable, true, onCommit);
  }

  private read<T>(work: () => T): Promise<T> {
    try {
      this.ensureOpen();
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(mapSqliteError(error));
    }
  }

  /** Wraps a method body so argument errors become rejections, never synchronous throws. */
  private guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      return body();
    } catch (error) {
      return Promise.reject(mapSqliteError(error));
    }
  }

  private requireAccount(id: AccountId): AccountRow {
    const row = this.sql.getAccount.get(id) as AccountRow | undefined;
    if (row === undefined) throw notFound("account");
    return row;
  }

  private requireDevice(accountId: AccountId, deviceId: DeviceId): DeviceRow {
    const row = this.sql.getDevice.get(accountId, deviceId) as DeviceRow | undefined;
    if (row === undefined) throw notFound("device");
    return row;
  }

  private insertDevice(accountId: AccountId, deviceId: DeviceId, device: NewDevice, now: number): void {
    if (this.sql.getDeviceByNoiseKey.get(device.noiseStaticKey) !== undefined) {
      throw new StorageError("CONFLICT", "noise static key already registered");
    }
    this.sql.insertDevice.run(
      accountId,
      deviceId,
      device.noiseStaticKey,
      device.registrationId,
      device.identityKey,
      device.signedPreKey.id,
      device.signedPreKey.publicKey,
      device.signedPreKey.signature,
      device.lastResortKemPreKey.id,
      device.lastResortKemPreKey.publicKey,
      device.lastResortKemPreKey.signature,
      now,
    );
    this.sql.setNextDeviceId.run(deviceId + 1, accountId);
  }

  // ---------------------------------------------------------------- accounts

  createAccount(name: string, primaryDevice: NewDevice): Promise<{ account: Account; device: Device }> {
    return this.guard(() => {
      const normalized = normalizeAccountName(name);
      checkNewDevice(primaryDevice);
      return this.write(() => {
        if (this.sql.getAccountByName.get(normalized) !== undefined) {
          throw new StorageError("CONFLICT", "account name already taken");
        }
        const now = this.clock.now();
        const id = randomUUID();
        this.sql.insertAccount.run(id, normalized, now);
        this.insertDevice(id, 1, primaryDevice, now);
        return {
          account: toAccount(this.sql.getAccount.get(id) as AccountRow),
          device: toDevice(this.sql.getDevice.get(id, 1) as DeviceRow),
        };
      });
    });
  }

  getAccountByName(name: string): Promise<Account | null> {
    return this.read(() => {
      const normalized = tryNormalizeAccountName(name);
      if (normalized === null) return null;
      const row = this.sql.getAccountByName.get(normalized) as AccountRow | undefined;
      return row === undefined ? null : toAccount(row);
    });
  }

  getAccount(id: AccountId): Promise<Account | null> {
    return this.read(() => {
      checkAccountId(id);
      const row = this.sql.getAccount.get(id) as AccountRow | undefined;
      return row === undefined ? null : toAccount(row);
    });
  }

  deleteAccount(id: AccountId): Promise<void> {
    return this.guard(() => {
      checkAccountId(id);
      return this.write(() => {
        // Cascades: devices → prekeys, queue entries (→ payload refs); device list; contacts.
        if (this.sql.deleteAccount.run(id).changes === 0) throw notFound("account");
      });
    });
  }

  setPresencePrivacy(id: AccountId, privacy: PresencePrivacy): Promise<void> {
    return this.guard(() => {
      checkAccountId(id);
      checkPrivacy(privacy);
      return this.write(() => {
        if (this.sql.setPrivacy.run(privacy, id).changes === 0) throw notFound("account");
      });
    });
  }

  // ------------------------------------------------------ pending registrations

  putPendingRegistration(name: string, code: string, expiresAt: number): Promise<void> {
    return this.guard(() => {
      const normalized = normalizeAccountName(name);
      checkRegistrationCode(code);
      checkNonNegativeInteger(expiresAt, "expiresAt");
      const { salt, hash } = hashRegistrationCode(code);
      return this.write(() => {
        this.sql.putPendingRegistration.run(normalized, salt, hash, expiresAt);
      });
    });
  }

  verifyPendingRegistration(name: string, code: string, maxAttempts: number): Promise<VerifyCodeResult> {
    return this.guard(() => {
      checkNonNegativeInteger(maxAttempts, "maxAttempts");
      const normalized = tryNormalizeAccountName(name);
      if (normalized === null || typeof code !== "string") return Promise.resolve("not_found" as const);
      return this.write((): VerifyCodeResult => {
        const row = this.sql.getPendingRegistration.get(normalized) as
          | { code_salt: Buffer; code_hash: Buffer; expires_at: number; attempts: number }
          | undefined;
        if (row === undefined) return "not_found";
        if (row.expires_at <= this.clock.now()) {
          this.sql.deletePendingRegistration.run(normalized);
          return "expired";
        }
        if (row.attempts >= maxAttempts) return "too_many_attempts";
        // Count the attempt before comparing, in the same transaction: concurrent guesses from
        // several connections cannot exceed maxAttempts.
        this.sql.countRegistrationAttempt.run(normalized);
        if (!registrationCodeMatches(code, { salt: row.code_salt, hash: row.code_hash })) return "wrong_code";
        this.sql.deletePendingRegistration.run(normalized);
        return "ok";
      });
    });
  }

  // ------------------------------------------------------- contacts / presence

  setContacts(id: AccountId, names: string[]): Promise<void> {
    return this.guard(() => {
      checkAccountId(id);
      if (!Array.isArray(names)) throw new StorageError("INVALID_ARGUMENT", "contacts must be an array");
      if (names.length > MAX_CONTACTS) throw new StorageError("LIMIT_EXCEEDED", `at most ${MAX_CONTACTS} contacts`);
      const normalized = new Set<string>();
      for (const name of names) {
        const n = typeof name === "string" ? tryNormalizeAccountName(name) : null;
        if (n !== null) normalized.add(n);
      }
      return this.write(() => {
        this.requireAccount(id);
        this.sql.clearContacts.run(id);
        for (const name of normalized) this.sql.insertContact.run(id, name);
      });
    });
  }

  getContacts(id: AccountId): Promise<string[]> {
    return this.read(() => {
      checkAccountId(id);
      this.requireAccount(id);
      return (this.sql.listContacts.all(id) as { contact_name: string }[]).map((r) => r.contact_name);
    });
  }

  canSeePresence(viewer: AccountId, target: AccountId): Promise<boolean> {
    return this.read(() => {
      checkAccountId(viewer, "viewer");
      checkAccountId(target, "target");
      const viewerRow = this.requireAccount(viewer);
      const targetRow = this.requireAccount(target);
      if (viewer === target) return true;
      if (targetRow.privacy === "everyone") return true;
      if (targetRow.privacy === "nobody") return false;
      return this.sql.hasContact.get(target, viewerRow.name) !== undefined;
    });
  }

  listPresenceWatchers(target: AccountId): Promise<AccountId[]> {
    return this.read(() => {
      checkAccountId(target);
      const targetRow = this.requireAccount(target);
      const rows =
        targetRow.privacy === "everyone"
          ? this.sql.listWatchersEveryone.all(targetRow.name, target)
          : targetRow.privacy === "contacts"
            ? this.sql.listWatchersMutual.all(target, targetRow.name, target)
            : [];
      return (rows as { account_id: string }[]).map((r) => r.account_id);
    });
  }

  // ------------------------------------------------------------------- devices

  addDevice(accountId: AccountId, device: NewDevice): Promise<Device> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkNewDevice(device);
      return this.write(() => {
        const account = this.sql.getAccountForDevice.get(accountId) as { next_device_id: number } | undefined;
        if (account === undefined) throw notFound("account");
        const count = (this.sql.countDevices.get(accountId) as { n: number }).n;
        if (count >= this.maxDevices) {
          throw new StorageError("LIMIT_EXCEEDED", `at most ${this.maxDevices} devices per account`);
        }
        const deviceId = account.next_device_id;
        this.insertDevice(accountId, deviceId, device, this.clock.now());
        return toDevice(this.sql.getDevice.get(accountId, deviceId) as DeviceRow);
      });
    });
  }

  listDevices(accountId: AccountId): Promise<Device[]> {
    return this.read(() => {
      checkAccountId(accountId);
      return (this.sql.listDevices.all(accountId) as DeviceRow[]).map(toDevice);
    });
  }

  getDevice(accountId: AccountId, deviceId: DeviceId): Promise<Device | null> {
    return this.read(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      const row = this.sql.getDevice.get(accountId, deviceId) as DeviceRow | undefined;
      return row === undefined ? null : toDevice(row);
    });
  }

  getDeviceByNoiseKey(noiseStaticKey: Uint8Array): Promise<Device | null> {
    return this.read(() => {
      checkBytes(noiseStaticKey, "noise static key", NOISE_STATIC_KEY_BYTES);
      const row = this.sql.getDeviceByNoiseKey.get(noiseStaticKey) as DeviceRow | undefined;
      return row === undefined ? null : toDevice(row);
    });
  }

  removeDevice(accountId: AccountId, deviceId: DeviceId): Promise<void> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      if (deviceId === 1) {
        throw new StorageError("INVALID_ARGUMENT", "the primary device cannot be removed; delete the account");
      }
      return this.write(() => {
        if (this.sql.deleteDevice.run(accountId, deviceId).changes === 0) throw notFound("device");
      });
    });
  }

  touchDevice(accountId: AccountId, deviceId: DeviceId, at: number): Promise<void> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      checkNonNegativeInteger(at, "at");
      // Not fsynced on its own (a last-seen time lost to a power cut is harmless): a worker that
      // stops or restarts touches every device it held, and each batch would otherwise fsync.
      return this.write(() => {
        if (this.sql.touchDevice.run(at, accountId, deviceId).changes === 0) throw notFound("device");
        this.sql.touchAccount.run(at, at, accountId);
      }, false);
    });
  }

  setDeviceList(accountId: AccountId, list: DeviceListBlob): Promise<void> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkDeviceList(list);
      return this.write(() => {
        this.requireAccount(accountId);
        const current = this.sql.getDeviceList.get(accountId) as { version: number } | undefined;
        if (current !== undefined && list.version <= current.version) {
          throw new StorageError(
            "CONFLICT",
            `device list version ${list.version} is not newer than ${current.version}`,
          );
        }
        this.sql.putDeviceList.run(accountId, list.version, list.blob);
      });
    });
  }

  getDeviceList(accountId: AccountId): Promise<DeviceListBlob | null> {
    return this.read(() => {
      checkAccountId(accountId);
      const row = this.sql.getDeviceList.get(accountId) as { version: number; blob: Buffer } | undefined;
      return row === undefined ? null : { version: row.version, blob: bytes(row.blob) };
    });
  }

  // ------------------------------------------------------------------- prekeys

  uploadPreKeys(accountId: AccountId, deviceId: DeviceId, upload: PreKeyUpload): Promise<void> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      checkPreKeyUpload(upload, this.maxOneTimePreKeys);
      return this.write(() => {
        this.requireDevice(accountId, deviceId);
        for (const key of upload.ecOneTime ?? []) this.sql.putEcPreKey.run(accountId, deviceId, key.id, key.publicKey);
        for (const key of upload.kemOneTime ?? []) {
          this.sql.putKemPreKey.run(accountId, deviceId, key.id, key.publicKey, key.signature);
        }
        const counts = this.counts(accountId, deviceId);
        if (counts.ecOneTime > this.maxOneTimePreKeys || counts.kemOneTime > this.maxOneTimePreKeys) {
          throw new StorageError("LIMIT_EXCEEDED", `at most ${this.maxOneTimePreKeys} one-time prekeys of each kind`);
        }
        const spk = upload.signedPreKey;
        if (spk !== undefined) this.sql.setSignedPreKey.run(spk.id, spk.publicKey, spk.signature, accountId, deviceId);
        const lr = upload.lastResortKemPreKey;
        if (lr !== undefined) this.sql.setLastResortKem.run(lr.id, lr.publicKey, lr.signature, accountId, deviceId);
      });
    });
  }

  private counts(accountId: AccountId, deviceId: DeviceId): PreKeyCounts {
    return {
      ecOneTime: (this.sql.countEcPreKeys.get(accountId, deviceId) as { n: number }).n,
      kemOneTime: (this.sql.countKemPreKeys.get(accountId, deviceId) as { n: number }).n,
    };
  }

  getPreKeyCounts(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyCounts> {
    return this.read(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      this.requireDevice(accountId, deviceId);
      return this.counts(accountId, deviceId);
    });
  }

  /** Runs inside a write transaction: the DELETE ... RETURNING statements make each key leave exactly once. */
  private takeBundle(device: DeviceRow): PreKeyBundle {
    const { account_id: accountId, device_id: deviceId } = device;
    const ec = this.sql.takeEcPreKey.get(accountId, deviceId, accountId, deviceId) as
      | { key_id: number; public_key: Buffer }
      | undefined;
    const kem = this.sql.takeKemPreKey.get(accountId, deviceId, accountId, deviceId) as
      | { key_id: number; public_key: Buffer; signature: Buffer }
      | undefined;
    const d = toDevice(device);
    return {
      accountId,
      deviceId,
      registrationId: d.registrationId,
      identityKey: d.identityKey,
      signedPreKey: d.signedPreKey,
      ecPreKey: ec === undefined ? null : { id: ec.key_id, publicKey: bytes(ec.public_key) },
      kemPreKey:
        kem === undefined
          ? d.lastResortKemPreKey
          : { id: kem.key_id, publicKey: bytes(kem.public_key), signature: bytes(kem.signature) },
      kemPreKeyIsLastResort: kem === undefined,
    };
  }

  takePreKeyBundle(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyBundle> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      return this.write(() => this.takeBundle(this.requireDevice(accountId, deviceId)));
    });
  }

  takePreKeyBundles(accountId: AccountId): Promise<PreKeyBundle[]> {
    return this.guard(() => {
      checkAccountId(accountId);
      return this.write(() => {
        this.requireAccount(accountId);
        return (this.sql.listDevices.all(accountId) as DeviceRow[]).map((d) => this.takeBundle(d));
      });
    });
  }

  // --------------------------------------------------------------------- groups

  private groupSql?: ReturnType<SqliteStorage["prepareGroupStatements"]>;
  private prepareGroupStatements() {
    const p = (sql: string) => this.db.prepare(sql);
    return {
      version: p("SELECT version FROM groups WHERE id = ?"),
      insert: p("INSERT INTO groups (id, version, state, invite_hash) VALUES (?, ?, ?, ?)"),
      update: p("UPDATE groups SET version = ?, state = ?, invite_hash = ? WHERE id = ? AND version = ?"),
      inviteOwner: p("SELECT id FROM groups WHERE invite_hash = ?"),
      clearMembers: p("DELETE FROM group_members WHERE group_id = ?"),
      addMember: p("INSERT INTO group_members (group_id, account_id, position) VALUES (?, ?, ?)"),
      appendLog: p("INSERT INTO group_log (group_id, version, change) VALUES (?, ?, ?)"),
      get: p("SELECT id, version, state FROM groups WHERE id = ?"),
      members: p("SELECT account_id FROM group_members WHERE group_id = ? ORDER BY position"),
      log: p("SELECT change FROM group_log WHERE group_id = ? AND version > ? ORDER BY version LIMIT ?"),
      ofAccount: p(
        "SELECT g.id AS id, g.version AS version FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.account_id = ? ORDER BY g.id",
      ),
    };
  }
  private get gsql() {
    this.groupSql ??= this.prepareGroupStatements();
    return this.groupSql;
  }

  applyGroupUpdate(update: GroupUpdate): Promise<void> {
    return this.guard(() => {
      checkGroupUpdate(update);
      return this.write(() => {
        const g = this.gsql;
        const invite = update.inviteHash === null ? null : Buffer.from(update.inviteHash);
        if (invite !== null) {
          const owner = g.inviteOwner.get(invite) as { id: string } | undefined;
          if (owner !== undefined && owner.id !== update.group)
            throw new StorageError("CONFLICT", "another group has this invite link");
        }
        if (update.version === 1) {
          if (g.version.get(update.group) !== undefined) throw new StorageError("CONFLICT", "the group exists");
          g.insert.run(update.group, 1, update.state, invite);
        } else if (g.update.run(update.version, update.state, invite, update.group, update.version - 1).changes === 0) {
          throw new StorageError("CONFLICT", "the group changed meanwhile");
        }
        g.clearMembers.run(update.group);
        update.members.forEach((m, i) => {
          g.addMember.run(update.group, m, i);
        });
        g.appendLog.run(update.group, update.version, Buffer.from(update.change));
      });
    });
  }

  getGroup(group: GroupId): Promise<StoredGroup | null> {
    return this.read(() => {
      const row = this.gsql.get.get(group) as { id: string; version: number; state: string } | undefined;
      if (row === undefined) return null;
      const members = (this.gsql.members.all(group) as { account_id: string }[]).map((r) => r.account_id);
      return { group: row.id, version: row.version, state: row.state, members };
    });
  }

  getGroupLog(group: GroupId, afterVersion: number, limit: number): Promise<Uint8Array[]> {
    return this.read(() => {
      checkNonNegativeInteger(afterVersion, "afterVersion");
      checkFetchLimit(limit);
      return (this.gsql.log.all(group, afterVersion, limit) as { change: Buffer }[]).map((r) => bytes(r.change));
    });
  }

  findGroupByInvite(inviteHash: Uint8Array): Promise<GroupId | null> {
    return this.read(() => {
      checkBytes(inviteHash, "inviteHash", 32, 32);
      const row = this.gsql.inviteOwner.get(Buffer.from(inviteHash)) as { id: string } | undefined;
      return row?.id ?? null;
    });
  }

  listGroups(accountId: AccountId): Promise<{ group: GroupId; version: number }[]> {
    return this.read(() => {
      checkAccountId(accountId);
      return (this.gsql.ofAccount.all(accountId) as { id: string; version: number }[]).map((r) => ({
        group: r.id,
        version: r.version,
      }));
    });
  }

  // --------------------------------------------------------------------- queues

  enqueue(items: EnqueueItem[], onCommitted?: OnCommitted): Promise<QueueSeq[]> {
    return this.guard(() => {
      checkItems(items, "items");
      for (const item of items) {
        checkRecipient(item);
        checkEnvelope(item.envelope, this.maxEnvelopeBytes);
      }
      return this.write(
        () => {
          const now = this.clock.now();
          return items.map(
            (item) =>
              (
                this.sql.insertQueueEntry.get(
                  item.accountId,
                  item.deviceId,
                  item.envelope,
                  null,
                  item.senderAccountId ?? null,
                  item.senderDeviceId ?? null,
                  item.messageId ?? null,
                  now,
                ) as { seq: number }
              ).seq,
          );
        },
        items.some((item) => item.durable !== false),
        onCommitted,
      );
    });
  }

  enqueueShared(payload: Uint8Array, recipients: QueueRecipient[], onCommitted?: OnCommitted): Promise<QueueSeq[]> {
    return this.guard(() => {
      checkEnvelope(payload, this.maxEnvelopeBytes);
      checkItems(recipients, "recipients");
      recipients.forEach(checkRecipient);
      return this.write(
        () => {
          const now = this.clock.now();
          const payloadId = (this.sql.insertPayload.get(payload, recipients.length) as { id: number }).id;
          return recipients.map(
            (r) =>
              (
                this.sql.insertQueueEntry.get(
                  r.accountId,
                  r.deviceId,
                  null,
                  payloadId,
                  r.senderAccountId ?? null,
                  r.senderDeviceId ?? null,
                  r.messageId ?? null,
                  now,
                ) as { seq: number }
              ).seq,
          );
        },
        true,
        onCommitted,
      );
    });
  }

  fetch(accountId: AccountId, deviceId: DeviceId, afterSeq: QueueSeq, limit: number): Promise<QueueEntry[]> {
    return this.read(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      checkNonNegativeInteger(afterSeq, "afterSeq");
      checkFetchLimit(limit);
      return (this.sql.fetchQueue.all(accountId, deviceId, afterSeq, limit) as QueueRow[]).map(toQueueEntry);
    });
  }

  ack(accountId: AccountId, deviceId: DeviceId, seqs: QueueSeq[]): Promise<AckedEntry[]> {
    return this.guard(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      if (!Array.isArray(seqs)) throw new StorageError("INVALID_ARGUMENT", "seqs must be an array");
      for (const seq of seqs) checkNonNegativeInteger(seq, "seq");
      if (seqs.length === 0) return Promise.resolve([]);
      // Not fsynced on its own: an ack lost to a power cut only redelivers entries, which devices dedupe.
      return this.write(() => {
        const acked: AckedEntry[] = [];
        for (const seq of seqs) {
          const row = this.sql.ackEntry.get(accountId, deviceId, seq) as AckRow | undefined;
          if (row !== undefined) acked.push(toAcked(row));
        }
        return acked;
      }, false);
    });
  }

  depth(accountId: AccountId, deviceId: DeviceId): Promise<number> {
    return this.read(() => {
      checkAccountId(accountId);
      checkDeviceId(deviceId);
      return (this.sql.queueDepth.get(accountId, deviceId) as { n: number }).n;
    });
  }

  /** Entries waiting in all device queues (sampled by /metrics as parley_queue_depth). */
  totalDepth(): Promise<number> {
    return this.read(() => (this.sql.queueTotal.get() as { n: number }).n);
  }

  async purgeExpired(now: number): Promise<number> {
    checkNonNegativeInteger(now, "now");
    const cutoff = now - this.retentionMs;
    let total = 0;
    for (;;) {
      const deleted = await this.write(() => this.sql.purgeQueueChunk.run(cutoff, PURGE_CHUNK).changes);
      total += deleted;
      if (deleted < PURGE_CHUNK) break;
    }
    await this.write(() => this.sql.purgePendingRegistrations.run(now));
    return total;
  }

  /**
   * Throws NOT_FOUND unless every target device exists (read now, outside any queued write). The
   * queue shards (./queue-shard.ts) keep no foreign key to the devices table and check with this.
   */
  requireDevicesNow(targets: readonly { accountId: AccountId; deviceId: DeviceId }[]): void {
    this.ensureOpen();
    for (const t of targets) {
      if (this.sql.deviceExists.get(t.accountId, t.deviceId) === undefined) throw notFound("device");
    }
  }

  /** Group-commit counters: `batches` transactions carried `writes` write calls. */
  get commitStats(): { batches: number; writes: number } {
    return this.committer.stats;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.committer.flush();
    this.closed = true;
    await this.committer.close(); // pending fsyncs finish before the file is closed
    this.db.close();
  }
}
