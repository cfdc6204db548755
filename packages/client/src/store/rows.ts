// Row shapes as SQLite returns them, and their conversion to the public types.
import type {
  Address,
  Chat,
  ChatKind,
  Contact,
  IdentityRecord,
  MessageDirection,
  MessageKind,
  MessageStatus,
  PreKeyEntry,
  PreKeyKind,
  StoredMessage,
  TrustState,
} from "./types.ts";

/** A fresh Uint8Array (not a Buffer view), so callers compare and keep it freely. */
export function bytes(value: Uint8Array): Uint8Array {
  return new Uint8Array(value);
}

export interface MessageRow {
  row_id: number;
  msg_id: string;
  chat_id: string;
  sender: string;
  sender_device: number;
  direction: MessageDirection;
  kind: MessageKind;
  body: string | null;
  sent_at: number;
  server_at: number | null;
  received_at: number | null;
  status: MessageStatus;
  sort_at: number;
}

export const MESSAGE_COLUMNS =
  "m.row_id, m.msg_id, m.chat_id, m.sender, m.sender_device, m.direction, m.kind, m.body, m.sent_at, m.server_at, m.received_at, m.status, m.sort_at";

export function toMessage(r: MessageRow): StoredMessage {
  return {
    rowId: r.row_id,
    id: r.msg_id,
    chatId: r.chat_id,
    sender: r.sender,
    senderDevice: r.sender_device,
    direction: r.direction,
    kind: r.kind,
    body: r.body,
    sentAt: r.sent_at,
    serverAt: r.server_at,
    receivedAt: r.received_at,
    status: r.status,
    sortAt: r.sort_at,
  };
}

export interface IdentityRow {
  name: string;
  device_id: number;
  public_key: Uint8Array;
  trust: TrustState;
  first_seen_at: number;
}

export function toIdentity(r: IdentityRow): IdentityRecord {
  return {
    address: { name: r.name, deviceId: r.device_id },
    publicKey: bytes(r.public_key),
    trust: r.trust,
    firstSeenAt: r.first_seen_at,
  };
}

export interface PreKeyRow {
  kind: PreKeyKind;
  id: number;
  record: Uint8Array;
  used: number;
  created_at: number;
}

export function toPreKey(r: PreKeyRow): PreKeyEntry {
  return { kind: r.kind, id: r.id, record: bytes(r.record), used: r.used === 1, createdAt: r.created_at };
}

export interface ContactRow {
  name: string;
  display_name: string | null;
  added_at: number;
  blocked: number;
}

export function toContact(r: ContactRow): Contact {
  return { name: r.name, displayName: r.display_name, addedAt: r.added_at, blocked: r.blocked === 1 };
}

export interface ChatRow {
  id: string;
  kind: ChatKind;
  title: string | null;
  created_at: number;
  muted: number;
  unread: number;
  last_row: number | null;
  last_at: number | null;
  last_body: string | null;
}

const PREVIEW_CHARS = 100;

export function toChat(r: ChatRow): Chat {
  return {
    id: r.id,
    kind: r.kind,
    title: r.title,
    createdAt: r.created_at,
    muted: r.muted === 1,
    unreadCount: r.unread,
    lastMessageRowId: r.last_row,
    lastMessageAt: r.last_at,
    lastMessagePreview: r.last_body === null ? null : r.last_body.slice(0, PREVIEW_CHARS),
  };
}

/** Chat columns with unread count and newest message computed from messages (never drift). */
export const CHAT_SELECT = `
  SELECT c.id, c.kind, c.title, c.created_at, c.muted,
    (SELECT count(*) FROM messages u
      WHERE u.chat_id = c.id AND u.direction = 'in' AND u.kind = 'text' AND u.status <> 'read') AS unread,
    l.row_id AS last_row, l.sort_at AS last_at, l.body AS last_body
  FROM chats c
  LEFT JOIN messages l ON l.row_id = (
    SELECT x.row_id FROM messages x WHERE x.chat_id = c.id ORDER BY x.sort_at DESC, x.row_id DESC LIMIT 1)`;

export function sameAddress(a: Address, b: Address): boolean {
  return a.name === b.name && a.deviceId === b.deviceId;
}
