// The load generator of one process: holds many logged-in connections and
// drives "flows" (sender → recipient message streams) over them, checking
// that every message is acked, delivered and receipted exactly once.
//
// Message bodies are random bytes of the size of a real E2E ciphertext (a
// Signal whisper message of a 100-byte text); there are no Signal sessions.
// Message ids encode (run tag, flow, counter), so every ack / delivery /
// receipt maps to its message with two array lookups and no string keys.
import { randomBytes } from "node:crypto";
import type { Stanza } from "@parley/wire";
import { accountKeyPair, type LoadAccount, registerAccounts } from "./accounts.ts";
import { type LoadConnection, LoadError, mapLimit, openLoadConnection } from "./connection.ts";
import type { HistogramJSON } from "./histogram.ts";
import { Flow as FlowOf, TrafficRun } from "./traffic.ts";

/** Bytes of a Signal whisper message carrying a 100-byte text (measured with libsignal on this machine: ~201 B). */
export const E2E_TEXT_CIPHERTEXT_BYTES = 201;

interface Client {
  account: LoadAccount;
  conn: LoadConnection | undefined;
  queueEmpty: boolean;
}

type Flow = FlowOf<Client>;

/** A traffic phase's run; the tag (16 bits) goes into every message id, so a late event of an earlier run is recognized. */
class Run extends TrafficRun<Client> {
  readonly tag = (Math.random() * 0xffff) | 0;
}

export interface Counters {
  sent: number;
  acked: number;
  delivered: number;
  receipted: number;
}

export interface TrafficReport {
  flows: number;
  totals: Counters;
  /** Events whose time fell inside the measurement window. */
  window: Counters & { ms: number };
  /** Events seen twice (must be 0). */
  duplicates: number;
  /** Acks / deliveries / receipts that arrived on the wrong connection or from the wrong sender (must be 0). */
  misrouted: number;
  /** Deliveries / receipts of another run (left in queues by an earlier, interrupted run). */
  stale: number;
  ackErrors: number;
  firstError?: string;
  /** Messages sent but missing an ack / delivery / receipt at the end. */
  missing: { ack: number; delivery: number; receipt: number };
  /** Paced runs: sends skipped because the flow already had its maximum in flight. */
  pacedSkipped: number;
  connectionsLost: number;
  oneWay: HistogramJSON;
  receiptRtt: HistogramJSON;
  firstAckAt: number;
  lastAckAt: number;
  lastDeliveryAt: number;
  startedAt: number;
}

export interface ConnectReport {
  connected: number;
  ms: number;
  /** Logins that used the one-round-trip IK handshake. */
  ik: number;
  /** Queue entries already waiting at login (left by an earlier run). */
  queued: number;
}

export interface TrafficOptions {
  /** Pairs of user names (both must be connected through this generator). */
  flows: readonly { from: string; to: string }[];
  mode: "saturate" | "paced";
  /** paced: messages per second over all flows of this generator. */
  ratePerSec?: number;
  maxInFlight: number;
  warmupMs: number;
  measureMs: number;
  /** How long to wait, after sending stops, for outstanding receipts. */
  settleMs?: number;
  bodyBytes?: number;
}

export interface StoreOptions {
  senders: readonly string[];
  recipient: LoadAccount;
  messages: number;
  /** Unacknowledged messages per sender. */
  window: number;
  bodyBytes?: number;
}

export interface StoreReport {
  messages: number;
  acked: number;
  ms: number;
  acksPerSec: number;
  ackErrors: number;
  firstError?: string;
}

export interface DrainReport {
  messages: number;
  delivered: number;
  loginMs: number;
  /** From the start of the recipient's connect to the last message received. */
  drainMs: number;
  queueEmptySeen: boolean;
  receipted: number;
  /** From the start of the connect until every sender had its delivered receipt. */
  receiptsMs: number;
  duplicates: number;
  misrouted: number;
  missing: { ack: number; delivery: number; receipt: number };
}

const seconds = () => Math.floor(Date.now() / 1000);

export class LoadGenerator {
  private readonly clients = new Map<string, Client>();
  private run: Run | undefined;
  private stale = 0;
  /** Random bytes that message bodies are sliced from (pre-encrypted-size payloads, not real ciphertext). */
  private readonly bodyPool = randomBytes(64 * 1024);
  private bodyOffset = 0;

  constructor(
    readonly url: string,
    private serverKey?: Uint8Array,
  ) {}

  get connectedCount(): number {
    let n = 0;
    for (const c of this.clients.values()) if (c.conn && !c.conn.closed) n++;
    return n;
  }

  async register(names: readonly string[], localAddresses: readonly string[], concurrency = 32) {
    const r = await registerAccounts({
      url: this.url,
      names,
      localAddresses,
      concurrency,
      ...(this.serverKey ? { serverKey: this.serverKey } : {}),
    });
    this.serverKey ??= r.serverKey;
    return r;
  }

  /** Logs every account in (IK with the known server key), spreading source addresses. */
  async connectAll(
    accounts: readonly LoadAccount[],
    localAddresses: readonly string[],
    concurrency = 64,
  ): Promise<ConnectReport> {
    const started = performance.now();
    let ik = 0;
    let queued = 0;
    await mapLimit(accounts, concurrency, async (account, i) => {
      const client = this.client(account);
      const address = localAddresses.length > 0 ? localAddresses[i % localAddresses.length] : undefined;
      const opened = await this.login(client, address);
      if (opened.pattern === "IK") ik++;
      queued += opened.queueCount;
    });
    return { connected: accounts.length, ms: performance.now() - started, ik, queued };
  }

  private client(account: LoadAccount): Client {
    let c = this.clients.get(account.user);
    if (!c) {
      c = { account, conn: undefined, queueEmpty: false };
      this.clients.set(account.user, c);
    }
    return c;
  }

  private async login(client: Client, localAddress?: string) {
    const opened = await openLoadConnection({
      url: this.url,
      keyPair: accountKeyPair(client.account),
      user: client.account.user,
      device: client.account.device,
      ...(this.serverKey ? { serverKey: this.serverKey } : {}),
      ...(localAddress ? { localAddress } : {}),
    });
    this.serverKey ??= opened.serverKey;
    client.conn = opened.conn;
    client.queueEmpty = false;
    opened.conn.start(
      (s) => this.onStanza(client, s),
      () => {
        if (this.run) {
          this.run.connectionsLost++;
          this.run.onProgress();
        }
      },
    );
    return opened;
  }

  private connected(user: string): Client {
    const c = this.clients.get(user);
    if (!c?.conn || c.conn.closed) throw new LoadError("NOT_CONNECTED", `${user} is not connected in this generator`);
    return c;
  }

  // ------------------------------------------------------------ stanzas

  private onStanza(client: Client, s: Stanza): void {
    switch (s.kind) {
      case "ack":
        this.onAck(client, s.id, s.error ? `${s.error.code}: ${s.error.text ?? ""}` : undefined);
        return;
      case "delivery":
        client.conn!.devack(s.seq);
        this.onDelivery(client, s.id, s.from.user);
        return;
      case "receipt":
        if (s.seq !== undefined) client.conn!.devackLater(s.seq);
        if (s.type === "delivered") for (const id of s.ids) this.onReceipt(client, id);
        return;
      case "notification":
        if (s.event.type === "queue-empty") {
          client.queueEmpty = true;
          this.run?.onProgress();
        } else if (s.id > 0) client.conn!.devackLater(s.id); // queued notifications (e.g. prekeys-low) are acked like entries
        return;
      default:
        return; // presence and the like: not part of the load
    }
  }

  /** The flow and counter of a message id of the current run, or undefined (stale / foreign id). */
  private locate(id: Uint8Array): { flow: Flow; c: number } | undefined {
    const run = this.run;
    if (!run || id.length !== 8) return undefined;
    const dv = new DataView(id.buffer, id.byteOffset, 8);
    if (dv.getUint16(0) !== run.tag) return undefined;
    const flow = run.flows[dv.getUint16(2)];
    const c = dv.getUint32(4);
    if (!flow || c >= flow.sent) return undefined;
    return { flow, c };
  }

  private onAck(client: Client, id: Uint8Array, error: string | undefined): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    if (error !== undefined) run.error(error);
    // an error ack frees the slot whatever the run waits for: no delivery or receipt will come
    run.acked(at.flow, at.c, at.flow.sender === client, run.releaseOn === "ack" || error !== undefined);
  }

  private onDelivery(client: Client, id: Uint8Array, from: string): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    run.delivered(at.flow, at.c, at.flow.recipient === client && at.flow.sender.account.user === from);
  }

  private onReceipt(client: Client, id: Uint8Array): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    run.receipted(at.flow, at.c, at.flow.sender === client);
  }

  private send(run: Run, flow: Flow): void {
    const conn = flow.sender.conn;
    if (!conn || conn.closed) {
      run.sending = false;
      return;
    }
    const c = run.sent(flow);
    const id = new Uint8Array(8);
    const dv = new DataView(id.buffer);
    dv.setUint16(0, run.tag);
    dv.setUint16(2, flow.index);
    dv.setUint32(4, c);
    const recipient = flow.recipient.account;
    conn.send({
      kind: "message",
      id,
      to: recipient.user,
      timestamp: seconds(),
      enc: [{ to: { user: recipient.user, device: recipient.device }, type: "msg", body: this.body() }],
    });
  }

  private bodyBytes = E2E_TEXT_CIPHERTEXT_BYTES;
  private body(): Uint8Array {
    const n = this.bodyBytes;
    if (this.bodyOffset + n > this.bodyPool.length) this.bodyOffset = 0;
    const b = this.bodyPool.subarray(this.bodyOffset, this.bodyOffset + n);
    this.bodyOffset += 61; // overlapping windows at an odd stride: bodies differ without new random bytes
    return b;
  }

  // ------------------------------------------------------------- phases

  /**
   * Online pairs: warm-up, then a measurement window, then sending stops and outstanding
   * receipts are awaited. Saturating: every flow keeps `maxInFlight` messages between send and
   * receipt. Paced: a 2 ms timer sends `ratePerSec` in total, round-robin over the flows.
   */
  async traffic(options: TrafficOptions): Promise<TrafficReport> {
    this.bodyBytes = options.bodyBytes ?? E2E_TEXT_CIPHERTEXT_BYTES;
    this.stale = 0;
    const flows = options.flows.map((f, i) => new FlowOf(i, this.connected(f.from), this.connected(f.to)));
    if (flows.length > 0xffff) throw new LoadError("TOO_MANY_FLOWS", "at most 65,535 flows per generator process");
    const run: Run = new Run(flows, "receipt", options.maxInFlight, options.mode === "saturate", (f) =>
      this.send(run, f),
    );
    this.run = run;
    await run.traffic(options, true);
    const report = run.report(this.stale, true);
    this.run = undefined;
    return report;
  }

  /** Offline store: `senders` send `messages` in total to a recipient that is not connected. */
  async offlineStore(options: StoreOptions): Promise<StoreReport> {
    this.bodyBytes = options.bodyBytes ?? E2E_TEXT_CIPHERTEXT_BYTES;
    const recipient = this.client(options.recipient);
    if (recipient.conn && !recipient.conn.closed) throw new LoadError("ONLINE", "the offline recipient is connected");
    const flows = options.senders.map((s, i) => new FlowOf(i, this.connected(s), recipient));
    const run: Run = new Run(flows, "ack", options.window, true, (f) => this.send(run, f));
    this.run = run; // it stays current: the drain phase continues it
    return run.store(options.messages, 120_000);
  }

  /** Offline drain: the recipient logs in; time until every stored message has arrived. */
  async offlineDrain(recipientAccount: LoadAccount, localAddress?: string): Promise<DrainReport> {
    const run = this.run;
    if (run?.releaseOn !== "ack") throw new LoadError("NO_STORE", "run offlineStore first");
    const recipient = this.client(recipientAccount);
    const report = await run.drain(
      async () => {
        await this.login(recipient, localAddress);
      },
      120_000,
      () => recipient.queueEmpty,
    );
    this.run = undefined;
    return report;
  }

  async disconnect(users: readonly string[]): Promise<void> {
    await Promise.all(users.map((u) => this.clients.get(u)?.conn?.close()));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.conn?.close()));
    this.clients.clear();
  }
}
