// Sending and receiving files with a ParleyClient in Node: the file is
// encrypted while it streams to the content store; only the descriptor (pointer,
// media key, hashes) travels, end-to-end encrypted, in the message.
import { dirname } from "node:path";
import type { ParleyClient } from "./client.ts";
import { ClientError } from "./client.ts";
import {
  type DownloadedMedia,
  downloadMedia,
  type MediaDescriptor,
  type MediaProgressCallback,
  mediaBaseUrl,
  mediaDir,
  mediaUploadCredentials,
  uploadMediaFile,
} from "./media/index.node.ts";

export interface SendFileOptions {
  caption?: string;
  onProgress?: MediaProgressCallback;
  signal?: AbortSignal;
}

/** Uploads `path` (encrypted) and queues the message; resolves with the message id once it is queued. */
export async function sendFile(
  client: ParleyClient,
  to: string,
  path: string,
  options: SendFileOptions = {},
): Promise<string> {
  const server = client.store.getMeta("serverUrl");
  if (!server) throw new ClientError("NOT_REGISTERED", "register this profile first");
  const descriptor = await uploadMediaFile(path, {
    baseUrl: mediaBaseUrl(server),
    credentials: mediaUploadCredentials(client.store),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return client.queueMedia(to, descriptor, options.caption);
}

/** Downloads, verifies and decrypts the attachment of message (sender, id) into the profile's media folder. */
export async function downloadAttachment(
  client: ParleyClient,
  sender: string,
  id: string,
  options: { onProgress?: MediaProgressCallback; destDir?: string } = {},
): Promise<DownloadedMedia> {
  const descriptor = client.attachment(sender, id);
  if (!descriptor) throw new ClientError("NOT_FOUND", `message ${id} from ${sender} has no attachment`);
  return downloadMedia(descriptor, {
    destDir: options.destDir ?? mediaDir(dirname(client.store.path)),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** Forwards a received (or sent) attachment to `to`: the same blob, no second upload. */
export function forwardAttachment(
  client: ParleyClient,
  sender: string,
  id: string,
  to: string,
  caption?: string,
): string {
  const descriptor = client.attachment(sender, id);
  if (!descriptor) throw new ClientError("NOT_FOUND", `message ${id} from ${sender} has no attachment`);
  return client.queueMedia(to, descriptor, caption);
}

// ------------------------------------------------------------ history transfer

/** One message of a history bundle (JSON lines). */
interface HistoryRecord {
  c: string; // chat id
  i: string; // message id
  f: string; // sender
  d: number; // sender device
  b: string | null; // body
  k: string; // kind
  s: number; // sentAt
  v: number | null; // serverAt
  st: string; // status
  dir: "in" | "out";
}

export interface SendHistoryOptions {
  /** Most recent messages per chat to transfer (default 10,000). */
  maxPerChat?: number;
  /** Only messages newer than this many days (default: no limit). */
  maxAgeDays?: number;
}

/**
 * Primary: bundles recent history (oldest first), encrypts and uploads it through the content store,
 * and sends the key to our new device `device` end to end. Resolves with the number of messages.
 */
export async function sendHistory(
  client: ParleyClient,
  device: number,
  options: SendHistoryOptions = {},
): Promise<number> {
  const { mkdtempSync, rmSync, createWriteStream } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const maxPerChat = options.maxPerChat ?? 10_000;
  const since = options.maxAgeDays !== undefined ? Date.now() - options.maxAgeDays * 86_400_000 : 0;
  const records: HistoryRecord[] = [];
  for (const chat of client.store.listChats()) {
    // Pages come newest first; the chat's records are reversed below to oldest first, which keeps
    // the store's tie order (same timestamp → insertion order) on the new device.
    const chatRecords: HistoryRecord[] = [];
    let cursor: string | null = null;
    let taken = 0;
    do {
      const page: ReturnType<typeof client.store.history> = client.store.history(chat.id, {
        before: cursor,
        limit: 1000,
      });
      for (const m of page.messages) {
        if (taken >= maxPerChat || m.sortAt < since || m.kind !== "text") continue;
        taken++;
        chatRecords.push({
          c: m.chatId,
          i: m.id,
          f: m.sender,
          d: m.senderDevice,
          b: m.body,
          k: m.kind,
          s: m.sentAt,
          v: m.serverAt,
          st: m.status,
          dir: m.direction,
        });
      }
      cursor = page.nextCursor;
    } while (cursor !== null && taken < maxPerChat);
    records.push(...chatRecords.reverse());
  }
  const dir = mkdtempSync(join(tmpdir(), "parley-history-"));
  try {
    const file = join(dir, "history.jsonl");
    const out = createWriteStream(file);
    for (const r of records)
      if (!out.write(`${JSON.stringify(r)}\n`)) await new Promise<void>((res) => out.once("drain", () => res()));
    await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
    const server = client.store.getMeta("serverUrl")!;
    const descriptor = await uploadMediaFile(file, {
      baseUrl: mediaBaseUrl(server),
      credentials: mediaUploadCredentials(client.store),
      mime: "application/x-parley-history",
      fileName: "history.jsonl",
    });
    await client.sendHistoryBundle(device, descriptor);
    return records.length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Companion: downloads, verifies and imports a history bundle; idempotent (re-importing adds nothing). */
export async function importHistory(client: ParleyClient, media: MediaDescriptor): Promise<number> {
  const { mkdtempSync, rmSync, createReadStream } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { createInterface } = await import("node:readline");
  const dir = mkdtempSync(join(tmpdir(), "parley-history-in-"));
  const me = client.accountName!;
  let count = 0;
  try {
    const saved = await downloadMedia(media, { destDir: dir, fileName: "history.jsonl" });
    const lines = createInterface({ input: createReadStream(saved.path), crlfDelay: Number.POSITIVE_INFINITY });
    let batch: HistoryRecord[] = [];
    const flush = () => {
      const rows = batch;
      batch = [];
      client.store.transaction(() => {
        // Once per chat per batch: ensureChat reads the chat's counters, which grows with its size.
        for (const chat of new Set(rows.map((r) => r.c))) client.store.ensureChat(chat);
        for (const r of rows) {
          if (r.dir === "out" && r.f === me) {
            const ins = client.store.queueOutgoing({
              id: r.i,
              chatId: r.c,
              body: r.b ?? "",
              sentAt: r.s,
              senderDevice: r.d,
            });
            if (ins.isNew) {
              client.store.markSent(r.i, r.v ?? r.s);
              if (r.st === "delivered" || r.st === "read") client.store.setStatus(me, r.i, r.st);
              count++;
            }
          } else {
            const ins = client.store.insertIncoming({
              id: r.i,
              chatId: r.c,
              sender: r.f,
              senderDevice: r.d,
              body: r.b ?? "",
              sentAt: r.s,
              serverAt: r.v,
            });
            if (ins.isNew) {
              if (r.st === "read") client.store.setStatus(r.f, r.i, "read");
              count++;
            }
          }
        }
      });
    };
    for await (const line of lines) {
      if (line.trim() === "") continue;
      let r: HistoryRecord;
      try {
        r = JSON.parse(line) as HistoryRecord;
      } catch {
        throw new ClientError("BAD_HISTORY", "the history bundle has a malformed line");
      }
      if (typeof r.i !== "string" || typeof r.c !== "string" || typeof r.f !== "string" || typeof r.s !== "number") {
        throw new ClientError("BAD_HISTORY", "the history bundle has a malformed record");
      }
      batch.push(r);
      if (batch.length >= 1000) flush();
    }
    flush();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  client.reportHistoryImported(count);
  return count;
}
