/**
 * The storage interface of the Parley server. Everything behind it is public key material or
 * ciphertext: the server never stores anything that decrypts a message.
 *
 * Every method is async so that a networked implementation (PostgreSQL) can pass the same
 * conformance suite (./conformance.ts) as the embedded SQLite one. Failures are StorageError
 * (./errors.ts) with a `code`; "not there" on a read is `null`, not an error.
 *
 * Times are milliseconds since the epoch, taken from the Clock the implementation was built with
 * unless a method takes `now` explicitly.
 */

/** Opaque account identifier assigned by the server (a UUID string); stable for the account's life. */
export type AccountId = string;
/** Device number inside an account: 1 is the primary device; ids are never reused within an account. */
export type DeviceId = number;
/**
 * Runs once the entries of an enqueue that this process stores are committed, before they are durable
 * (before the fsync that the enqueue's promise waits for), with their seqs; items stored by another
 * process (another worker's queue shard) are `undefined` here: that process delivers them (see
 * `onRemoteCommit`). It runs at most once per call, before the promise resolves, and not at all when
 * no item is stored here. The gateway pushes the entries to connected recipients from it, so a
 * message reaches an online device without waiting for the disk; the sender's tick waits for the
 * promise. (A power cut before the fsync loses the entry, but the sender never got its tick and sends
 * again; devices dedupe by message id.)
 */
export type OnCommitted = (seqs: readonly (QueueSeq | undefined)[]) => void;

/**
 * Position of an entry in a device queue. Strictly increasing in enqueue order (also across
 * processes sharing the store) and never reused, so an ack can never hit a later entry.
 */
export type QueueSeq = number;

/** Who may see an account's presence (online / last seen). */
export type PresencePrivacy = "everyone" | "contacts" | "nobody";

export interface Account {
  id: AccountId;
  /** Normalized name (see normalizeAccountName): a username or an E.164 phone number. */
  name: string;
  createdAt: number;
  privacy: PresencePrivacy;
  /** Last time any device of the account was seen, or null if never. */
  lastSeenAt: number | null;
}

/** An X25519/EC public key in Signal's serialization: type byte 0x05 + 32 bytes. */
export type EcPublicKey = Uint8Array;

/** A signed EC prekey (medium-term), signed with the identity key. */
export interface SignedPreKey {
  id: number;
  publicKey: EcPublicKey;
  /** XEdDSA signature, 64 bytes (verified by the gateway, not by storage). */
  signature: Uint8Array;
}

/** A KEM (Kyber/ML-KEM) prekey, signed with the identity key: one-time or last-resort. */
export interface KemPreKey {
  id: number;
  /** Serialized KEM public key (type byte + key). */
  publicKey: Uint8Array;
  signature: Uint8Array;
}

/** A one-time EC prekey. */
export interface OneTimePreKey {
  id: number;
  publicKey: EcPublicKey;
}

/** What a device registers with. */
export interface NewDevice {
  /** The device's Noise static public key (32 bytes): its login credential, unique across all devices. */
  noiseStaticKey: Uint8Array;
  /** Signal registration id (1..16380 in libsignal; storage accepts any uint32). */
  registrationId: number;
  /** Identity public key, 33 bytes (0x05 + 32). */
  identityKey: EcPublicKey;
  signedPreKey: SignedPreKey;
  lastResortKemPreKey: KemPreKey;
}

export interface Device extends NewDevice {
  accountId: AccountId;
  deviceId: DeviceId;
  createdAt: number;
  lastSeenAt: number | null;
}

/** The account's signed device list: an opaque blob the clients sign and verify; storage only versions it. */
export interface DeviceListBlob {
  version: number;
  blob: Uint8Array;
}

/** One upload of prekeys for a device; every part optional; applied atomically. */
export interface PreKeyUpload {
  /** Appended to the device's one-time EC prekeys (an existing id is replaced). */
  ecOneTime?: OneTimePreKey[];
  /** Appended to the device's one-time KEM prekeys (an existing id is replaced). */
  kemOneTime?: KemPreKey[];
  /** Replaces the device's signed EC prekey. */
  signedPreKey?: SignedPreKey;
  /** Replaces the device's last-resort KEM prekey. */
  lastResortKemPreKey?: KemPreKey;
}

export interface PreKeyCounts {
  ecOneTime: number;
  kemOneTime: number;
}

/** What a sender needs to start a session (X3DH/PQXDH) with one device. */
export interface PreKeyBundle {
  accountId: AccountId;
  deviceId: DeviceId;
  registrationId: number;
  identityKey: EcPublicKey;
  signedPreKey: SignedPreKey;
  /** A one-time EC prekey, removed from the store; null when the device has none left. */
  ecPreKey: OneTimePreKey | null;
  /** A one-time KEM prekey (removed) or, when none remain, the last-resort one (kept). */
  kemPreKey: KemPreKey;
  kemPreKeyIsLastResort: boolean;
}

/** Addressing and metadata of a queue entry (without its ciphertext). */
export interface QueueRecipient {
  accountId: AccountId;
  deviceId: DeviceId;
  /** The sending account, if the server knows it (for routing the delivered receipt). Sealed sender: omit. */
  senderAccountId?: AccountId;
  senderDeviceId?: DeviceId;
  /** The client's message id (opaque, at most 128 characters), echoed in the delivered receipt. */
  messageId?: string;
}

export interface EnqueueItem extends QueueRecipient {
  /** The ciphertext envelope; stored verbatim, never inspected or logged. */
  envelope: Uint8Array;
  /**
   * Default true: the entry survives power loss once enqueue resolves (fsync). False for entries
   * whose loss in a power cut is tolerable (delivery receipts): they still survive a process crash.
   */
  durable?: boolean;
}

export interface QueueEntry {
  seq: QueueSeq;
  accountId: AccountId;
  deviceId: DeviceId;
  envelope: Uint8Array;
  senderAccountId: AccountId | null;
  senderDeviceId: DeviceId | null;
  messageId: string | null;
  createdAt: number;
}

/** An entry removed by ack: what the gateway needs to route a delivered receipt. */
export interface AckedEntry {
  seq: QueueSeq;
  senderAccountId: AccountId | null;
  senderDeviceId: DeviceId | null;
  messageId: string | null;
  /** The entry referenced a shared payload (enqueueShared: a group message). */
  shared: boolean;
}

/** A group id: 32 lowercase hex characters, chosen by its creator. */
export type GroupId = string;

/**
 * One accepted change of a group (docs/groups.md). The gateway applies the signed change to the
 * stored state with the shared rules first; storage only keeps state, members and log consistent.
 */
export interface GroupUpdate {
  group: GroupId;
  /** The version after this change: 1 creates the group, otherwise the stored version must be version - 1. */
  version: number;
  /** The new state snapshot (opaque to storage: JSON from @parley/wire's encodeGroupState). */
  state: string;
  /** Every member account after the change, in join order. */
  members: AccountId[];
  /** SHA-256 of the current invite code, or null when the group has no invite link. */
  inviteHash: Uint8Array | null;
  /** The signed change itself, appended to the group's log. */
  change: Uint8Array;
}

export interface StoredGroup {
  group: GroupId;
  version: number;
  state: string;
  members: AccountId[];
}

/** Outcome of checking a registration code. Only "ok" consumes the pending registration. */
export type VerifyCodeResult = "ok" | "wrong_code" | "expired" | "too_many_attempts" | "not_found";

/** Entries committed at another worker's request (ServerStorage.onRemoteCommit). */
export type RemoteCommit =
  | { op: "enqueue"; items: EnqueueItem[] }
  | { op: "enqueueShared"; payload: Uint8Array; recipients: QueueRecipient[] };

export interface ServerStorage {
  // ---------------------------------------------------------------- accounts

  /**
   * Creates an account with its primary device (device id 1) atomically.
   * `name` is normalized first (INVALID_ARGUMENT if it is neither a username nor a phone number).
   * CONFLICT if the name is taken or the noise static key is already registered.
   */
  createAccount(name: string, primaryDevice: NewDevice): Promise<{ account: Account; device: Device }>;
  /** Looks the name up after normalizing it; null if absent or if the name is not valid. */
  getAccountByName(name: string): Promise<Account | null>;
  getAccount(id: AccountId): Promise<Account | null>;
  /** Deletes the account with its devices, prekeys, device list, contacts and queues. NOT_FOUND if absent. */
  deleteAccount(id: AccountId): Promise<void>;
  /** NOT_FOUND if the account does not exist. */
  setPresencePrivacy(id: AccountId, privacy: PresencePrivacy): Promise<void>;

  // ------------------------------------------------------ pending registrations

  /**
   * Stores (or replaces, resetting the attempt counter) a pending registration for `name` with a
   * verification code that expires at `expiresAt`. Only a salted hash of the code is stored.
   */
  putPendingRegistration(name: string, code: string, expiresAt: number): Promise<void>;
  /**
   * Checks a code: counts the attempt, and on success deletes the pending registration.
   * After `maxAttempts` wrong attempts every further check answers "too_many_attempts".
   */
  verifyPendingRegistration(name: string, code: string, maxAttempts: number): Promise<VerifyCodeResult>;

  // ------------------------------------------------------- contacts / presence

  /** Replaces the account's contact list (names as the client uploads them; normalized, invalid ones dropped). */
  setContacts(id: AccountId, names: string[]): Promise<void>;
  /** The account's contact list (normalized names, sorted). */
  getContacts(id: AccountId): Promise<string[]>;
  /**
   * Whether `viewer` may see `target`'s presence: target's privacy is "everyone", or "contacts"
   * and the viewer's name is in target's contact list. An account always sees itself.
   */
  canSeePresence(viewer: AccountId, target: AccountId): Promise<boolean>;
  /**
   * Accounts to notify when `target`'s presence changes: those that have target in their contact
   * list AND may see target's presence (canSeePresence).
   */
  listPresenceWatchers(target: AccountId): Promise<AccountId[]>;

  // ------------------------------------------------------------------- devices

  /**
   * Adds a linked device with the next unused device id. CONFLICT if the noise static key is
   * registered; LIMIT_EXCEEDED past the configured maximum of devices; NOT_FOUND for no account.
   */
  addDevice(accountId: AccountId, device: NewDevice): Promise<Device>;
  listDevices(accountId: AccountId): Promise<Device[]>;
  getDevice(accountId: AccountId, deviceId: DeviceId): Promise<Device | null>;
  /** The login lookup. */
  getDeviceByNoiseKey(noiseStaticKey: Uint8Array): Promise<Device | null>;
  /**
   * Removes a linked device with its prekeys and queue. INVALID_ARGUMENT for the primary device
   * (delete the account instead); NOT_FOUND if absent.
   */
  removeDevice(accountId: AccountId, deviceId: DeviceId): Promise<void>;
  /**
   * Stamps the device's and the account's last-seen time. NOT_FOUND if the device is absent. Need not
   * be fsynced: losing a last-seen time to a power cut is harmless.
   */
  touchDevice(accountId: AccountId, deviceId: DeviceId, at: number): Promise<void>;

  /** Stores the signed device list. CONFLICT unless `version` is greater than the stored one. */
  setDeviceList(accountId: AccountId, list: DeviceListBlob): Promise<void>;
  getDeviceList(accountId: AccountId): Promise<DeviceListBlob | null>;

  // ------------------------------------------------------------------- prekeys

  /** NOT_FOUND if the device is absent; LIMIT_EXCEEDED past the per-device cap of one-time keys. */
  uploadPreKeys(accountId: AccountId, deviceId: DeviceId, upload: PreKeyUpload): Promise<void>;
  getPreKeyCounts(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyCounts>;
  /**
   * Atomically removes and returns one one-time EC prekey (if any) and one one-time KEM prekey
   * (else the last-resort KEM prekey, which stays). Each one-time key is handed out at most once,
   * also under concurrent calls and across processes. NOT_FOUND if the device is absent.
   */
  takePreKeyBundle(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyBundle>;
  /** takePreKeyBundle for every device of the account, in device-id order, in one transaction. */
  takePreKeyBundles(accountId: AccountId): Promise<PreKeyBundle[]>;

  // --------------------------------------------------------------------- groups

  /**
   * Applies an accepted group change atomically: state, member list, invite hash and log.
   * CONFLICT when the stored version is not `version - 1` (another admin's change won the race;
   * for version 1: the group exists), or when another group holds the same invite hash.
   * Durable on return (members are told only after this).
   */
  applyGroupUpdate(update: GroupUpdate): Promise<void>;
  getGroup(group: GroupId): Promise<StoredGroup | null>;
  /** Signed changes with version > afterVersion, oldest first, at most `limit`. */
  getGroupLog(group: GroupId, afterVersion: number, limit: number): Promise<Uint8Array[]>;
  /** The group whose current invite link has this hash. */
  findGroupByInvite(inviteHash: Uint8Array): Promise<GroupId | null>;
  /** Groups the account is a member of, with their versions. */
  listGroups(accountId: AccountId): Promise<{ group: GroupId; version: number }[]>;

  // --------------------------------------------------------------------- queues

  /**
   * Appends envelopes to device queues; resolves with their seqs (same order as `items`) only once
   * they are durable. Calls made within one event-loop turn share one transaction (group commit);
   * each call is still all-or-nothing: NOT_FOUND (and nothing stored) if any target device is absent.
   * `onCommitted`: see OnCommitted.
   */
  enqueue(items: EnqueueItem[], onCommitted?: OnCommitted): Promise<QueueSeq[]>;
  /** Like enqueue, but one payload for many recipients, stored once (group messages). */
  enqueueShared(payload: Uint8Array, recipients: QueueRecipient[], onCommitted?: OnCommitted): Promise<QueueSeq[]>;
  /** Entries with seq > afterSeq, oldest first, at most `limit`. */
  fetch(accountId: AccountId, deviceId: DeviceId, afterSeq: QueueSeq, limit: number): Promise<QueueEntry[]>;
  /**
   * Deletes the given entries of that device's queue; returns those that existed (unknown or
   * already-acked seqs, or seqs of another device's queue, are ignored). Group-committed like enqueue,
   * but need not be fsynced: an ack lost to a power cut only makes the entry come again, and devices
   * dedupe by message id.
   */
  ack(accountId: AccountId, deviceId: DeviceId, seqs: QueueSeq[]): Promise<AckedEntry[]>;
  /**
   * A seq in the order of `accountId`'s queues for an entry that is pushed from memory and never
   * stored, if this process assigns that account's seqs (else null: store the entry). Never handed
   * out again, also after a restart.
   */
  memorySeq?(accountId: AccountId): QueueSeq | null;
  /**
   * Queues sharded over worker processes (ShardedStorage): the worker owning `accountId`'s queues.
   * Absent: this process owns every queue.
   */
  queueOwner?(accountId: AccountId): number;
  /** This process's shard index (with queueOwner). */
  readonly shardIndex?: number;
  /**
   * With queueOwner: `listener` runs on the owner after it committed entries that another worker
   * asked for (that worker does not deliver them; the owner does, see Gateway.onRemoteCommit).
   */
  onRemoteCommit?(listener: (commit: RemoteCommit, seqs: QueueSeq[]) => void): void;
  depth(accountId: AccountId, deviceId: DeviceId): Promise<number>;
  /**
   * Deletes queue entries older than the retention (default 30 days) as of `now`, and expired
   * pending registrations; returns the number of queue entries deleted.
   */
  purgeExpired(now: number): Promise<number>;

  /** Flushes pending group commits and releases the store; later calls fail with CLOSED. */
  close(): Promise<void>;
}
