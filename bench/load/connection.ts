// A lean protocol-level client connection: real Noise handshake + login, the
// stanza codec with a per-connection WireContext, batched devacks and a small
// iq helper (registration). No SQLite, no Signal sessions: the load generator
// keeps only counters and timestamps.
import {
  type ClientHello,
  type Connection,
  connect,
  DeferredAcks,
  DICTIONARY_VERSION,
  decodeServerHello,
  decodeStanza,
  encodeClientHello,
  encodeStanza,
  type IqRequest,
  type IqResult,
  PROTOCOL_VERSION,
  type Stanza,
  type StaticKeyPair,
  WireContext,
} from "@parley/wire";

export class LoadError extends Error {
  override readonly name = "LoadError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface OpenOptions {
  url: string;
  keyPair: StaticKeyPair;
  /** Known server key: IK (one round trip). Absent: XX. */
  serverKey?: Uint8Array;
  /** undefined user/device = a "registering" login. */
  user?: string;
  device?: number;
  localAddress?: string;
}

export interface Opened {
  conn: LoadConnection;
  serverKey: Uint8Array;
  pattern: string;
  queueCount: number;
}

const USER_AGENT = "parley-load/0.1";

export async function openLoadConnection(options: OpenOptions): Promise<Opened> {
  const hello: ClientHello =
    options.user !== undefined && options.device !== undefined
      ? {
          protocolVersion: PROTOCOL_VERSION,
          dictionaryVersion: DICTIONARY_VERSION,
          user: options.user,
          device: options.device,
          passive: false,
          userAgent: USER_AGENT,
        }
      : {
          protocolVersion: PROTOCOL_VERSION,
          dictionaryVersion: DICTIONARY_VERSION,
          device: "registering",
          passive: false,
          userAgent: USER_AGENT,
        };
  const isTcp = options.url.startsWith("tcp:");
  const result = await connect({
    url: options.url,
    clientStaticKeyPair: options.keyPair,
    loginPayload: encodeClientHello(hello),
    ...(options.serverKey ? { serverStaticPublicKey: options.serverKey } : {}),
    ...(isTcp && options.localAddress ? { localAddress: options.localAddress } : {}),
    timeouts: { connectMs: 30_000, handshakeMs: 30_000 },
  });
  const login = decodeServerHello(result.loginResult);
  if (login.result !== "ok") {
    result.connection.close(1000, "login refused");
    throw new LoadError(login.error.code, `login refused: ${login.error.text ?? login.error.code}`);
  }
  return {
    conn: new LoadConnection(result.connection),
    serverKey: result.serverStaticPublicKey,
    pattern: result.pattern,
    queueCount: login.queueCount,
  };
}

/** One connection; the owner sets `handler` for every stanza that is not an iq answer. */
export class LoadConnection {
  private readonly ctx = new WireContext();
  private readonly iqWaiters = new Map<number, { resolve(r: IqResult): void; reject(e: Error): void }>();
  private nextIqId = 1;
  private pendingSeqs: number[] = [];
  private devackScheduled = false;
  private readonly deferredAcks = new DeferredAcks((seqs) => {
    if (!this.closed) this.send({ kind: "devack", seqs });
  });
  closed = false;
  closeReason = "";

  constructor(readonly connection: Connection) {}

  /**
   * Starts receiving. Until this is called the transport holds incoming stanzas, so nothing that
   * arrives together with the login result (e.g. the first queued deliveries) is lost.
   */
  start(handler: (stanza: Stanza) => void, onClosed: (code: number, reason: string) => void = () => {}): void {
    this.connection.onClose((code, reason) => {
      this.closed = true;
      this.deferredAcks.clear();
      this.closeReason = `${code} ${reason}`;
      for (const w of this.iqWaiters.values())
        w.reject(new LoadError("CLOSED", `connection closed: ${code} ${reason}`));
      this.iqWaiters.clear();
      onClosed(code, reason);
    });
    this.connection.onStanza((bytes) => {
      let stanza: Stanza;
      try {
        stanza = decodeStanza(bytes, undefined, this.ctx);
      } catch (err) {
        this.connection.close(1002, "load generator could not decode a stanza");
        throw err;
      }
      if (stanza.kind === "iq-result" || stanza.kind === "iq-error") {
        const waiter = this.iqWaiters.get(stanza.id);
        if (waiter) {
          this.iqWaiters.delete(stanza.id);
          if (stanza.kind === "iq-result") waiter.resolve(stanza.result);
          else waiter.reject(new LoadError(stanza.error.code, stanza.error.text ?? stanza.error.code));
          return;
        }
      }
      handler(stanza);
    });
  }

  send(stanza: Stanza): void {
    // waiting acks go first, in the same record, as the client SDK does
    if (stanza.kind !== "devack") this.deferredAcks.flush();
    this.connection.send(encodeStanza(stanza, this.ctx));
  }

  /**
   * Acknowledges a receipt or notification entry later: with the next stanza sent, after 250 ms or
   * once 64 wait (wire's DeferredAcks, the client SDK's policy).
   */
  devackLater(seq: number): void {
    this.deferredAcks.add(seq);
  }

  /**
   * Acknowledges a queue entry. All seqs acknowledged while one socket read is processed leave as
   * ONE devack stanza (a microtask runs after the read's stanzas), as a real client acks a batch.
   */
  devack(seq: number): void {
    this.pendingSeqs.push(seq);
    if (this.devackScheduled) return;
    this.devackScheduled = true;
    queueMicrotask(() => {
      this.devackScheduled = false;
      const seqs = this.pendingSeqs;
      this.pendingSeqs = [];
      if (!this.closed && seqs.length > 0) this.send({ kind: "devack", seqs });
    });
  }

  iq(request: IqRequest): Promise<IqResult> {
    const id = this.nextIqId++;
    return new Promise<IqResult>((resolve, reject) => {
      this.iqWaiters.set(id, { resolve, reject });
      try {
        this.send({ kind: "iq", id, request });
      } catch (err) {
        this.iqWaiters.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.deferredAcks.flush();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.connection.onClose(() => {
        clearTimeout(timer);
        resolve();
      });
      this.connection.close(1000, "load generator done");
    });
  }
}

/** Runs `task` over `items` with at most `limit` running at once; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>) {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Source address number k (k ≥ 2) → 127.x.y.z, to spread ephemeral ports over many local addresses. */
export function loopbackAddress(k: number): string {
  return `127.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;
}
