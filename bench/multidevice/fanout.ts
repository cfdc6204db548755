// Part 1: one text message from a sender with S devices to a recipient with R devices. The sending
// device encrypts once per recipient device and once per other own device (sent-message sync), in
// one `message` stanza. Measured: the first message (sessions set up: PreKeySignalMessages, bundle
// fetches), then, after every device of both accounts has sent once (so every session is
// acknowledged both ways), a steady state of sequential messages from the sender's primary.
import { performance } from "node:perf_hooks";
import type { ParleyClient } from "@parley/client";
import type { Account } from "./accounts.ts";
import type { Arrivals } from "./arrivals.ts";
import { type Summary, summarize } from "./stats.ts";
import type { WireMeter } from "./wire-meter.ts";

const TEXT = "The quick brown fox jumps over the lazy dog; see you at 7 at the usual place?"; // 77 bytes
const TIMEOUT_MS = 30_000;

export interface MessageSample {
  /** queueText → server ack (✓) at the sender's connection. */
  tickMs: number;
  /** The ✓✓ receipt was processed before the server's ack arrived. */
  receiptBeforeAck: boolean;
  /** queueText → the message is stored on every device of the recipient. */
  recipientsMs: number;
  /** queueText → stored on every recipient device and every other device of the sender. */
  allDevicesMs: number;
  /** queueText → first delivery receipt (✓✓) back at the sender; NaN if none came. */
  receiptMs: number;
  stanzaBytes: number;
  ciphertexts: number;
  ciphertextBytes: number;
  preKeyMessages: number;
  /** Bytes of the `delivery` stanzas the server pushed to all target devices. */
  deliveryBytes: number;
}

export interface FanoutResult {
  label: string;
  senderDevices: number;
  recipientDevices: number;
  textBytes: number;
  first: MessageSample;
  warmupMessages: number;
  steady: {
    messages: number;
    tickMs: Summary;
    recipientsMs: Summary;
    allDevicesMs: Summary;
    receiptMs: Summary;
    stanzaBytes: Summary;
    ciphertextBytes: Summary;
    deliveryBytes: Summary;
    ciphertexts: number;
    /** Messages whose ✓✓ receipt arrived before the server's ack (✓). */
    receiptBeforeAck: number;
    /** PreKeySignalMessages seen in steady state (0 when every session is acknowledged). */
    preKeyMessages: number;
  };
}

interface Context {
  arrivals: Arrivals;
  meter: WireMeter;
}

/** Sends one message from `from` (a device of `sender`) to `recipient` and waits until every other device has it. */
async function measureOne(
  ctx: Context,
  from: ParleyClient,
  sender: Account,
  recipient: Account,
  text: string,
  receiptWaitMs: number,
): Promise<MessageSample> {
  const ownOthers = sender.devices.filter((d) => d !== from);
  const t0 = performance.now();
  const id = from.queueText(recipient.name, text);
  const [recipientsAt, allAt] = await Promise.all([
    ctx.arrivals.waitAll(id, recipient.devices, TIMEOUT_MS),
    ctx.arrivals.waitAll(id, [...recipient.devices, ...ownOthers], TIMEOUT_MS),
    // ✓ in the UI: reaching at least "sent" (the ✓✓ receipt can overtake the server's ack, see below).
    from.waitForStatus(id, "sent", TIMEOUT_MS),
  ]);
  // The server's ack as it reached the connection (the client's "sent" event is skipped when the
  // ✓✓ receipt overtakes the ack: the status never goes back from delivered to sent).
  const ack = ctx.meter.ackedAt.get(id);
  if (!ack || ack.error) throw new Error(`message ${id}: ${ack ? `refused: ${ack.error}` : "no ack seen"}`);
  // Waited for so that each message is complete before the next one starts (unloaded latency).
  const receiptAt = await ctx.arrivals.waitStatus(id, "delivered", receiptWaitMs);
  const wire = ctx.meter.sent.get(id);
  if (!wire) throw new Error(`message ${id} was not seen on the sender's connection`);
  return {
    tickMs: ack.at - t0,
    receiptBeforeAck: receiptAt !== undefined && receiptAt < ack.at,
    recipientsMs: recipientsAt - t0,
    allDevicesMs: allAt - t0,
    receiptMs: receiptAt === undefined ? Number.NaN : receiptAt - t0,
    ...wire,
    deliveryBytes: ctx.meter.delivered.get(id)?.bytes ?? 0,
  };
}

export async function runFanout(
  ctx: Context,
  label: string,
  sender: Account,
  recipient: Account,
  steadyMessages: number,
  log: (msg: string) => void,
): Promise<FanoutResult> {
  const primary = sender.devices[0]!;
  ctx.arrivals.watch([...sender.devices, ...recipient.devices]);
  try {
    log(`${label}: first message (session setup with ${recipient.devices.length + sender.devices.length - 1} devices)`);
    const first = await measureOne(ctx, primary, sender, recipient, TEXT, 10_000);
    // If no ✓✓ came for the first message, do not wait for them any more (it would only add timeouts).
    const receiptWaitMs = Number.isNaN(first.receiptMs) ? 0 : 10_000;
    // Every device sends once, the recipient's first: afterwards each pair of devices has
    // exchanged messages both ways, so no session still sends PreKeySignalMessages.
    let warmupMessages = 0;
    for (const d of recipient.devices) {
      await measureOne(ctx, d, recipient, sender, `warm-up from ${recipient.name}.${d.deviceId}`, receiptWaitMs);
      warmupMessages++;
    }
    for (const d of sender.devices) {
      await measureOne(ctx, d, sender, recipient, `warm-up from ${sender.name}.${d.deviceId}`, receiptWaitMs);
      warmupMessages++;
    }
    log(`${label}: ${warmupMessages} warm-up messages done; ${steadyMessages} steady-state messages`);
    const samples: MessageSample[] = [];
    for (let i = 0; i < steadyMessages; i++)
      samples.push(await measureOne(ctx, primary, sender, recipient, TEXT, receiptWaitMs));
    const pick = (f: (s: MessageSample) => number) => summarize(samples.map(f));
    return {
      label,
      senderDevices: sender.devices.length,
      recipientDevices: recipient.devices.length,
      textBytes: new TextEncoder().encode(TEXT).length,
      first,
      warmupMessages,
      steady: {
        messages: samples.length,
        tickMs: pick((s) => s.tickMs),
        recipientsMs: pick((s) => s.recipientsMs),
        allDevicesMs: pick((s) => s.allDevicesMs),
        receiptMs: pick((s) => s.receiptMs),
        stanzaBytes: pick((s) => s.stanzaBytes),
        ciphertextBytes: pick((s) => s.ciphertextBytes),
        deliveryBytes: pick((s) => s.deliveryBytes),
        ciphertexts: samples[0]?.ciphertexts ?? 0,
        preKeyMessages: samples.reduce((n, s) => n + s.preKeyMessages, 0),
        receiptBeforeAck: samples.filter((s) => s.receiptBeforeAck).length,
      },
    };
  } finally {
    ctx.arrivals.unwatch();
  }
}
