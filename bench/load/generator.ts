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
import { Histogram, type HistogramJSON } from "./histogram.ts";

/** Bytes of a Signal whisper message carrying a 100-byte text (measured with libsignal on this machine: ~201 B). */
export const E2E_TEXT_CIPHERTEXT_BYTES = 201;

const ACKED = 1;
const DELIVERED = 2;
const RECEIPTED = 4;

interface Client {
  account: LoadAccount;
  conn: LoadConnection | undefined;
  queueEmpty: boolean;
}

class Flow {
  sentAt = new Float64Array(64);
  flags = new Uint8Array(64);
  sent = 0;
  /** Sent and not yet released (released by the receipt, or by the ack in ack-windowed runs). */
  open = 0;
  quota = Number.POSITIVE_INFINITY;
  constructor(
    readonly index: number,
    readonly sender: Client,
    readonly recipient: Client,
  ) {}

  reserve(): number {
    const c = this.sent;
    if (c >= this.sentAt.length) {
      const at = new Float64Array(this.sentAt.length * 2);
      at.set(this.sentAt);
      this.sentAt = at;
      const flags = new Uint8Array(this.flags.length * 2);
      flags.set(this.flags);
      this.flags = flags;
    }
    this.sent++;
    this.open++;
    return c;
  }
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

class Run {
  readonly tag = (Math.random() * 0xffff) | 0;
  readonly totals: Counters = { sent: 0, acked: 0, delivered: 0, receipted: 0 };
  readonly inWindow: Counters = { sent: 0, acked: 0, delivered: 0, receipted: 0 };
  readonly oneWay = new Histogram();
  readonly receiptRtt = new Histogram();
  duplicates = 0;
  misrouted = 0;
  ackErrors = 0;
  firstError: string | undefined;
  pacedSkipped = 0;
  connectionsLost = 0;
  sending = true;
  windowStart = Number.POSITIVE_INFINITY;
  windowEnd = Number.POSITIVE_INFINITY;
  readonly startedAt = performance.now();
  firstAckAt = 0;
  lastAckAt = 0;
  lastDeliveryAt = 0;
  /** Called whenever a counter moves; the phase that waits for a condition sets it. */
  onProgress: () => void = () => {};

  constructor(
    readonly flows: Flow[],
    /** "receipt": a message stays in flight until its delivered receipt; "ack": until the server ack. */
    readonly releaseOn: "receipt" | "ack",
    readonly maxInFlight: number,
    /** Saturating runs send again as soon as a slot frees up; paced runs are driven by a timer. */
    readonly refill: boolean,
  ) {}

  inside(t: number): boolean {
    return t >= this.windowStart && t < this.windowEnd;
  }

  report(): TrafficReport {
    const missing = { ack: 0, delivery: 0, receipt: 0 };
    for (const f of this.flows) {
      for (let c = 0; c < f.sent; c++) {
        const fl = f.flags[c]!;
        if (!(fl & ACKED)) missing.ack++;
        if (!(fl & DELIVERED)) missing.delivery++;
        if (!(fl & RECEIPTED)) missing.receipt++;
      }
    }
    const windowMs = Number.isFinite(this.windowEnd) ? this.windowEnd - this.windowStart : 0;
    return {
      flows: this.flows.length,
      totals: { ...this.totals },
      window: { ...this.inWindow, ms: windowMs },
      duplicates: this.duplicates,
      misrouted: this.misrouted,
      stale: 0,
      ackErrors: this.ackErrors,
      ...(this.firstError !== undefined ? { firstError: this.firstError } : {}),
      missing,
      pacedSkipped: this.pacedSkipped,
      connectionsLost: this.connectionsLost,
      oneWay: this.oneWay.toJSON(),
      receiptRtt: this.receiptRtt.toJSON(),
      firstAckAt: this.firstAckAt - this.startedAt,
      lastAckAt: this.lastAckAt - this.startedAt,
      lastDeliveryAt: this.lastDeliveryAt - this.startedAt,
      startedAt: this.startedAt,
    };
  }
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    const { flow, c } = at;
    if (flow.sender !== client) run.misrouted++;
    if (error !== undefined) {
      run.ackErrors++;
      run.firstError ??= error;
    }
    if (flow.flags[c]! & ACKED) {
      run.duplicates++;
      return;
    }
    flow.flags[c]! |= ACKED;
    const now = performance.now();
    run.totals.acked++;
    if (run.inside(now)) run.inWindow.acked++;
    if (run.firstAckAt === 0) run.firstAckAt = now;
    run.lastAckAt = now;
    if (run.releaseOn === "ack" || error !== undefined) this.release(run, flow);
    run.onProgress();
  }

  private onDelivery(client: Client, id: Uint8Array, from: string): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    const { flow, c } = at;
    if (flow.recipient !== client || flow.sender.account.user !== from) run.misrouted++;
    if (flow.flags[c]! & DELIVERED) {
      run.duplicates++;
      return;
    }
    flow.flags[c]! |= DELIVERED;
    const now = performance.now();
    run.totals.delivered++;
    run.lastDeliveryAt = now;
    if (run.inside(now)) {
      run.inWindow.delivered++;
      run.oneWay.record(now - flow.sentAt[c]!);
    }
    run.onProgress();
  }

  private onReceipt(client: Client, id: Uint8Array): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    const { flow, c } = at;
    if (flow.sender !== client) run.misrouted++;
    if (flow.flags[c]! & RECEIPTED) {
      run.duplicates++;
      return;
    }
    flow.flags[c]! |= RECEIPTED;
    const now = performance.now();
    run.totals.receipted++;
    if (run.inside(now)) {
      run.inWindow.receipted++;
      run.receiptRtt.record(now - flow.sentAt[c]!);
    }
    if (run.releaseOn === "receipt") this.release(run, flow);
    run.onProgress();
  }

  private release(run: Run, flow: Flow): void {
    flow.open--;
    if (run.refill && run.sending) while (flow.open < run.maxInFlight && flow.sent < flow.quota) this.send(run, flow);
  }

  private send(run: Run, flow: Flow): void {
    const conn = flow.sender.conn;
    if (!conn || conn.closed) {
      run.sending = false;
      return;
    }
    const c = flow.reserve();
    const id = new Uint8Array(8);
    const dv = new DataView(id.buffer);
    dv.setUint16(0, run.tag);
    dv.setUint16(2, flow.index);
    dv.setUint32(4, c);
    const now = performance.now();
    flow.sentAt[c] = now;
    run.totals.sent++;
    if (run.inside(now)) run.inWindow.sent++;
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

  private waitFor(run: Run, done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        run.onProgress = () => {};
        resolve(false);
      }, timeoutMs);
      run.onProgress = () => {
        if (!done()) return;
        clearTimeout(timer);
        run.onProgress = () => {};
        resolve(true);
      };
    });
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
    const flows = options.flows.map((f, i) => new Flow(i, this.connected(f.from), this.connected(f.to)));
    if (flows.length > 0xffff) throw new LoadError("TOO_MANY_FLOWS", "at most 65,535 flows per generator process");
    const run = new Run(flows, "receipt", options.maxInFlight, options.mode === "saturate");
    this.run = run;
    run.windowStart = run.startedAt + options.warmupMs;
    run.windowEnd = run.windowStart + options.measureMs;

    let pacer: NodeJS.Timeout | undefined;
    if (options.mode === "saturate") {
      for (const f of flows) while (f.open < run.maxInFlight) this.send(run, f);
    } else {
      const rate = options.ratePerSec ?? 0;
      let due = 0;
      let cursor = 0;
      let last = performance.now();
      pacer = setInterval(() => {
        const now = performance.now();
        due += (rate * (now - last)) / 1000;
        last = now;
        let checked = 0;
        while (due >= 1 && checked < flows.length) {
          const f = flows[cursor]!;
          cursor = (cursor + 1) % flows.length;
          if (f.open < run.maxInFlight) {
            this.send(run, f);
            due--;
            checked = 0;
          } else checked++;
        }
        if (due >= 1) {
          // every flow is full: the server is not keeping up with this rate; do not burst later
          run.pacedSkipped += Math.floor(due);
          due -= Math.floor(due);
        }
      }, 2);
    }
    await sleep(options.warmupMs + options.measureMs);
    run.sending = false;
    if (pacer) clearInterval(pacer);
    const allReceipted = () => flows.every((f) => f.open === 0) || run.connectionsLost > 0;
    await this.waitFor(run, allReceipted, options.settleMs ?? 15_000);
    const report = run.report();
    report.stale = this.stale;
    this.run = undefined;
    return report;
  }

  /** Offline store: `senders` send `messages` in total to a recipient that is not connected. */
  async offlineStore(options: StoreOptions): Promise<StoreReport> {
    this.bodyBytes = options.bodyBytes ?? E2E_TEXT_CIPHERTEXT_BYTES;
    const recipient = this.client(options.recipient);
    if (recipient.conn && !recipient.conn.closed) throw new LoadError("ONLINE", "the offline recipient is connected");
    const flows = options.senders.map((s, i) => new Flow(i, this.connected(s), recipient));
    const per = Math.floor(options.messages / flows.length);
    flows.forEach((f, i) => {
      f.quota = per + (i < options.messages % flows.length ? 1 : 0);
    });
    const run = new Run(flows, "ack", options.window, true);
    this.run = run;
    const started = performance.now();
    for (const f of flows) while (f.open < run.maxInFlight && f.sent < f.quota) this.send(run, f);
    await this.waitFor(run, () => run.totals.acked >= options.messages || run.connectionsLost > 0, 120_000);
    const ms = run.lastAckAt - started;
    // The run stays current: the drain phase continues it.
    return {
      messages: options.messages,
      acked: run.totals.acked,
      ms,
      acksPerSec: (run.totals.acked / ms) * 1000,
      ackErrors: run.ackErrors,
      ...(run.firstError !== undefined ? { firstError: run.firstError } : {}),
    };
  }

  /** Offline drain: the recipient logs in; time until every stored message has arrived. */
  async offlineDrain(recipientAccount: LoadAccount, localAddress?: string): Promise<DrainReport> {
    const run = this.run;
    if (run?.releaseOn !== "ack") throw new LoadError("NO_STORE", "run offlineStore first");
    const expected = run.totals.sent;
    const recipient = this.client(recipientAccount);
    const started = performance.now();
    await this.login(recipient, localAddress);
    const loginMs = performance.now() - started;
    await this.waitFor(run, () => run.totals.delivered >= expected || run.connectionsLost > 0, 120_000);
    const drainMs = run.lastDeliveryAt - started;
    await this.waitFor(run, () => run.totals.receipted >= expected || run.connectionsLost > 0, 60_000);
    const receiptsMs = performance.now() - started;
    await this.waitFor(run, () => recipient.queueEmpty, 5_000);
    const r = run.report();
    this.run = undefined;
    return {
      messages: expected,
      delivered: run.totals.delivered,
      loginMs,
      drainMs,
      queueEmptySeen: recipient.queueEmpty,
      receipted: run.totals.receipted,
      receiptsMs,
      duplicates: r.duplicates,
      misrouted: r.misrouted,
      missing: r.missing,
    };
  }

  async disconnect(users: readonly string[]): Promise<void> {
    await Promise.all(users.map((u) => this.clients.get(u)?.conn?.close()));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.conn?.close()));
    this.clients.clear();
  }
}
