// ProfileStore on one SQLCipher database (better-sqlite3-multiple-ciphers). Synchronous by
// design: better-sqlite3 is, and a local store answers in microseconds. Derived values
// (unread counts, last message) are computed from messages, not kept in counters that drift.
import type BetterSqlite3 from "better-sqlite3-multiple-ciphers";
import { parseChatId } from "./chat-id.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { StoreError } from "./errors.ts";
import { planSearch, SNIPPET_CLOSE, SNIPPET_ELLIPSIS, SNIPPET_OPEN, simpleSnippet } from "./fts-query.ts";
import {
  bytes,
  CHAT_SELECT,
  type ChatRow,
  type ContactRow,
  type IdentityRow,
  MESSAGE_COLUMNS,
  type MessageRow,
  type PreKeyRow,
  toChat,
  toContact,
  toIdentity,
  toMessage,
  toPreKey,
} from "./rows.ts";
import { SCHEMA_VERSION } from "./schema.ts";
import { canTransition } from "./status.ts";
import type {
  Address,
  Chat,
  ChatId,
  Contact,
  HistoryOptions,
  HistoryPage,
  IdentityRecord,
  IncomingMessageInput,
  InsertResult,
  MessageStatus,
  MetaKey,
  OpaqueValue,
  OutboxItem,
  OutgoingMessageInput,
  PendingReadReceipt,
  PlaceholderInput,
  PreKeyEntry,
  PreKeyKind,
  ProfileMeta,
  ProfileStore,
  ReceiptInput,
  RecipientReceipt,
  SaveIdentityResult,
  SearchHit,
  SearchOptions,
  StoredMessage,
  TrustState,
} from "./types.ts";
import { checkAddress, checkBytes, checkId, checkInt, checkLimit, checkTime } from "./validate.ts";

type Db = BetterSqlite3.Database;
type Param = string | number | Uint8Array | null;

const META_TYPES: { readonly [K in MetaKey]: "string" | "integer" | "bytes" } = {
  accountName: "string",
  deviceId: "integer",
  serverUrl: "string",
  serverStaticPublicKey: "bytes",
  registrationId: "integer",
  identityKeyPair: "bytes",
  nextPreKeyId: "integer",
  nextSignedPreKeyId: "integer",
  nextKyberPreKeyId: "integer",
  signedPreKeyRotatedAt: "integer",
};

const PREKEY_KINDS: readonly PreKeyKind[] = ["prekey", "signed", "kyber"];
const TRUST_STATES: readonly TrustState[] = ["default", "verified", "unverified"];
const MESSAGE_STATUSES: readonly MessageStatus[] = ["pending", "sent", "delivered", "read", "failed"];
const FTS_SNIPPET_TOKENS = 48;

function sqliteCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined;
}

/** Maps a SQLite failure to a StoreError; StoreErrors pass through untouched. */
export function toStoreError(e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  const code = sqliteCode(e) ?? "";
  const message = e instanceof Error ? e.message : String(e);
  if (code.startsWith("SQLITE_CONSTRAINT")) return new StoreError("CONFLICT", message, { cause: e });
  if (code === "SQLITE_CORRUPT" || code.startsWith("SQLITE_CORRUPT_") || code === "SQLITE_NOTADB") {
    return new StoreError("CORRUPT", message, { cause: e });
  }
  if (e instanceof TypeError && message.includes("not open")) return new StoreError("CLOSED", "store is closed");
  return new StoreError("IO", message, { cause: e });
}

export class SqliteProfileStore implements ProfileStore {
  readonly path: string;
  readonly schemaVersion = SCHEMA_VERSION;
  readonly #db: Db;
  readonly #statements = new Map<string, BetterSqlite3.Statement<Param[]>>();
  #runInTransaction: ((fn: () => unknown) => unknown) | undefined;

  constructor(db: Db, path: string) {
    this.#db = db;
    this.path = path;
  }

  // -- plumbing ---------------------------------------------------------------------------

  #stmt(sql: string): BetterSqlite3.Statement<Param[]> {
    if (!this.#db.open) throw new StoreError("CLOSED", "store is closed");
    let s = this.#statements.get(sql);
    if (!s) {
      try {
        s = this.#db.prepare<Param[]>(sql);
      } catch (e) {
        throw toStoreError(e);
      }
      this.#statements.set(sql, s);
    }
    return s;
  }

  #get<T>(sql: string, ...params: Param[]): T | undefined {
    try {
      return this.#stmt(sql).get(...params) as T | undefined;
    } catch (e) {
      throw toStoreError(e);
    }
  }

  #all<T>(sql: string, ...params: Param[]): T[] {
    try {
      return this.#stmt(sql).all(...params) as T[];
    } catch (e) {
      throw toStoreError(e);
    }
  }

  #run(sql: string, ...params: Param[]): number {
    try {
      return this.#stmt(sql).run(...params).changes;
    } catch (e) {
      throw toStoreError(e);
    }
  }

  transaction<T>(fn: () => T): T {
    if (!this.#db.open) throw new StoreError("CLOSED", "store is closed");
    try {
      // One cached wrapper (building one per call is costly); better-sqlite3 turns nested
      // calls into savepoints, so an inner failure rolls back only the inner part.
      this.#runInTransaction ??= this.#db.transaction((inner: () => unknown) => inner());
      return this.#runInTransaction(fn) as T;
    } catch (e) {
      // The caller's own errors (e.g. a SignalError) pass through unchanged.
      throw sqliteCode(e)?.startsWith("SQLITE_") ? toStoreError(e) : e;
    }
  }

  close(): void {
    if (!this.#db.open) return;
    this.#statements.clear();
    this.#db.close();
  }

  // -- meta -------------------------------------------------------------------------------

  getMeta<K extends MetaKey>(key: K): ProfileMeta[K] | undefined {
    const type = META_TYPES[key];
    if (!type) throw new StoreError("INVALID_ARGUMENT", `unknown meta key ${String(key)}`);
    const row = this.#get<{ value: unknown }>("SELECT value FROM meta WHERE key = ?", key);
    if (!row) return undefined;
    const v = row.value;
    if (type === "string" && typeof v === "string") return v as ProfileMeta[K];
    if (type === "integer" && typeof v === "number") return v as ProfileMeta[K];
    if (type === "bytes" && v instanceof Uint8Array) return bytes(v) as ProfileMeta[K];
    throw new StoreError("CORRUPT", `meta ${key} holds a value of the wrong type`);
  }

  setMeta<K extends MetaKey>(key: K, value: ProfileMeta[K]): void {
    const type = META_TYPES[key];
    if (!type) throw new StoreError("INVALID_ARGUMENT", `unknown meta key ${String(key)}`);
    const ok =
      (type === "string" && typeof value === "string") ||
      (type === "integer" && typeof value === "number" && Number.isSafeInteger(value)) ||
      (type === "bytes" && value instanceof Uint8Array);
    if (!ok) throw new StoreError("INVALID_ARGUMENT", `meta ${key} must be a ${type}`);
    this.#run(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value as Param,
    );
  }

  deleteMeta(key: MetaKey): void {
    this.#run("DELETE FROM meta WHERE key = ?", key);
  }

  getOpaque(key: string): OpaqueValue | undefined {
    const row = this.#get<{ value: Uint8Array }>("SELECT value FROM opaque WHERE key = ?", checkId(key, "key"));
    return row ? bytes(row.value) : undefined;
  }

  setOpaque(key: string, value: OpaqueValue): void {
    this.#run(
      "INSERT INTO opaque (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      checkId(key, "key"),
      checkBytes(value, "value"),
    );
  }

  deleteOpaque(key: string): void {
    this.#run("DELETE FROM opaque WHERE key = ?", checkId(key, "key"));
  }

  // -- identity keys ----------------------------------------------------------------------

  getIdentity(address: Address): IdentityRecord | undefined {
    checkAddress(address);
    const row = this.#get<IdentityRow>(
      "SELECT * FROM identities WHERE name = ? AND device_id = ?",
      address.name,
      address.deviceId,
    );
    return row ? toIdentity(row) : undefined;
  }

  saveIdentity(address: Address, publicKey: Uint8Array, now: number = Date.now()): SaveIdentityResult {
    checkAddress(address);
    checkBytes(publicKey, "publicKey");
    checkTime(now, "now");
    return this.transaction(() => {
      const existing = this.getIdentity(address);
      if (!existing) {
        this.#run(
          "INSERT INTO identities (name, device_id, public_key, trust, first_seen_at) VALUES (?, ?, ?, 'default', ?)",
          address.name,
          address.deviceId,
          publicKey,
          now,
        );
        return { replaced: false };
      }
      if (equalBytes(existing.publicKey, publicKey)) return { replaced: false };
      // A new key is never silently trusted as "verified": the user must compare again.
      this.#run(
        "UPDATE identities SET public_key = ?, trust = 'unverified', first_seen_at = ? WHERE name = ? AND device_id = ?",
        publicKey,
        now,
        address.name,
        address.deviceId,
      );
      return { replaced: true };
    });
  }

  setIdentityTrust(address: Address, trust: TrustState): void {
    checkAddress(address);
    if (!TRUST_STATES.includes(trust)) throw new StoreError("INVALID_ARGUMENT", "unknown trust state");
    const changed = this.#run(
      "UPDATE identities SET trust = ? WHERE name = ? AND device_id = ?",
      trust,
      address.name,
      address.deviceId,
    );
    if (changed === 0) throw new StoreError("NOT_FOUND", `no identity for ${address.name}.${address.deviceId}`);
  }

  isTrustedIdentity(address: Address, publicKey: Uint8Array): boolean {
    checkBytes(publicKey, "publicKey");
    const existing = this.getIdentity(address);
    return existing === undefined || equalBytes(existing.publicKey, publicKey);
  }

  listIdentities(name: string): IdentityRecord[] {
    return this.#all<IdentityRow>(
      "SELECT * FROM identities WHERE name = ? ORDER BY device_id",
      checkId(name, "name"),
    ).map(toIdentity);
  }

  // -- own prekeys ------------------------------------------------------------------------

  savePreKey(kind: PreKeyKind, id: number, record: Uint8Array, now: number = Date.now()): void {
    checkPreKeyKind(kind);
    checkInt(id, "prekey id");
    checkBytes(record, "record");
    checkTime(now, "now");
    this.#run(
      `INSERT INTO prekeys (kind, id, record, used, created_at) VALUES (?, ?, ?, 0, ?)
       ON CONFLICT (kind, id) DO UPDATE SET record = excluded.record`,
      kind,
      id,
      record,
      now,
    );
  }

  getPreKey(kind: PreKeyKind, id: number): PreKeyEntry | undefined {
    checkPreKeyKind(kind);
    const row = this.#get<PreKeyRow>("SELECT * FROM prekeys WHERE kind = ? AND id = ?", kind, checkInt(id, "id"));
    return row ? toPreKey(row) : undefined;
  }

  markPreKeyUsed(kind: PreKeyKind, id: number): void {
    checkPreKeyKind(kind);
    const changed = this.#run("UPDATE prekeys SET used = 1 WHERE kind = ? AND id = ?", kind, checkInt(id, "id"));
    if (changed === 0) throw new StoreError("NOT_FOUND", `no ${kind} ${id}`);
  }

  removePreKey(kind: PreKeyKind, id: number): void {
    checkPreKeyKind(kind);
    this.#run("DELETE FROM prekeys WHERE kind = ? AND id = ?", kind, checkInt(id, "id"));
  }

  listPreKeys(kind: PreKeyKind, options: { unusedOnly?: boolean } = {}): PreKeyEntry[] {
    checkPreKeyKind(kind);
    const sql = options.unusedOnly
      ? "SELECT * FROM prekeys WHERE kind = ? AND used = 0 ORDER BY id"
      : "SELECT * FROM prekeys WHERE kind = ? ORDER BY id";
    return this.#all<PreKeyRow>(sql, kind).map(toPreKey);
  }

  countPreKeys(kind: PreKeyKind, options: { unusedOnly?: boolean } = {}): number {
    checkPreKeyKind(kind);
    const sql = options.unusedOnly
      ? "SELECT count(*) AS n FROM prekeys WHERE kind = ? AND used = 0"
      : "SELECT count(*) AS n FROM prekeys WHERE kind = ?";
    return this.#get<{ n: number }>(sql, kind)?.n ?? 0;
  }

  // -- sessions ---------------------------------------------------------------------------

  getSession(address: Address): Uint8Array | undefined {
    checkAddress(address);
    const row = this.#get<{ record: Uint8Array }>(
      "SELECT record FROM sessions WHERE name = ? AND device_id = ?",
      address.name,
      address.deviceId,
    );
    return row ? bytes(row.record) : undefined;
  }

  saveSession(address: Address, record: Uint8Array, now: number = Date.now()): void {
    checkAddress(address);
    this.#run(
      `INSERT INTO sessions (name, device_id, record, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name, device_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at`,
      address.name,
      address.deviceId,
      checkBytes(record, "record"),
      checkTime(now, "now"),
    );
  }

  deleteSession(address: Address): void {
    checkAddress(address);
    this.#run("DELETE FROM sessions WHERE name = ? AND device_id = ?", address.name, address.deviceId);
  }

  deleteAllSessions(name: string): void {
    this.#run("DELETE FROM sessions WHERE name = ?", checkId(name, "name"));
  }

  listSessionDevices(name: string): number[] {
    return this.#all<{ device_id: number }>(
      "SELECT device_id FROM sessions WHERE name = ? ORDER BY device_id",
      checkId(name, "name"),
    ).map((r) => r.device_id);
  }

  // -- sender keys ------------------------------------------------------------------------

  getSenderKey(address: Address, distributionId: string): Uint8Array | undefined {
    checkAddress(address);
    const row = this.#get<{ record: Uint8Array }>(
      "SELECT record FROM sender_keys WHERE name = ? AND device_id = ? AND distribution_id = ?",
      address.name,
      address.deviceId,
      checkId(distributionId, "distributionId"),
    );
    return row ? bytes(row.record) : undefined;
  }

  saveSenderKey(address: Address, distributionId: string, record: Uint8Array, now: number = Date.now()): void {
    checkAddress(address);
    this.#run(
      `INSERT INTO sender_keys (name, device_id, distribution_id, record, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name, device_id, distribution_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at`,
      address.name,
      address.deviceId,
      checkId(distributionId, "distributionId"),
      checkBytes(record, "record"),
      checkTime(now, "now"),
    );
  }

  deleteSenderKey(address: Address, distributionId: string): void {
    checkAddress(address);
    this.#run(
      "DELETE FROM sender_keys WHERE name = ? AND device_id = ? AND distribution_id = ?",
      address.name,
      address.deviceId,
      checkId(distributionId, "distributionId"),
    );
  }

  markSenderKeyShared(distributionId: string, addresses: readonly Address[]): void {
    checkId(distributionId, "distributionId");
    for (const a of addresses) checkAddress(a);
    this.transaction(() => {
      for (const a of addresses) {
        this.#run(
          "INSERT OR IGNORE INTO sender_key_shared (distribution_id, name, device_id) VALUES (?, ?, ?)",
          distributionId,
          a.name,
          a.deviceId,
        );
      }
    });
  }

  listSenderKeyShared(distributionId: string): Address[] {
    return this.#all<{ name: string; device_id: number }>(
      "SELECT name, device_id FROM sender_key_shared WHERE distribution_id = ? ORDER BY name, device_id",
      checkId(distributionId, "distributionId"),
    ).map((r) => ({ name: r.name, deviceId: r.device_id }));
  }

  clearSenderKeyShared(distributionId: string, addresses?: readonly Address[]): void {
    checkId(distributionId, "distributionId");
    if (addresses === undefined) {
      this.#run("DELETE FROM sender_key_shared WHERE distribution_id = ?", distributionId);
      return;
    }
    for (const a of addresses) checkAddress(a);
    this.transaction(() => {
      for (const a of addresses) {
        this.#run(
          "DELETE FROM sender_key_shared WHERE distribution_id = ? AND name = ? AND device_id = ?",
          distributionId,
          a.name,
          a.deviceId,
        );
      }
    });
  }

  // -- contacts ---------------------------------------------------------------------------

  upsertContact(input: { name: string; displayName?: string | null; addedAt?: number }): Contact {
    const name = checkId(input.name, "contact name");
    const addedAt = checkTime(input.addedAt ?? Date.now(), "addedAt");
    return this.transaction(() => {
      const existing = this.getContact(name);
      if (!existing) {
        this.#run(
          "INSERT INTO contacts (name, display_name, added_at, blocked) VALUES (?, ?, ?, 0)",
          name,
          input.displayName ?? null,
          addedAt,
        );
      } else if (input.displayName !== undefined) {
        this.#run("UPDATE contacts SET display_name = ? WHERE name = ?", input.displayName, name);
      }
      return this.getContact(name)!;
    });
  }

  getContact(name: string): Contact | undefined {
    const row = this.#get<ContactRow>("SELECT * FROM contacts WHERE name = ?", checkId(name, "name"));
    return row ? toContact(row) : undefined;
  }

  listContacts(): Contact[] {
    return this.#all<ContactRow>("SELECT * FROM contacts ORDER BY name").map(toContact);
  }

  setContactBlocked(name: string, blocked: boolean): void {
    const changed = this.#run("UPDATE contacts SET blocked = ? WHERE name = ?", blocked ? 1 : 0, checkId(name, "name"));
    if (changed === 0) throw new StoreError("NOT_FOUND", `no contact ${name}`);
  }

  removeContact(name: string): void {
    this.#run("DELETE FROM contacts WHERE name = ?", checkId(name, "name"));
  }

  // -- chats ------------------------------------------------------------------------------

  ensureChat(id: ChatId, options: { title?: string | null; now?: number } = {}): Chat {
    this.#ensureChatRow(id, options.title ?? null, checkTime(options.now ?? Date.now(), "now"));
    return this.getChat(id)!;
  }

  /** The cheap part of ensureChat, for the message hot path (no unread count computed). */
  #ensureChatRow(id: ChatId, title: string | null, now: number): void {
    checkId(id, "chat id");
    const { kind } = parseChatId(id);
    this.#run(
      "INSERT OR IGNORE INTO chats (id, kind, title, created_at, muted) VALUES (?, ?, ?, ?, 0)",
      id,
      kind,
      title,
      now,
    );
  }

  getChat(id: ChatId): Chat | undefined {
    const row = this.#get<ChatRow>(`${CHAT_SELECT} WHERE c.id = ?`, checkId(id, "chat id"));
    return row ? toChat(row) : undefined;
  }

  listChats(): Chat[] {
    return this.#all<ChatRow>(`${CHAT_SELECT} ORDER BY coalesce(l.sort_at, c.created_at) DESC, c.id`).map(toChat);
  }

  setChatMuted(id: ChatId, muted: boolean): void {
    const changed = this.#run("UPDATE chats SET muted = ? WHERE id = ?", muted ? 1 : 0, checkId(id, "chat id"));
    if (changed === 0) throw new StoreError("NOT_FOUND", `no chat ${id}`);
  }

  setChatTitle(id: ChatId, title: string | null): void {
    const changed = this.#run("UPDATE chats SET title = ? WHERE id = ?", title, checkId(id, "chat id"));
    if (changed === 0) throw new StoreError("NOT_FOUND", `no chat ${id}`);
  }

  // -- messages ---------------------------------------------------------------------------

  #messageRow(sender: string, id: string): MessageRow | undefined {
    return this.#get<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.sender = ? AND m.msg_id = ?`,
      sender,
      id,
    );
  }

  #outgoingRow(id: string): MessageRow | undefined {
    return this.#get<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.direction = 'out' AND m.msg_id = ?`,
      checkId(id, "message id"),
    );
  }

  #byRowId(rowId: number): StoredMessage {
    const row = this.#get<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.row_id = ?`, rowId);
    if (!row) throw new StoreError("NOT_FOUND", `no message row ${rowId}`);
    return toMessage(row);
  }

  insertIncoming(input: IncomingMessageInput): InsertResult {
    const id = checkId(input.id, "message id");
    const sender = checkId(input.sender, "sender");
    checkInt(input.senderDevice, "senderDevice");
    checkTime(input.sentAt, "sentAt");
    const serverAt = input.serverAt == null ? null : checkTime(input.serverAt, "serverAt");
    const receivedAt = checkTime(input.receivedAt ?? Date.now(), "receivedAt");
    if (typeof input.body !== "string") throw new StoreError("INVALID_ARGUMENT", "body must be a string");
    return this.transaction(() => {
      const existing = this.#messageRow(sender, id);
      if (existing) return { isNew: false, message: toMessage(existing), replacedPlaceholder: false };
      this.#ensureChatRow(input.chatId, null, receivedAt);
      const placeholder = this.#get<{ row_id: number }>(
        `SELECT row_id FROM messages WHERE kind = 'placeholder' AND sender = ? AND sender_device = ? AND sent_at = ?
         ORDER BY row_id LIMIT 1`,
        sender,
        input.senderDevice,
        input.sentAt,
      );
      if (placeholder) {
        // Keep the placeholder's row (and so its place in history); fill in the real content.
        this.#run(
          `UPDATE messages SET msg_id = ?, chat_id = ?, kind = 'text', body = ?, server_at = coalesce(?, server_at),
             received_at = ?, status = 'delivered' WHERE row_id = ?`,
          id,
          input.chatId,
          input.body,
          serverAt,
          receivedAt,
          placeholder.row_id,
        );
        return { isNew: true, message: this.#byRowId(placeholder.row_id), replacedPlaceholder: true };
      }
      const rowId = this.#insertMessage({
        id,
        chatId: input.chatId,
        sender,
        senderDevice: input.senderDevice,
        direction: "in",
        kind: "text",
        body: input.body,
        sentAt: input.sentAt,
        serverAt,
        receivedAt,
        status: "delivered",
      });
      return { isNew: true, message: this.#byRowId(rowId), replacedPlaceholder: false };
    });
  }

  insertPlaceholder(input: PlaceholderInput): InsertResult {
    const id = checkId(input.id, "message id");
    const sender = checkId(input.sender, "sender");
    checkInt(input.senderDevice, "senderDevice");
    checkTime(input.sentAt, "sentAt");
    const serverAt = input.serverAt == null ? null : checkTime(input.serverAt, "serverAt");
    const receivedAt = checkTime(input.receivedAt ?? Date.now(), "receivedAt");
    return this.transaction(() => {
      const existing = this.#messageRow(sender, id);
      if (existing) return { isNew: false, message: toMessage(existing), replacedPlaceholder: false };
      this.#ensureChatRow(input.chatId, null, receivedAt);
      const rowId = this.#insertMessage({
        id,
        chatId: input.chatId,
        sender,
        senderDevice: input.senderDevice,
        direction: "in",
        kind: "placeholder",
        body: null,
        sentAt: input.sentAt,
        serverAt,
        receivedAt,
        status: "delivered",
      });
      return { isNew: true, message: this.#byRowId(rowId), replacedPlaceholder: false };
    });
  }

  #insertMessage(m: Omit<StoredMessage, "rowId" | "sortAt">): number {
    const sortAt = m.serverAt ?? m.sentAt;
    try {
      const result = this.#stmt(
        `INSERT INTO messages (msg_id, chat_id, sender, sender_device, direction, kind, body, sent_at, server_at,
           received_at, status, sort_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        m.id,
        m.chatId,
        m.sender,
        m.senderDevice,
        m.direction,
        m.kind,
        m.body,
        m.sentAt,
        m.serverAt,
        m.receivedAt,
        m.status,
        sortAt,
      );
      return Number(result.lastInsertRowid);
    } catch (e) {
      throw toStoreError(e);
    }
  }

  getMessage(sender: string, id: string): StoredMessage | undefined {
    const row = this.#messageRow(checkId(sender, "sender"), checkId(id, "message id"));
    return row ? toMessage(row) : undefined;
  }

  getMessageByRowId(rowId: number): StoredMessage | undefined {
    const row = this.#get<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.row_id = ?`,
      checkInt(rowId, "rowId"),
    );
    return row ? toMessage(row) : undefined;
  }

  setStatus(sender: string, id: string, status: MessageStatus): boolean {
    if (!MESSAGE_STATUSES.includes(status)) throw new StoreError("INVALID_ARGUMENT", "unknown status");
    return this.transaction(() => {
      const row = this.#messageRow(checkId(sender, "sender"), checkId(id, "message id"));
      if (!row) throw new StoreError("NOT_FOUND", `no message ${sender}/${id}`);
      return this.#transition(row, status);
    });
  }

  /** The only place a status is written: applies `to` when the rule allows it. */
  #transition(row: MessageRow, to: MessageStatus): boolean {
    if (!canTransition(row.status, to)) return false;
    this.#run("UPDATE messages SET status = ? WHERE row_id = ?", to, row.row_id);
    // Past "pending" the server has it (resending would only duplicate) or we gave up (failed).
    this.#run("DELETE FROM outbox WHERE message_row = ?", row.row_id);
    return true;
  }

  deleteMessage(sender: string, id: string): void {
    this.#run("DELETE FROM messages WHERE sender = ? AND msg_id = ?", checkId(sender, "sender"), checkId(id, "id"));
  }

  // -- outbox -----------------------------------------------------------------------------

  queueOutgoing(input: OutgoingMessageInput): InsertResult {
    const id = checkId(input.id, "message id");
    checkTime(input.sentAt, "sentAt");
    if (typeof input.body !== "string") throw new StoreError("INVALID_ARGUMENT", "body must be a string");
    return this.transaction(() => {
      const sender = input.sender ?? this.getMeta("accountName");
      const senderDevice = input.senderDevice ?? this.getMeta("deviceId");
      if (sender === undefined || senderDevice === undefined) {
        throw new StoreError("NOT_FOUND", "meta accountName/deviceId unset: pass sender and senderDevice");
      }
      checkId(sender, "sender");
      checkInt(senderDevice, "senderDevice");
      const existing = this.#outgoingRow(id);
      if (existing) return { isNew: false, message: toMessage(existing), replacedPlaceholder: false };
      this.#ensureChatRow(input.chatId, null, input.sentAt);
      const rowId = this.#insertMessage({
        id,
        chatId: input.chatId,
        sender,
        senderDevice,
        direction: "out",
        kind: "text",
        body: input.body,
        sentAt: input.sentAt,
        serverAt: null,
        receivedAt: null,
        status: "pending",
      });
      this.#run("INSERT INTO outbox (message_row, attempts, next_attempt_at) VALUES (?, 0, ?)", rowId, input.sentAt);
      return { isNew: true, message: this.#byRowId(rowId), replacedPlaceholder: false };
    });
  }

  nextOutboxBatch(options: { now: number; limit?: number }): OutboxItem[] {
    const now = checkTime(options.now, "now");
    const limit = checkLimit(options.limit, 50, 1000);
    const rows = this.#all<MessageRow & { attempts: number; next_attempt_at: number; last_error: string | null }>(
      `SELECT ${MESSAGE_COLUMNS}, o.attempts, o.next_attempt_at, o.last_error
       FROM outbox o JOIN messages m ON m.row_id = o.message_row
       WHERE o.next_attempt_at <= ? ORDER BY o.message_row LIMIT ?`,
      now,
      limit,
    );
    return rows.map((r) => ({
      message: toMessage(r),
      attempts: r.attempts,
      nextAttemptAt: r.next_attempt_at,
      lastError: r.last_error,
    }));
  }

  markSent(id: string, serverTimestamp: number): boolean {
    checkTime(serverTimestamp, "serverTimestamp");
    return this.transaction(() => {
      const row = this.#outgoingRow(id);
      if (!row) return false;
      this.#run("DELETE FROM outbox WHERE message_row = ?", row.row_id);
      this.#run(
        "UPDATE messages SET server_at = ? WHERE row_id = ? AND server_at IS NULL",
        serverTimestamp,
        row.row_id,
      );
      return this.#transition(row, "sent");
    });
  }

  markAttemptFailed(id: string, nextAttemptAt: number, error?: string): void {
    checkTime(nextAttemptAt, "nextAttemptAt");
    this.transaction(() => {
      const row = this.#outgoingRow(id);
      if (!row) throw new StoreError("NOT_FOUND", `no outgoing message ${id}`);
      const changed = this.#run(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE message_row = ?",
        nextAttemptAt,
        error?.slice(0, 1000) ?? null,
        row.row_id,
      );
      if (changed === 0) throw new StoreError("NOT_FOUND", `message ${id} is not in the outbox`);
    });
  }

  markFailed(id: string, _error?: string): void {
    this.transaction(() => {
      const row = this.#outgoingRow(id);
      if (!row) throw new StoreError("NOT_FOUND", `no outgoing message ${id}`);
      this.#run("DELETE FROM outbox WHERE message_row = ?", row.row_id);
      this.#transition(row, "failed");
    });
  }

  retryFailed(id: string, now: number = Date.now()): boolean {
    checkTime(now, "now");
    return this.transaction(() => {
      const row = this.#outgoingRow(id);
      if (row?.status !== "failed") return false;
      // The one sanctioned step backwards: the user asked to send again.
      this.#run("UPDATE messages SET status = 'pending' WHERE row_id = ?", row.row_id);
      this.#run(
        "INSERT OR REPLACE INTO outbox (message_row, attempts, next_attempt_at, last_error) VALUES (?, 0, ?, NULL)",
        row.row_id,
        now,
      );
      return true;
    });
  }

  outboxSize(): number {
    return this.#get<{ n: number }>("SELECT count(*) AS n FROM outbox")?.n ?? 0;
  }

  nextOutboxAttemptAt(): number | undefined {
    return this.#get<{ t: number | null }>("SELECT min(next_attempt_at) AS t FROM outbox")?.t ?? undefined;
  }

  // -- history, counts, search ------------------------------------------------------------

  history(chatId: ChatId, options: HistoryOptions = {}): HistoryPage {
    checkId(chatId, "chat id");
    const limit = checkLimit(options.limit, 50, 1000);
    const rows =
      options.before == null
        ? this.#all<MessageRow>(
            `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.chat_id = ?
             ORDER BY m.sort_at DESC, m.row_id DESC LIMIT ?`,
            chatId,
            limit + 1,
          )
        : (() => {
            const c = decodeCursor(options.before);
            return this.#all<MessageRow>(
              `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.chat_id = ? AND (m.sort_at, m.row_id) < (?, ?)
               ORDER BY m.sort_at DESC, m.row_id DESC LIMIT ?`,
              chatId,
              c.sortAt,
              c.rowId,
              limit + 1,
            );
          })();
    const more = rows.length > limit;
    const page = (more ? rows.slice(0, limit) : rows).map(toMessage);
    const last = page.at(-1);
    return { messages: page, nextCursor: more && last ? encodeCursor(last) : null };
  }

  countMessages(chatId?: ChatId): number {
    const row =
      chatId === undefined
        ? this.#get<{ n: number }>("SELECT count(*) AS n FROM messages")
        : this.#get<{ n: number }>("SELECT count(*) AS n FROM messages WHERE chat_id = ?", checkId(chatId, "chat id"));
    return row?.n ?? 0;
  }

  search(text: string, options: SearchOptions = {}): SearchHit[] {
    if (typeof text !== "string") throw new StoreError("INVALID_ARGUMENT", "search text must be a string");
    const limit = checkLimit(options.limit, 50, 500);
    const plan = planSearch(text);
    if (plan.terms.length === 0) return [];
    const where: string[] = [];
    const params: Param[] = [];
    if (options.chatId !== undefined) {
      where.push("m.chat_id = ?");
      params.push(checkId(options.chatId, "chat id"));
    }
    for (const pattern of plan.likePatterns) {
      where.push("m.body LIKE ? ESCAPE '\\'");
      params.push(pattern);
    }
    const extra = where.length > 0 ? ` AND ${where.join(" AND ")}` : "";
    if (plan.match !== null) {
      const rows = this.#all<MessageRow & { snip: string }>(
        `SELECT ${MESSAGE_COLUMNS}, snippet(messages_fts, 0, ?, ?, ?, ${FTS_SNIPPET_TOKENS}) AS snip
         FROM messages_fts JOIN messages m ON m.row_id = messages_fts.rowid
         WHERE messages_fts MATCH ?${extra} ORDER BY m.sort_at DESC, m.row_id DESC LIMIT ?`,
        SNIPPET_OPEN,
        SNIPPET_CLOSE,
        SNIPPET_ELLIPSIS,
        plan.match,
        ...params,
        limit,
      );
      return rows.map((r) => ({ message: toMessage(r), snippet: r.snip }));
    }
    const rows = this.#all<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.kind = 'text'${extra}
       ORDER BY m.sort_at DESC, m.row_id DESC LIMIT ?`,
      ...params,
      limit,
    );
    return rows.map((r) => ({ message: toMessage(r), snippet: simpleSnippet(r.body ?? "", plan.terms) }));
  }

  // -- receipts ---------------------------------------------------------------------------

  applyReceipt(input: ReceiptInput): string[] {
    if (input.status !== "delivered" && input.status !== "read") {
      throw new StoreError("INVALID_ARGUMENT", "receipt status must be delivered or read");
    }
    checkAddress(input.from);
    checkTime(input.at, "at");
    for (const id of input.messageIds) checkId(id, "message id");
    return this.transaction(() => {
      const changed: string[] = [];
      for (const id of input.messageIds) {
        const row = this.#outgoingRow(id);
        if (!row) continue;
        // In a 1:1 chat only the peer can acknowledge; anyone else's receipt is forged or misrouted.
        const chat = parseChatId(row.chat_id);
        if (chat.kind === "direct" && chat.target !== input.from.name) continue;
        this.#run(
          `INSERT INTO receipts (message_row, name, device_id, status, at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (message_row, name, device_id) DO UPDATE SET status = excluded.status, at = excluded.at
           WHERE receipts.status = 'delivered' AND excluded.status = 'read'`,
          row.row_id,
          input.from.name,
          input.from.deviceId,
          input.status,
          input.at,
        );
        let reached: "delivered" | "read" | null = input.status;
        if (chat.kind === "group" && input.expectedRecipients !== undefined) {
          const got = new Map<string, string>();
          for (const r of this.#all<{ name: string; status: string }>(
            "SELECT name, status FROM receipts WHERE message_row = ?",
            row.row_id,
          )) {
            if (got.get(r.name) !== "read") got.set(r.name, r.status);
          }
          const all = input.expectedRecipients;
          if (all.every((n) => got.get(n) === "read")) reached = "read";
          else if (all.every((n) => got.has(n))) reached = "delivered";
          else reached = null;
        }
        if (reached !== null && this.#transition(row, reached)) changed.push(id);
      }
      return changed;
    });
  }

  listReceipts(id: string): RecipientReceipt[] {
    const row = this.#outgoingRow(id);
    if (!row) return [];
    return this.#all<{ name: string; device_id: number; status: "delivered" | "read"; at: number }>(
      "SELECT name, device_id, status, at FROM receipts WHERE message_row = ? ORDER BY name, device_id",
      row.row_id,
    ).map((r) => ({ recipient: { name: r.name, deviceId: r.device_id }, status: r.status, at: r.at }));
  }

  markChatRead(chatId: ChatId): PendingReadReceipt[] {
    checkId(chatId, "chat id");
    return this.transaction(() => {
      const rows = this.#all<{ row_id: number; msg_id: string; sender: string; sender_device: number }>(
        `SELECT row_id, msg_id, sender, sender_device FROM messages
         WHERE chat_id = ? AND direction = 'in' AND kind = 'text' AND status <> 'read' ORDER BY sort_at, row_id`,
        chatId,
      );
      const bySender = new Map<string, PendingReadReceipt>();
      for (const r of rows) {
        this.#run("UPDATE messages SET status = 'read' WHERE row_id = ?", r.row_id);
        const key = JSON.stringify([r.sender, r.sender_device]);
        let entry = bySender.get(key);
        if (!entry) {
          entry = { sender: r.sender, senderDevice: r.sender_device, messageIds: [] };
          bySender.set(key, entry);
        }
        entry.messageIds.push(r.msg_id);
      }
      return [...bySender.values()];
    });
  }

  totalUnread(): number {
    return (
      this.#get<{ n: number }>(
        "SELECT count(*) AS n FROM messages WHERE direction = 'in' AND kind = 'text' AND status <> 'read'",
      )?.n ?? 0
    );
  }
}

function checkPreKeyKind(kind: PreKeyKind): void {
  if (!PREKEY_KINDS.includes(kind)) throw new StoreError("INVALID_ARGUMENT", "unknown prekey kind");
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}
