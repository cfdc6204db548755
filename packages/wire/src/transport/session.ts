/**
 * The encrypted session after the handshake: batching, record layer, rekey, close and backpressure.
 * `send` only queues; one flush per event-loop turn packs every queued stanza into as few records as
 * the frame limit allows (one AEAD call per record) and hands them to the link in one write.
 */
import { WireError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { TAG_LEN } from "../noise/suite.ts";
import type { FrameLink, FrameLinkHandlers } from "./link.ts";
import {
  decodeClose,
  decodeLoginResponse,
  encodeClose,
  type LoginResponse,
  MAX_VARINT_BYTES,
  RecordType,
  readStanzas,
  varintSize,
  writeVarint,
} from "./record.ts";
import { CloseCode, type Connection, type HandshakePattern, type TransportLimits } from "./types.ts";

const EMPTY = new Uint8Array(0);
const REKEY_RECORD = new Uint8Array([RecordType.REKEY]);
const PING_RECORD = new Uint8Array([RecordType.PING]);
const NO_LISTENERS: readonly never[] = Object.freeze([]);

type CloseListener = (code: number, reason: string, error?: WireError) => void;

/** Runs `task` once at the end of the current event-loop turn (after pending I/O callbacks in Node). */
export type Scheduler = (task: () => void) => void;

export const defaultScheduler: Scheduler =
  typeof globalThis.setImmediate === "function" ? (task) => setImmediate(task) : (task) => queueMicrotask(task);

export interface SessionOptions {
  link: FrameLink;
  send: CipherState;
  receive: CipherState;
  remoteStaticPublicKey: Uint8Array;
  pattern: HandshakePattern;
  limits: TransportLimits;
  scheduler?: Scheduler;
  /** Client side: the first record must be a LOGIN record; it is handed here instead of to the app. */
  onLoginResponse?: (response: LoginResponse) => void;
}

const closeCodeForError: Partial<Record<WireError["code"], number>> = {
  DECRYPT_FAILED: CloseCode.DECRYPT_FAILED,
  FRAME_TOO_LARGE: CloseCode.FRAME_TOO_LARGE,
};

/**
 * A session's state after the handshake and login, enough to continue it in another process that
 * takes over the socket (cluster workers hand a TCP connection to the worker that owns the
 * account's queues). Secret: it travels only over the server's local IPC channel.
 */
export interface HandoffState {
  send: { key: Uint8Array; nonce: bigint };
  receive: { key: Uint8Array; nonce: bigint };
  recordsSinceRekey: number;
  remoteStaticPublicKey: Uint8Array;
  pattern: HandshakePattern;
  /** Stanzas that arrived (decrypted) before the application took the connection, in order. */
  held: Uint8Array[];
}

/**
 * How long a lazy stanza (see Connection.send) may wait for company: about one loopback round trip,
 * so a sender's ✓ (ack after the fsync) and ✓✓ (receipt after the recipient's ack) usually share a
 * record. One timer per process serves every connection; a connection's own state holds nothing.
 */
const LAZY_FLUSH_MS = 1;
const lazyFlushes = new Set<SecureConnection>();
let lazyTimerArmed = false;
function flushLazy(): void {
  lazyTimerArmed = false;
  const due = [...lazyFlushes];
  lazyFlushes.clear();
  for (const c of due) c.flushLazy();
}

export class SecureConnection implements Connection, FrameLinkHandlers {
  readonly remoteStaticPublicKey: Uint8Array;
  readonly pattern: HandshakePattern;
  readonly maxStanzaSize: number;
  /** The link under the session (for a handoff, which needs to know its kind). */
  readonly link: FrameLink;
  private readonly sendCipher: CipherState;
  private readonly receiveCipher: CipherState;
  private readonly limits: TransportLimits;
  private readonly schedule: Scheduler;
  private readonly maxRecordPlaintext: number;
  private readonly headroom: number;

  private queue: Uint8Array[] = [];
  /** Encoded size of `queue` (varint prefixes + stanza bytes). */
  private queuedBytes = 0;
  private flushScheduled = false;
  private recordsSinceRekey = 0;
  private aboveHighWater = false;

  private stanzaHandler: ((stanza: Uint8Array) => void) | null = null;
  /** Stanzas that arrived before the stanza handler was set (usually none: created on first use). */
  private held: Uint8Array[] | undefined;
  private heldBytes = 0;
  // Copied on add (concat: an exact-size array) from a shared empty one: a connection has one listener
  // of each, and an array grown by push or spread would reserve 17 slots (~130 bytes more).
  private closeListeners: readonly CloseListener[] = NO_LISTENERS;
  private drainListeners: readonly (() => void)[] = NO_LISTENERS;
  private onLoginResponse: ((response: LoginResponse) => void) | undefined;

  private status: "open" | "closing" | "closed" = "open";
  private closeReported = false;
  /** The reported close, for listeners added afterwards. */
  private closeInfo: { code: number; reason: string; error?: WireError } | undefined;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private activityTimer: ReturnType<typeof setInterval> | undefined;
  private receivedSinceCheck = false;
  private sentSinceCheck = false;
  private idleChecks = 0;
  private readonly deliver = (stanza: Uint8Array): void => this.deliverStanza(stanza);

  constructor(options: SessionOptions) {
    this.link = options.link;
    this.sendCipher = options.send;
    this.receiveCipher = options.receive;
    this.remoteStaticPublicKey = options.remoteStaticPublicKey;
    this.pattern = options.pattern;
    this.limits = options.limits;
    this.schedule = options.scheduler ?? defaultScheduler;
    this.onLoginResponse = options.onLoginResponse;
    this.headroom = options.link.frameHeaderSize;
    this.maxRecordPlaintext = this.limits.maxFrameSize - TAG_LEN;
    this.maxStanzaSize = this.maxRecordPlaintext - 1 - MAX_VARINT_BYTES;
    this.link.setMaxFrameSize(this.limits.maxFrameSize);
    this.link.setHandlers(this);
    this.startActivityTimer();
  }

  get state(): "open" | "closing" | "closed" {
    return this.status;
  }

  /**
   * Can this session move to another process now? Only right after the login: open, nothing queued
   * or unwritten to send (the login record has reached the OS), and no stanza handler yet.
   */
  canHandOff(): boolean {
    return (
      this.status === "open" && this.queue.length === 0 && this.stanzaHandler === null && this.link.bufferedAmount === 0
    );
  }

  /**
   * Retires this session for a handoff (check canHandOff first, and detach the link's socket):
   * returns its state; afterwards it neither reads, writes nor reports a close.
   */
  exportForHandoff(): HandoffState {
    if (!this.canHandOff()) throw new WireError("CLOSED", "this connection cannot be handed off now");
    const state: HandoffState = {
      send: this.sendCipher.exportState(),
      receive: this.receiveCipher.exportState(),
      recordsSinceRekey: this.recordsSinceRekey,
      remoteStaticPublicKey: this.remoteStaticPublicKey,
      pattern: this.pattern,
      held: this.held ?? [],
    };
    this.held = undefined;
    this.heldBytes = 0;
    this.closeReported = true;
    this.status = "closed";
    this.stopActivityTimer();
    return state;
  }

  /** The receiving side of a handoff: the stanzas that arrived before it, and the rekey count. */
  restoreFromHandoff(state: Pick<HandoffState, "held" | "recordsSinceRekey">): void {
    this.recordsSinceRekey = state.recordsSinceRekey;
    for (const stanza of state.held) {
      this.held ??= [];
      this.held.push(stanza);
      this.heldBytes += stanza.length;
    }
  }

  get bufferedAmount(): number {
    return this.queuedBytes + this.link.bufferedAmount;
  }

  get writable(): boolean {
    return this.status === "open" && this.bufferedAmount < this.limits.highWaterMark;
  }

  send(stanza: Uint8Array, lazy = false): void {
    if (this.status !== "open") throw new WireError("CLOSED", "connection is closed");
    if (stanza.length > this.maxStanzaSize) {
      throw new WireError("FRAME_TOO_LARGE", `stanza of ${stanza.length} bytes exceeds ${this.maxStanzaSize}`);
    }
    this.queue.push(stanza);
    this.queuedBytes += varintSize(stanza.length) + stanza.length;
    const buffered = this.queuedBytes + this.link.bufferedAmount;
    if (buffered > this.limits.highWaterMark) {
      this.aboveHighWater = true;
      if (buffered > this.limits.maxBufferedBytes) {
        // The stanza that overflowed is dropped with everything queued: a reader this slow is cut off
        // rather than allowed to grow our memory without bound.
        this.queue = [];
        this.queuedBytes = 0;
        this.close(CloseCode.SLOW_CONSUMER, "send buffer overflow");
        return;
      }
    }
    if (this.flushScheduled) return;
    if (lazy) {
      lazyFlushes.add(this);
      if (!lazyTimerArmed) {
        lazyTimerArmed = true;
        setTimeout(flushLazy, LAZY_FLUSH_MS);
      }
      return;
    }
    this.flushScheduled = true;
    this.schedule(() => {
      this.flushScheduled = false;
      if (this.status === "open") this.flush();
    });
  }

  /** A lazy stanza's deadline passed: flush unless a turn's flush took the queue meanwhile. */
  flushLazy(): void {
    if (!this.flushScheduled && this.status === "open") this.flush();
  }

  /** Server side: queues the LOGIN record, which must precede every stanza record. */
  sendLoginRecord(body: Uint8Array): void {
    const plaintext = new Uint8Array(1 + body.length);
    plaintext[0] = RecordType.LOGIN;
    plaintext.set(body, 1);
    this.writeRecords([plaintext]);
  }

  flush(): void {
    if (this.queue.length === 0 || this.status === "closed") return;
    const queue = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    const records: Uint8Array[] = [];
    let index = 0;
    while (index < queue.length) {
      // Size the next record: as many whole stanzas as fit under the frame limit.
      let size = 1;
      let end = index;
      while (end < queue.length) {
        const s = queue[end]!;
        const add = varintSize(s.length) + s.length;
        if (size + add > this.maxRecordPlaintext && end > index) break;
        size += add;
        end++;
      }
      const plaintext = new Uint8Array(size);
      plaintext[0] = RecordType.STANZAS;
      let offset = 1;
      for (let i = index; i < end; i++) {
        const s = queue[i]!;
        offset = writeVarint(plaintext, offset, s.length);
        plaintext.set(s, offset);
        offset += s.length;
      }
      records.push(plaintext);
      index = end;
    }
    this.writeRecords(records);
    this.sentSinceCheck = true;
  }

  /** Encrypts records (plus REKEY records when due) and writes them in one link write. */
  private writeRecords(records: readonly Uint8Array[]): void {
    const frames: Uint8Array[] = [];
    for (const plaintext of records) {
      frames.push(this.sendCipher.encryptWithAd(EMPTY, plaintext, this.headroom));
      if (++this.recordsSinceRekey >= this.limits.rekeyAfterRecords) {
        frames.push(this.sendCipher.encryptWithAd(EMPTY, REKEY_RECORD, this.headroom));
        this.sendCipher.rekey();
        this.recordsSinceRekey = 0;
      }
    }
    this.link.writeFrames(frames);
  }

  onStanza(handler: (stanza: Uint8Array) => void): void {
    this.stanzaHandler = handler;
    if (this.held !== undefined) {
      const held = this.held;
      this.held = undefined;
      this.heldBytes = 0;
      for (const stanza of held) {
        if (this.status === "closed") break;
        this.deliverStanza(stanza);
      }
    }
  }

  onClose(listener: CloseListener): void {
    const info = this.closeInfo;
    // Added after the close was reported (e.g. a close record that arrived with the login result):
    // still called exactly once, on a later turn like every other close notification.
    if (info) queueMicrotask(() => listener(info.code, info.reason, info.error));
    else this.closeListeners = this.closeListeners.concat(listener);
  }

  onDrain(listener: () => void): void {
    this.drainListeners = this.drainListeners.concat(listener);
  }

  close(code: number, reason: string): void {
    if (this.status !== "open") return;
    this.flush();
    this.closeWith(code, reason, undefined, true);
  }

  private closeWith(code: number, reason: string, error: WireError | undefined, sendRecord: boolean): void {
    if (this.status !== "open") return;
    this.status = "closing";
    this.stopActivityTimer();
    if (sendRecord) {
      try {
        this.writeRecords([encodeClose(code, reason)]);
      } catch {
        // the send cipher is unusable (nonce space exhausted): end without a close record
      }
    }
    this.link.end();
    this.closeTimer = setTimeout(() => this.link.destroy(), this.limits.closeTimeoutMs);
    this.reportClose(code, reason, error);
  }

  /** The link broke its framing rules (FrameLinkHandlers). */
  linkFailed(error: WireError): void {
    this.fail(error);
  }

  /** Closes because of a failure: the peer learns the code from an encrypted close record. */
  private fail(error: WireError): void {
    if (this.status !== "open") {
      this.link.destroy();
      return;
    }
    this.queue = [];
    this.queuedBytes = 0;
    this.closeWith(closeCodeForError[error.code] ?? CloseCode.PROTOCOL_VIOLATION, error.message, error, true);
  }

  /** Drops the link without a close record or close report (a login that failed before the app saw us). */
  abort(): void {
    this.closeReported = true;
    this.status = "closed";
    this.stopActivityTimer();
    this.link.destroy();
  }

  private reportClose(code: number, reason: string, error: WireError | undefined): void {
    if (this.closeReported) return;
    this.closeReported = true;
    this.closeInfo = { code, reason, ...(error ? { error } : {}) };
    this.held = undefined;
    for (const listener of this.closeListeners) {
      try {
        listener(code, reason, error);
      } catch {
        // a listener's bug must not stop the others or escape into the socket's event handler
      }
    }
  }

  /** The socket is gone (FrameLinkHandlers). */
  linkClosed(): void {
    const wasOpen = this.status === "open";
    this.status = "closed";
    this.stopActivityTimer();
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.queue = [];
    this.queuedBytes = 0;
    if (wasOpen) {
      this.reportClose(
        CloseCode.CONNECTION_LOST,
        "connection lost",
        new WireError("CLOSED", "socket closed without a close record"),
      );
    }
  }

  /** The socket's write buffer drained (FrameLinkHandlers). */
  linkDrained(): void {
    if (!this.aboveHighWater || this.status !== "open") return;
    if (this.bufferedAmount >= this.limits.highWaterMark) return;
    this.aboveHighWater = false;
    for (const listener of this.drainListeners) {
      try {
        listener();
      } catch {
        // see reportClose
      }
    }
  }

  /** Entry point for every frame of the session (FrameLinkHandlers); never throws. */
  frameReceived(frame: Uint8Array): void {
    if (this.status === "closed") return;
    this.receivedSinceCheck = true;
    let plaintext: Uint8Array;
    try {
      plaintext = this.receiveCipher.decryptWithAd(EMPTY, frame);
    } catch (err) {
      this.fail(err instanceof WireError ? err : new WireError("DECRYPT_FAILED", "record did not decrypt"));
      return;
    }
    if (this.status !== "open") return; // draining our close: decrypt kept nonces in step, ignore content
    try {
      this.handleRecord(plaintext);
    } catch (err) {
      this.fail(err instanceof WireError ? err : new WireError("PROTOCOL_VIOLATION", "bad record", { cause: err }));
    }
  }

  private handleRecord(plaintext: Uint8Array): void {
    const type = plaintext[0];
    if (this.onLoginResponse !== undefined) {
      if (type !== RecordType.LOGIN) throw new WireError("PROTOCOL_VIOLATION", "expected the login record first");
      const onLogin = this.onLoginResponse;
      this.onLoginResponse = undefined;
      onLogin(decodeLoginResponse(plaintext.subarray(1)));
      return;
    }
    switch (type) {
      case RecordType.STANZAS:
        readStanzas(plaintext, 1, this.deliver);
        return;
      case RecordType.CLOSE: {
        const { code, reason } = decodeClose(plaintext);
        this.queue = [];
        this.queuedBytes = 0;
        this.closeWith(code, reason, undefined, false);
        return;
      }
      case RecordType.REKEY:
        if (plaintext.length !== 1) throw new WireError("PROTOCOL_VIOLATION", "rekey record with a body");
        this.receiveCipher.rekey();
        return;
      case RecordType.PING:
        return;
      default:
        throw new WireError("PROTOCOL_VIOLATION", `unexpected record type ${type}`);
    }
  }

  private deliverStanza(stanza: Uint8Array): void {
    if (this.status !== "open") return;
    const handler = this.stanzaHandler;
    if (handler === null) {
      this.heldBytes += stanza.length;
      if (this.heldBytes > this.limits.maxBufferedBytes) {
        throw new WireError("LIMIT_EXCEEDED", "too many stanzas before a stanza handler was set");
      }
      this.held ??= [];
      this.held.push(stanza);
      return;
    }
    try {
      handler(stanza);
    } catch (err) {
      // An application bug must not escape into the socket's event handler and take the process down.
      this.closeWith(
        CloseCode.INTERNAL_ERROR,
        "internal error",
        new WireError("CLOSED", "stanza handler threw", { cause: err }),
        true,
      );
    }
  }

  private startActivityTimer(): void {
    const { idleTimeoutMs, keepAliveIntervalMs } = this.limits;
    if (idleTimeoutMs <= 0 && keepAliveIntervalMs <= 0) return;
    // One coarse interval per connection instead of re-arming a timer on every frame.
    const tick = Math.max(50, Math.min(...[idleTimeoutMs, keepAliveIntervalMs].filter((t) => t > 0)) / 2);
    this.activityTimer = setInterval(() => this.checkActivity(tick), tick);
    (this.activityTimer as { unref?: () => void }).unref?.();
  }

  private stopActivityTimer(): void {
    if (this.activityTimer !== undefined) clearInterval(this.activityTimer);
    this.activityTimer = undefined;
  }

  private idleSentTicks = 0;

  private checkActivity(tick: number): void {
    if (this.status !== "open") return;
    if (this.receivedSinceCheck) this.idleChecks = 0;
    else this.idleChecks++;
    this.receivedSinceCheck = false;
    if (this.limits.idleTimeoutMs > 0 && this.idleChecks * tick >= this.limits.idleTimeoutMs) {
      this.closeWith(
        CloseCode.IDLE_TIMEOUT,
        "idle timeout",
        new WireError("CLOSED", "nothing received within the idle timeout"),
        true,
      );
      return;
    }
    if (this.sentSinceCheck) this.idleSentTicks = 0;
    else this.idleSentTicks++;
    this.sentSinceCheck = false;
    if (this.limits.keepAliveIntervalMs > 0 && this.idleSentTicks * tick >= this.limits.keepAliveIntervalMs) {
      this.idleSentTicks = 0;
      this.writeRecords([PING_RECORD]);
    }
  }
}
