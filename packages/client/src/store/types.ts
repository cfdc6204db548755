// The device's local store: the contract between the SDK (sessions, networking) and
// whatever keeps the bytes (SQLCipher file in Node today, IndexedDB in browsers later).
// Browser-safe: no Node built-ins here. All methods are synchronous because the Node
// implementation is SQLite (better-sqlite3 is synchronous); an async browser store will
// be wrapped by the same thin async adapters the SDK uses for the Signal stores.
//
// Times are milliseconds since the Unix epoch. Byte values are opaque to the store.

// ---------------------------------------------------------------------------------------
// Addresses and ids

/** A Signal protocol address: one device of one account. */
export interface Address {
  readonly name: string;
  readonly deviceId: number;
}

/**
 * Chat ids are strings made by `directChatId(name)` ("u:<name>") or `groupChatId(groupId)`
 * ("g:<groupId>") in ./chat-id.ts; the store derives the chat kind from the prefix.
 */
export type ChatId = string;
export type ChatKind = "direct" | "group";

// ---------------------------------------------------------------------------------------
// Profile meta (the device's own facts)

/** Typed keys of the meta area. Values are stored with their type and returned as such. */
export interface ProfileMeta {
  /** Own account name (also the `sender` of outgoing messages). */
  accountName: string;
  deviceId: number;
  serverUrl: string;
  /** The server's static (Noise) public key, pinned at registration. */
  serverStaticPublicKey: Uint8Array;
  registrationId: number;
  /** Serialized own identity key pair (opaque; the Signal package owns the format). */
  identityKeyPair: Uint8Array;
  /** Counters for generating prekey ids without reusing one. */
  nextPreKeyId: number;
  nextSignedPreKeyId: number;
  nextKyberPreKeyId: number;
  /** When the current signed prekey was generated (for rotation). */
  signedPreKeyRotatedAt: number;
}
export type MetaKey = keyof ProfileMeta;
/** What the free-form opaque area (getOpaque/setOpaque) holds. */
export type OpaqueValue = Uint8Array;

// ---------------------------------------------------------------------------------------
// Signal state (opaque serialized records)

/**
 * Trust in a contact's identity key:
 * - "default": trusted on first use, never compared out of band;
 * - "verified": the user compared safety numbers;
 * - "unverified": the key changed (or the user revoked verification): show a warning.
 */
export type TrustState = "default" | "verified" | "unverified";

export interface IdentityRecord {
  readonly address: Address;
  readonly publicKey: Uint8Array;
  readonly trust: TrustState;
  /** When this key (not the address) was first seen. */
  readonly firstSeenAt: number;
}

export interface SaveIdentityResult {
  /** True when a different key was stored before (Signal's "ReplacedExisting"). */
  readonly replaced: boolean;
}

/** Own prekey kinds: one-time EC prekeys, signed prekeys, KEM (Kyber/ML-KEM) prekeys. */
export type PreKeyKind = "prekey" | "signed" | "kyber";

export interface PreKeyEntry {
  readonly kind: PreKeyKind;
  readonly id: number;
  readonly record: Uint8Array;
  readonly used: boolean;
  readonly createdAt: number;
}

// ---------------------------------------------------------------------------------------
// Contacts and chats

export interface Contact {
  readonly name: string;
  readonly displayName: string | null;
  readonly addedAt: number;
  readonly blocked: boolean;
}

export interface Chat {
  readonly id: ChatId;
  readonly kind: ChatKind;
  readonly title: string | null;
  readonly createdAt: number;
  readonly muted: boolean;
  readonly unreadCount: number;
  /** Local row id of the newest message (by history order), null when empty. */
  readonly lastMessageRowId: number | null;
  readonly lastMessageAt: number | null;
  /** Start of the newest message's body (null for placeholders / empty chats). */
  readonly lastMessagePreview: string | null;
}

// ---------------------------------------------------------------------------------------
// Messages

export type MessageDirection = "in" | "out";
/**
 * Outgoing: pending → sent → delivered → read, or pending → failed (a failed message can
 * still be upgraded by a late receipt, or reset to pending by `retryFailed`).
 * Incoming: stored as "delivered" (we have it) and become "read" by `markChatRead`.
 * Never goes backwards; see `canTransition` in ./status.ts.
 */
export type MessageStatus = "pending" | "sent" | "delivered" | "read" | "failed";
/** "placeholder": a message that could not be decrypted yet (body null), replaced on retry. */
export type MessageKind = "text" | "placeholder";

export interface StoredMessage {
  /** Local, stable, increasing row id. */
  readonly rowId: number;
  /** The sender's message id (unique together with `sender`). */
  readonly id: string;
  readonly chatId: ChatId;
  /** Sender account name. */
  readonly sender: string;
  readonly senderDevice: number;
  readonly direction: MessageDirection;
  readonly kind: MessageKind;
  readonly body: string | null;
  /** Sender's clock. */
  readonly sentAt: number;
  /** Server timestamp (incoming: from the envelope; outgoing: set by markSent). */
  readonly serverAt: number | null;
  /** Our clock when received (incoming only). */
  readonly receivedAt: number | null;
  readonly status: MessageStatus;
  /** Key used for history order: serverAt ?? sentAt at insert time, never changed. */
  readonly sortAt: number;
}

export interface IncomingMessageInput {
  readonly id: string;
  readonly chatId: ChatId;
  readonly sender: string;
  readonly senderDevice: number;
  readonly body: string;
  readonly sentAt: number;
  readonly serverAt?: number | null;
  readonly receivedAt?: number;
}

export interface InsertResult {
  /** False when (sender, id) was already stored: nothing was changed. */
  readonly isNew: boolean;
  readonly message: StoredMessage;
  /** True when the message replaced a placeholder (same sender, device and sentAt). */
  readonly replacedPlaceholder: boolean;
}

export interface PlaceholderInput {
  /** Any id unique for this sender (e.g. "ph:<serverGuid>"); replaced by the real id. */
  readonly id: string;
  readonly chatId: ChatId;
  readonly sender: string;
  readonly senderDevice: number;
  /** The envelope's timestamp: the real message is matched on (sender, senderDevice, sentAt). */
  readonly sentAt: number;
  readonly serverAt?: number | null;
  readonly receivedAt?: number;
}

export interface OutgoingMessageInput {
  readonly id: string;
  readonly chatId: ChatId;
  readonly body: string;
  readonly sentAt: number;
  /** Default: meta accountName / deviceId (error NOT_FOUND when unset). */
  readonly sender?: string;
  readonly senderDevice?: number;
}

// ---------------------------------------------------------------------------------------
// Outbox

export interface OutboxItem {
  readonly message: StoredMessage;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError: string | null;
}

// ---------------------------------------------------------------------------------------
// History and search

/** Opaque cursor from a previous page; stable while messages are added. */
export type HistoryCursor = string;

export interface HistoryOptions {
  readonly before?: HistoryCursor | null;
  /** 1..1000, default 50. */
  readonly limit?: number;
}

export interface HistoryPage {
  /** Newest first. */
  readonly messages: StoredMessage[];
  /** Pass as `before` to get the next (older) page; null when this page reached the oldest. */
  readonly nextCursor: HistoryCursor | null;
}

export interface SearchOptions {
  readonly chatId?: ChatId;
  /** 1..500, default 50. */
  readonly limit?: number;
}

export interface SearchHit {
  readonly message: StoredMessage;
  /** Body excerpt with matches wrapped in « and ». */
  readonly snippet: string;
}

// ---------------------------------------------------------------------------------------
// Receipts

/** Read receipts to send after `markChatRead`: one entry per sender device. */
export interface PendingReadReceipt {
  readonly sender: string;
  readonly senderDevice: number;
  readonly messageIds: string[];
}

export interface ReceiptInput {
  readonly status: "delivered" | "read";
  /** Ids of OUR outgoing messages the receipt acknowledges. */
  readonly messageIds: readonly string[];
  /** Who sent the receipt (recorded per recipient device). */
  readonly from: Address;
  readonly at: number;
  /**
   * Group messages: the members the message went to. The status then moves only as far as every
   * one of them has come (delivered when each has a device that has it, read when each has read it).
   */
  readonly expectedRecipients?: readonly string[];
}

export interface RecipientReceipt {
  readonly recipient: Address;
  readonly status: "delivered" | "read";
  readonly at: number;
}

// ---------------------------------------------------------------------------------------
// The store

export interface ProfileStore {
  /** Absolute path of the database file. */
  readonly path: string;
  readonly schemaVersion: number;
  /** Runs fn in one transaction (nested calls join it); use it to group-commit a batch. */
  transaction<T>(fn: () => T): T;
  close(): void;

  // meta
  getMeta<K extends MetaKey>(key: K): ProfileMeta[K] | undefined;
  setMeta<K extends MetaKey>(key: K, value: ProfileMeta[K]): void;
  deleteMeta(key: MetaKey): void;
  getOpaque(key: string): OpaqueValue | undefined;
  setOpaque(key: string, value: OpaqueValue): void;
  deleteOpaque(key: string): void;

  // identity keys of others
  getIdentity(address: Address): IdentityRecord | undefined;
  /** Stores the key; a different key replaces the old one with trust "unverified". */
  saveIdentity(address: Address, publicKey: Uint8Array, now?: number): SaveIdentityResult;
  setIdentityTrust(address: Address, trust: TrustState): void;
  /**
   * Trust on first use: true when no key is stored for the address or the key equals the stored
   * one (whatever its trust state); false for a different key until `saveIdentity` accepts it.
   */
  isTrustedIdentity(address: Address, publicKey: Uint8Array): boolean;
  listIdentities(name: string): IdentityRecord[];

  // own prekeys
  savePreKey(kind: PreKeyKind, id: number, record: Uint8Array, now?: number): void;
  getPreKey(kind: PreKeyKind, id: number): PreKeyEntry | undefined;
  markPreKeyUsed(kind: PreKeyKind, id: number): void;
  removePreKey(kind: PreKeyKind, id: number): void;
  listPreKeys(kind: PreKeyKind, options?: { unusedOnly?: boolean }): PreKeyEntry[];
  countPreKeys(kind: PreKeyKind, options?: { unusedOnly?: boolean }): number;

  // sessions
  getSession(address: Address): Uint8Array | undefined;
  saveSession(address: Address, record: Uint8Array, now?: number): void;
  deleteSession(address: Address): void;
  deleteAllSessions(name: string): void;
  /** Device ids with a stored session for that account (ascending). */
  listSessionDevices(name: string): number[];

  // sender keys
  getSenderKey(address: Address, distributionId: string): Uint8Array | undefined;
  saveSenderKey(address: Address, distributionId: string, record: Uint8Array, now?: number): void;
  deleteSenderKey(address: Address, distributionId: string): void;
  /** Bookkeeping of who already received our sender key distribution message. */
  markSenderKeyShared(distributionId: string, addresses: readonly Address[]): void;
  listSenderKeyShared(distributionId: string): Address[];
  clearSenderKeyShared(distributionId: string, addresses?: readonly Address[]): void;

  // contacts
  upsertContact(input: { name: string; displayName?: string | null; addedAt?: number }): Contact;
  getContact(name: string): Contact | undefined;
  listContacts(): Contact[];
  setContactBlocked(name: string, blocked: boolean): void;
  removeContact(name: string): void;

  // chats
  /** Creates the chat if missing (kind from the id prefix); returns it. */
  ensureChat(id: ChatId, options?: { title?: string | null; now?: number }): Chat;
  getChat(id: ChatId): Chat | undefined;
  /** Newest activity first. */
  listChats(): Chat[];
  setChatMuted(id: ChatId, muted: boolean): void;
  setChatTitle(id: ChatId, title: string | null): void;

  // messages
  /** Idempotent on (sender, id); creates the chat if needed; replaces a matching placeholder. */
  insertIncoming(input: IncomingMessageInput): InsertResult;
  insertPlaceholder(input: PlaceholderInput): InsertResult;
  getMessage(sender: string, id: string): StoredMessage | undefined;
  getMessageByRowId(rowId: number): StoredMessage | undefined;
  /** Applies a transition if allowed (monotone); returns whether the status changed. */
  setStatus(sender: string, id: string, status: MessageStatus): boolean;
  deleteMessage(sender: string, id: string): void;

  // outbox
  /** Writes an outgoing message (status pending) and its outbox entry in one transaction. Idempotent on id. */
  queueOutgoing(input: OutgoingMessageInput): InsertResult;
  /** Pending items due at `now` (nextAttemptAt <= now), oldest first. */
  nextOutboxBatch(options: { now: number; limit?: number }): OutboxItem[];
  /** The server accepted it: status sent, leaves the outbox. Returns false if unknown / not pending. */
  markSent(id: string, serverTimestamp: number): boolean;
  /** A transient failure: attempts+1, retry no earlier than nextAttemptAt. */
  markAttemptFailed(id: string, nextAttemptAt: number, error?: string): void;
  /** A permanent failure: status failed, leaves the outbox. */
  markFailed(id: string, error?: string): void;
  /** Puts a failed message back into the outbox (status pending, attempts 0). */
  retryFailed(id: string, now?: number): boolean;
  outboxSize(): number;
  /** When the outbox's earliest entry is due (ms since the epoch), or undefined when it is empty. */
  nextOutboxAttemptAt(): number | undefined;

  // history, counts, search
  history(chatId: ChatId, options?: HistoryOptions): HistoryPage;
  countMessages(chatId?: ChatId): number;
  search(text: string, options?: SearchOptions): SearchHit[];

  // receipts
  /** Receipts for our outgoing messages; returns the ids whose status changed. */
  applyReceipt(input: ReceiptInput): string[];
  listReceipts(id: string): RecipientReceipt[];
  /** Marks every unread incoming text message of the chat read, zeroes the unread count. */
  markChatRead(chatId: ChatId): PendingReadReceipt[];
  totalUnread(): number;
}
