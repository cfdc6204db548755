// Queue rows as SQLite returns them, and their conversion to the storage interface's types:
// shared by the single-file store (sqlite-storage.ts) and the per-worker queue shards (queue-shard.ts).
import type { AckedEntry, QueueEntry } from "../types.ts";

export interface QueueRow {
  seq: number;
  account_id: string;
  device_id: number;
  envelope: Buffer;
  sender_account_id: string | null;
  sender_device_id: number | null;
  message_id: string | null;
  created_at: number;
}

/** What an ack's DELETE … RETURNING gives back. */
export interface AckRow {
  seq: number;
  sender_account_id: string | null;
  sender_device_id: number | null;
  message_id: string | null;
  /** 1 when the entry referenced a shared payload (a group message) */
  shared: number;
}

/** Plain Uint8Array views (no copy), so callers see the same type from every implementation. */
export function bytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export function toQueueEntry(row: QueueRow): QueueEntry {
  return {
    seq: row.seq,
    accountId: row.account_id,
    deviceId: row.device_id,
    envelope: bytes(row.envelope),
    senderAccountId: row.sender_account_id,
    senderDeviceId: row.sender_device_id,
    messageId: row.message_id,
    createdAt: row.created_at,
  };
}

export function toAcked(row: AckRow): AckedEntry {
  return {
    seq: row.seq,
    senderAccountId: row.sender_account_id,
    senderDeviceId: row.sender_device_id,
    messageId: row.message_id,
    shared: row.shared === 1,
  };
}
