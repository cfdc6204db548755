// The XMPP mode of the load generator (one process): many logged-in XMPP
// connections driving "flows" (sender → recipient <message type='chat'> streams
// with 100-byte bodies and XEP-0184 receipt requests; the recipient answers each
// with <received/>). Same phases and reports as the Parley generator
// (generator.ts), so the two servers are measured the same way:
//   - connectAll: logins (tolerant mode for the density workload);
//   - traffic: saturating (at most N in flight per sender, released by the
//     receipt) or paced (a 2 ms timer, round-robin over the flows);
//   - offlineStore / offlineDrain: messages to an offline user; the senders use
//     XEP-0198 so the server's <a h/> tells when it has handled (stored) them.
// Message ids encode (run tag, flow, counter): every delivery and receipt maps
// to its message without a lookup table.
import { randomBytes } from "node:crypto";
import type { ConnectReport, DrainReport, StoreReport, TrafficReport } from "./generator.ts";
import { Flow, TrafficRun } from "./traffic.ts";
import { XmppConnection, XmppLoadError } from "./xmpp-connection.ts";
import { attr } from "./xmpp-xml.ts";

/** Body length of the XMPP messages (the plaintext size the workload is defined with). */
export const XMPP_BODY_BYTES = 100;

export interface XmppTarget {
  host: string;
  port: number;
  domain: string;
  password: string;
}

interface Client {
  user: string;
  conn: XmppConnection | undefined;
}

class XmppFlow extends Flow<Client> {
  /** Messages the server acknowledged through stream management (offline store). */
  acked = 0;
  readonly toJid: string;
  constructor(index: number, sender: Client, recipient: Client, domain: string) {
    super(index, sender, recipient);
    this.toJid = `${recipient.user}@${domain}`;
  }
}

/** A traffic phase's run; the tag goes into every message id, so a late event of an earlier run is recognized. */
class Run extends TrafficRun<Client, XmppFlow> {
  readonly tag = ((Math.random() * 0xffffff) | 0).toString(36);
}

/** Runs `task` over `items` with at most `limit` at once; failures are counted, not thrown. */
async function eachLimit<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>) {
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        await task(items[i]!, i);
      } catch (err) {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return { failed, firstError };
}

export interface XmppConnectReport extends ConnectReport {
  failed: number;
  firstError?: string;
}

export class XmppLoadGenerator {
  private readonly clients = new Map<string, Client>();
  private run: Run | undefined;
  private stale = 0;
  /** Printable random bytes the 100-byte bodies are sliced from. */
  private readonly bodyPool = randomBytes(48 * 1024).toString("base64");
  private bodyOffset = 0;

  constructor(readonly target: XmppTarget) {}

  openCount(): number {
    let n = 0;
    for (const c of this.clients.values()) if (c.conn && !c.conn.closed) n++;
    return n;
  }

  /**
   * Logs every user in, spreading source addresses. `tolerant`: failures are counted and the
   * rest carry on (density); otherwise the first failure rejects.
   */
  async connectAll(
    users: readonly string[],
    localAddresses: readonly string[],
    concurrency = 64,
    options: { tolerant?: boolean; streamManagement?: boolean } = {},
  ): Promise<XmppConnectReport> {
    const started = performance.now();
    const r = await eachLimit(users, concurrency, async (user, i) => {
      const address = localAddresses.length > 0 ? localAddresses[i % localAddresses.length] : undefined;
      await this.login(this.client(user), address, options.streamManagement ?? false);
    });
    if (r.failed > 0 && !options.tolerant) {
      throw new XmppLoadError("LOGIN", `${r.failed} of ${users.length} logins failed: ${r.firstError}`);
    }
    return {
      connected: users.length - r.failed,
      ms: performance.now() - started,
      ik: 0,
      queued: 0,
      failed: r.failed,
      ...(r.firstError !== undefined ? { firstError: r.firstError } : {}),
    };
  }

  private client(user: string): Client {
    let c = this.clients.get(user);
    if (!c) {
      c = { user, conn: undefined };
      this.clients.set(user, c);
    }
    return c;
  }

  private async login(client: Client, localAddress: string | undefined, streamManagement: boolean) {
    const t = this.target;
    const conn = await XmppConnection.open({
      host: t.host,
      port: t.port,
      domain: t.domain,
      user: client.user,
      password: t.password,
      streamManagement,
      ...(localAddress ? { localAddress } : {}),
    });
    client.conn = conn;
    conn.onStanza = (xml, name) => {
      if (name === "message") this.onMessage(client, xml);
    };
    conn.onClose = () => {
      if (this.run) {
        this.run.connectionsLost++;
        this.run.onProgress();
      }
    };
    return conn;
  }

  private connected(user: string): Client {
    const c = this.clients.get(user);
    if (!c?.conn || c.conn.closed) throw new XmppLoadError("NOT_CONNECTED", `${user} is not connected here`);
    return c;
  }

  // ------------------------------------------------------------ stanzas

  /** The flow and counter of a message id of the current run, or undefined (stale / foreign). */
  private locate(id: string | undefined): { flow: XmppFlow; c: number } | undefined {
    const run = this.run;
    if (!run || id === undefined) return undefined;
    const dot1 = id.indexOf(".");
    const dot2 = id.indexOf(".", dot1 + 1);
    if (dot1 < 0 || dot2 < 0 || id.slice(0, dot1) !== run.tag) return undefined;
    const flow = run.flows[Number(id.slice(dot1 + 1, dot2))];
    const c = Number(id.slice(dot2 + 1));
    if (!flow || !(c >= 0 && c < flow.sent)) return undefined;
    return { flow, c };
  }

  private onMessage(client: Client, xml: string): void {
    const run = this.run;
    if (attr(xml, "type") === "error") {
      if (run) {
        run.error(xml.slice(0, 300));
        run.onProgress();
      }
      return;
    }
    const receivedAt = xml.indexOf("<received");
    if (receivedAt >= 0) {
      this.onReceipt(client, attr(xml, "id", receivedAt));
      return;
    }
    if (xml.indexOf("<body>") < 0) return; // chat states and the like: not part of the load
    const id = attr(xml, "id");
    const from = attr(xml, "from");
    // XEP-0184: the recipient answers the receipt request to the sender's full JID.
    if (from !== undefined && id !== undefined && xml.indexOf("urn:xmpp:receipts") >= 0) {
      client.conn?.write(
        `<message to='${from}' id='r${id}'><received xmlns='urn:xmpp:receipts' id='${id}'/></message>`,
      );
    }
    this.onDelivery(client, id, from);
  }

  private onDelivery(client: Client, id: string | undefined, from: string | undefined): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    const fromUser = from === undefined ? "" : from.slice(0, from.indexOf("@"));
    run.delivered(at.flow, at.c, at.flow.recipient === client && at.flow.sender.user === fromUser);
  }

  private onReceipt(client: Client, id: string | undefined): void {
    const run = this.run;
    const at = this.locate(id);
    if (!run || !at) {
      this.stale++;
      return;
    }
    run.receipted(at.flow, at.c, at.flow.sender === client);
  }

  /** Stream management: the server has handled the sender's messages up to `h` (in order). */
  private onHandled(run: Run, flow: XmppFlow, h: number): void {
    if (run !== this.run) return;
    while (flow.acked < h && flow.acked < flow.sent) run.acked(flow, flow.acked++, true);
  }

  private send(run: Run, flow: XmppFlow): void {
    const conn = flow.sender.conn;
    if (!conn || conn.closed) {
      run.sending = false;
      return;
    }
    const c = run.sent(flow);
    conn.writeCounted(
      `<message type='chat' to='${flow.toJid}' id='${run.tag}.${flow.index}.${c}'><body>${this.body()}</body>` +
        "<request xmlns='urn:xmpp:receipts'/></message>",
    );
  }

  private body(): string {
    if (this.bodyOffset + XMPP_BODY_BYTES > this.bodyPool.length) this.bodyOffset = 0;
    const b = this.bodyPool.slice(this.bodyOffset, this.bodyOffset + XMPP_BODY_BYTES);
    this.bodyOffset += 61; // overlapping windows: bodies differ without new random bytes
    return b;
  }

  // ------------------------------------------------------------- phases

  /** Online pairs, as LoadGenerator.traffic: warm-up, measurement window, then outstanding receipts. */
  async traffic(options: {
    flows: readonly { from: string; to: string }[];
    mode: "saturate" | "paced";
    ratePerSec?: number;
    maxInFlight: number;
    warmupMs: number;
    measureMs: number;
    settleMs?: number;
  }): Promise<TrafficReport> {
    this.stale = 0;
    const domain = this.target.domain;
    const flows = options.flows.map((f, i) => new XmppFlow(i, this.connected(f.from), this.connected(f.to), domain));
    const run: Run = new Run(flows, "receipt", options.maxInFlight, options.mode === "saturate", (f) =>
      this.send(run, f),
    );
    this.run = run;
    await run.traffic(options, false);
    const report = run.report(this.stale, false);
    this.run = undefined;
    return report;
  }

  /**
   * Offline store: `senders` (connected with stream management) send `messages` in total to
   * `recipient`, who is not connected; at most `window` unacknowledged per sender.
   */
  async offlineStore(options: {
    senders: readonly string[];
    recipient: string;
    messages: number;
    window: number;
    /** Give up waiting for the acks after this long (default 300 s); the report says how many came. */
    timeoutMs?: number;
  }): Promise<StoreReport> {
    const recipient = this.client(options.recipient);
    if (recipient.conn && !recipient.conn.closed) {
      throw new XmppLoadError("ONLINE", "the offline recipient is connected");
    }
    const domain = this.target.domain;
    const flows = options.senders.map((s, i) => new XmppFlow(i, this.connected(s), recipient, domain));
    const run: Run = new Run(flows, "ack", options.window, true, (f) => this.send(run, f));
    this.run = run; // it stays current: the drain phase continues it
    for (const f of flows) {
      const conn = f.sender.conn!;
      conn.onHandled = (h) => this.onHandled(run, f, h);
    }
    return run.store(options.messages, options.timeoutMs ?? 300_000);
  }

  /** Offline drain: the recipient logs in (initial presence); time until every stored message arrived. */
  async offlineDrain(recipientUser: string, localAddress?: string, timeoutMs = 300_000): Promise<DrainReport> {
    const run = this.run;
    if (run?.releaseOn !== "ack") throw new XmppLoadError("NO_STORE", "run offlineStore first");
    const recipient = this.client(recipientUser);
    const report = await run.drain(async () => {
      await this.login(recipient, localAddress, false);
    }, timeoutMs);
    this.run = undefined;
    return report;
  }

  async disconnect(users: readonly string[]): Promise<void> {
    await Promise.all(
      users.map(async (u) => {
        await this.clients.get(u)?.conn?.close();
        this.clients.delete(u);
      }),
    );
  }

  async closeAll(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    // in slices: tens of thousands of simultaneous closes make a burst the server chokes on
    for (let i = 0; i < all.length; i += 2000) await Promise.all(all.slice(i, i + 2000).map((c) => c.conn?.close()));
  }
}
