// The bookkeeping both load generators share (generator.ts for Parley, xmpp-generator.ts for
// XMPP), so the two servers are measured by the same code: flows (sender → recipient message
// streams), the in-flight window and its release, saturating or paced sending, the checks
// (duplicates, misrouting, missing events) and the latency histograms. Each generator only adds its
// protocol: how a message is sent and how an id maps back to (flow, counter).
import type { Counters, DrainReport, StoreReport, TrafficReport } from "./generator.ts";
import { Histogram } from "./histogram.ts";

export const ACKED = 1;
export const DELIVERED = 2;
export const RECEIPTED = 4;

/** One sender → recipient stream; message c's send time and event flags live at index c. */
export class Flow<C> {
  sentAt = new Float64Array(64);
  flags = new Uint8Array(64);
  sent = 0;
  /** Sent and not yet released (released by the receipt, or by the ack in ack-windowed runs). */
  open = 0;
  quota = Number.POSITIVE_INFINITY;
  constructor(
    readonly index: number,
    readonly sender: C,
    readonly recipient: C,
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One phase's flows and counters. `send` sends the flow's next message (it calls `sent`). */
export class TrafficRun<C, F extends Flow<C> = Flow<C>> {
  readonly totals: Counters = { sent: 0, acked: 0, delivered: 0, receipted: 0 };
  readonly inWindow: Counters = { sent: 0, acked: 0, delivered: 0, receipted: 0 };
  readonly oneWay = new Histogram();
  readonly receiptRtt = new Histogram();
  duplicates = 0;
  misrouted = 0;
  /** Error answers from the server (Parley: error acks; XMPP: error messages). */
  errors = 0;
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
  private pacer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly flows: F[],
    /** "receipt": a message stays in flight until its delivered receipt; "ack": until the server ack. */
    readonly releaseOn: "receipt" | "ack",
    readonly maxInFlight: number,
    /** Saturating runs send again as soon as a slot frees up; paced runs are driven by a timer. */
    readonly refill: boolean,
    private readonly send: (flow: F) => void,
  ) {}

  inside(t: number): boolean {
    return t >= this.windowStart && t < this.windowEnd;
  }

  /** Reserves the flow's next counter and counts the send; returns the counter for the id. */
  sent(flow: F): number {
    const c = flow.reserve();
    const now = performance.now();
    flow.sentAt[c] = now;
    this.totals.sent++;
    if (this.inside(now)) this.inWindow.sent++;
    return c;
  }

  /** The server acknowledged (stored) message c; `routedOk`: it came on the sender's connection. */
  acked(flow: F, c: number, routedOk: boolean, release = this.releaseOn === "ack"): void {
    const now = this.firstTime(flow, c, ACKED, "acked", routedOk);
    if (now === undefined) return;
    if (this.firstAckAt === 0) this.firstAckAt = now;
    this.lastAckAt = now;
    if (release) this.release(flow);
    this.onProgress();
  }

  /** Message c arrived; `routedOk`: at the flow's recipient, from the flow's sender. */
  delivered(flow: F, c: number, routedOk: boolean): void {
    const now = this.firstTime(flow, c, DELIVERED, "delivered", routedOk);
    if (now === undefined) return;
    this.lastDeliveryAt = now;
    if (this.inside(now)) this.oneWay.record(now - flow.sentAt[c]!);
    this.onProgress();
  }

  /** Message c's delivered receipt arrived; `routedOk`: at the flow's sender. */
  receipted(flow: F, c: number, routedOk: boolean): void {
    const now = this.firstTime(flow, c, RECEIPTED, "receipted", routedOk);
    if (now === undefined) return;
    if (this.inside(now)) this.receiptRtt.record(now - flow.sentAt[c]!);
    if (this.releaseOn === "receipt") this.release(flow);
    this.onProgress();
  }

  /**
   * Counts an event of message c (checking where it came from): its time, or undefined for a
   * duplicate, which is counted as such and nothing else.
   */
  private firstTime(flow: F, c: number, flag: number, counter: keyof Counters, routedOk: boolean): number | undefined {
    if (!routedOk) this.misrouted++;
    if (flow.flags[c]! & flag) {
      this.duplicates++;
      return undefined;
    }
    flow.flags[c]! |= flag;
    const now = performance.now();
    this.totals[counter]++;
    if (this.inside(now)) this.inWindow[counter]++;
    return now;
  }

  error(text: string): void {
    this.errors++;
    this.firstError ??= text;
  }

  release(flow: F): void {
    flow.open--;
    if (this.refill && this.sending) while (flow.open < this.maxInFlight && flow.sent < flow.quota) this.send(flow);
  }

  /** Fills every flow's window (saturating, and the offline store). */
  fill(): void {
    for (const f of this.flows) while (f.open < this.maxInFlight && f.sent < f.quota) this.send(f);
  }

  /**
   * Starts sending: saturating keeps every flow's window full; paced, a 2 ms timer sends
   * `ratePerSec` in total, round-robin over the flows whose window has room.
   */
  private start(mode: "saturate" | "paced", ratePerSec = 0): void {
    if (mode === "saturate") {
      this.fill();
      return;
    }
    const flows = this.flows;
    let due = 0;
    let cursor = 0;
    let last = performance.now();
    this.pacer = setInterval(() => {
      const now = performance.now();
      due += (ratePerSec * (now - last)) / 1000;
      last = now;
      let checked = 0;
      while (due >= 1 && checked < flows.length) {
        const f = flows[cursor]!;
        cursor = (cursor + 1) % flows.length;
        if (f.open < this.maxInFlight) {
          this.send(f);
          due--;
          checked = 0;
        } else checked++;
      }
      if (due >= 1) {
        // every flow is full: the server is not keeping up with this rate; do not burst later
        this.pacedSkipped += Math.floor(due);
        due -= Math.floor(due);
      }
    }, 2);
  }

  private stop(): void {
    this.sending = false;
    if (this.pacer) clearInterval(this.pacer);
    this.pacer = undefined;
  }

  /** Resolves true once `done()` holds (checked on every counter move), false after the timeout. */
  waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.onProgress = () => {};
        resolve(false);
      }, timeoutMs);
      // A caller that gave up (a failed test) must not be kept alive by this timer.
      timer.unref();
      this.onProgress = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.onProgress = () => {};
        resolve(true);
      };
    });
  }

  /**
   * One traffic phase: warm-up, the measurement window, then sending stops and the outstanding
   * receipts are awaited (or a connection was lost). `awaitAcks`: the outstanding acks too; a
   * server that pushes a message at commit and acks it after the fsync can deliver and receipt a
   * message before its sender has the ack.
   */
  async traffic(
    options: {
      mode: "saturate" | "paced";
      ratePerSec?: number;
      warmupMs: number;
      measureMs: number;
      settleMs?: number;
    },
    awaitAcks: boolean,
  ): Promise<void> {
    this.windowStart = this.startedAt + options.warmupMs;
    this.windowEnd = this.windowStart + options.measureMs;
    this.start(options.mode, options.ratePerSec);
    await sleep(options.warmupMs + options.measureMs);
    this.stop();
    await this.waitFor(
      () =>
        (this.flows.every((f) => f.open === 0) && (!awaitAcks || this.totals.acked >= this.totals.sent)) ||
        this.connectionsLost > 0,
      options.settleMs ?? 15_000,
    );
  }

  /**
   * Offline store: the flows (all to one offline recipient) send `messages` in total, each at most
   * `maxInFlight` unacknowledged; the rate is acks per second. The run stays for the drain.
   */
  async store(messages: number, timeoutMs: number): Promise<StoreReport> {
    const per = Math.floor(messages / this.flows.length);
    this.flows.forEach((f, i) => {
      f.quota = per + (i < messages % this.flows.length ? 1 : 0);
    });
    const started = performance.now();
    this.fill();
    await this.waitFor(() => this.totals.acked >= messages || this.connectionsLost > 0, timeoutMs);
    const ms = this.lastAckAt - started;
    return {
      messages,
      acked: this.totals.acked,
      ms,
      acksPerSec: (this.totals.acked / ms) * 1000,
      ackErrors: this.errors,
      ...(this.firstError !== undefined ? { firstError: this.firstError } : {}),
    };
  }

  /**
   * Offline drain, after `store`: `login` connects the recipient; drain = from the start of the
   * login to the last message received. `queueEmpty` (if the protocol has an end-of-backlog marker)
   * is awaited too.
   */
  async drain(login: () => Promise<void>, timeoutMs: number, queueEmpty?: () => boolean): Promise<DrainReport> {
    const expected = this.totals.sent;
    const started = performance.now();
    await login();
    const loginMs = performance.now() - started;
    await this.waitFor(() => this.totals.delivered >= expected || this.connectionsLost > 0, timeoutMs);
    const drainMs = this.lastDeliveryAt - started;
    await this.waitFor(() => this.totals.receipted >= expected || this.connectionsLost > 0, timeoutMs);
    const receiptsMs = performance.now() - started;
    if (queueEmpty) await this.waitFor(queueEmpty, 5_000);
    return {
      messages: expected,
      delivered: this.totals.delivered,
      loginMs,
      drainMs,
      // without a marker (XMPP), reported true when everything arrived
      queueEmptySeen: queueEmpty ? queueEmpty() : this.totals.delivered >= expected,
      receipted: this.totals.receipted,
      receiptsMs,
      duplicates: this.duplicates,
      misrouted: this.misrouted,
      missing: this.missing(true),
    };
  }

  /** Messages sent but never acked (if `countAcks`), delivered or receipted. */
  missing(countAcks: boolean): { ack: number; delivery: number; receipt: number } {
    const missing = { ack: 0, delivery: 0, receipt: 0 };
    for (const f of this.flows) {
      for (let c = 0; c < f.sent; c++) {
        const fl = f.flags[c]!;
        if (countAcks && !(fl & ACKED)) missing.ack++;
        if (!(fl & DELIVERED)) missing.delivery++;
        if (!(fl & RECEIPTED)) missing.receipt++;
      }
    }
    return missing;
  }

  /** `countAcks`: an ack is expected for every message (Parley always; XMPP only with stream management). */
  report(stale: number, countAcks: boolean): TrafficReport {
    const windowMs = Number.isFinite(this.windowEnd) ? this.windowEnd - this.windowStart : 0;
    return {
      flows: this.flows.length,
      totals: { ...this.totals },
      window: { ...this.inWindow, ms: windowMs },
      duplicates: this.duplicates,
      misrouted: this.misrouted,
      stale,
      ackErrors: this.errors,
      ...(this.firstError !== undefined ? { firstError: this.firstError } : {}),
      missing: this.missing(countAcks),
      pacedSkipped: this.pacedSkipped,
      connectionsLost: this.connectionsLost,
      oneWay: this.oneWay.toJSON(),
      receiptRtt: this.receiptRtt.toJSON(),
      firstAckAt: this.firstAckAt === 0 ? 0 : this.firstAckAt - this.startedAt,
      lastAckAt: this.lastAckAt - this.startedAt,
      lastDeliveryAt: this.lastDeliveryAt - this.startedAt,
      startedAt: this.startedAt,
    };
  }
}
