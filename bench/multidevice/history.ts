// Part 2: history transfer to a newly linked device. The primary holds N messages in one chat
// (written straight into its store in one transaction: half incoming, half outgoing and sent),
// links a new device, and sendHistory() exports, encrypts, uploads and sends the bundle's key;
// the new device downloads, decrypts and imports it (until its "history-imported" event).
import { performance } from "node:perf_hooks";
import { directChatId, type MediaDescriptor, type ParleyClient, sendHistory } from "@parley/client";
import { type ClientFactory, linkCompanion, registerPrimary } from "./accounts.ts";

export interface HistoryResult {
  messages: number;
  seedMs: number;
  linkMs: number;
  /** sendHistory(): export + encrypt + upload + E2E message to the new device, until its ack. */
  sendMs: number;
  /** sendHistory() resolved → "history" event on the new device (negative: the key arrived before the ack). */
  keyArrivalMs: number;
  /** "history" event → "history-imported": download + verify + decrypt + parse + insert. */
  importMs: number;
  /** sendHistory() start → "history-imported". */
  totalMs: number;
  bundleBytes: number;
  exported: number;
  imported: number;
  countOnNewDevice: number;
}

const PEER = "history-peer";
const IMPORT_TIMEOUT_MS = 150_000;

export async function runHistory(
  f: ClientFactory,
  messages: number,
  log: (msg: string) => void,
  track: (client: ParleyClient) => void,
): Promise<HistoryResult> {
  const primary = await registerPrimary(f, "history_owner");
  track(primary);
  const me = primary.accountName!;
  const chatId = directChatId(PEER);
  log(`history: writing ${messages.toLocaleString("en-US")} messages into the primary's store`);
  const seedStart = performance.now();
  const base = Date.now() - messages * 1000;
  primary.store.transaction(() => {
    primary.store.ensureChat(chatId);
    for (let i = 0; i < messages; i++) {
      const id = i.toString(16).padStart(16, "0");
      const sentAt = base + i * 1000;
      const body = `history message ${i}: ${"lorem ipsum dolor sit amet ".repeat(1 + (i % 3))}`;
      if (i % 2 === 0) {
        primary.store.insertIncoming({
          id,
          chatId,
          sender: PEER,
          senderDevice: 1,
          body,
          sentAt,
          serverAt: sentAt + 200,
          receivedAt: sentAt + 300,
        });
      } else {
        primary.store.queueOutgoing({ id, chatId, body, sentAt, sender: me, senderDevice: 1 });
        primary.store.markSent(id, sentAt + 200);
      }
    }
  });
  const seedMs = performance.now() - seedStart;

  const linkStart = performance.now();
  const { companion, device } = await linkCompanion(f, primary);
  track(companion);
  const linkMs = performance.now() - linkStart;

  let keyArrivedAt = 0;
  let bundle: MediaDescriptor | undefined;
  companion.once("history", (e) => {
    keyArrivedAt = performance.now();
    bundle = e.media;
  });
  // A failed import surfaces as an "error" event (and no "history-imported"): report it with the timeout.
  const errors: string[] = [];
  const offError = companion.on("error", (e) => errors.push(e.error.message));
  const imported = new Promise<{ count: number; at: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no history-imported within ${IMPORT_TIMEOUT_MS} ms; errors: ${errors.join("; ")}`)),
      IMPORT_TIMEOUT_MS,
    );
    companion.once("history-imported", (e) => {
      clearTimeout(timer);
      resolve({ count: e.count, at: performance.now() });
    });
  });
  log(`history: linked device ${device}; sendHistory → import`);
  const sendStart = performance.now();
  // maxPerChat: the default (10,000) would cut the bundle; the bench transfers the whole chat.
  const exported = await sendHistory(primary, device, { maxPerChat: messages });
  const sentAt = performance.now();
  const done = await imported.finally(offError);
  if (!bundle) throw new Error("history imported without a history event");
  return {
    messages,
    seedMs,
    linkMs,
    sendMs: sentAt - sendStart,
    keyArrivalMs: keyArrivedAt - sentAt,
    importMs: done.at - keyArrivedAt,
    totalMs: done.at - sendStart,
    bundleBytes: bundle.size,
    exported,
    imported: done.count,
    countOnNewDevice: companion.store.countMessages(chatId),
  };
}
