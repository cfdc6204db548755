/**
 * The connection API of Parley's Noise transport, identical on client and server, over TCP,
 * Node WebSocket and browser WebSocket. The transport carries opaque stanza bytes: it never
 * looks inside them (the codec does that one layer up).
 */
import type { WireError } from "../errors.ts";

/** A raw X25519 key pair (32-byte little-endian scalar and 32-byte u-coordinate). */
export interface StaticKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/**
 * Close codes, carried in the encrypted close record (u16, big-endian). Codes >= 4000 are local
 * only: they are reported to `onClose` but never sent (e.g. the socket died without a close record).
 */
export const CloseCode = {
  /** Orderly close requested by the application. */
  NORMAL: 1000,
  /** The server is shutting down or restarting; reconnect later (with backoff). */
  SERVER_SHUTDOWN: 1001,
  /** The peer broke the record/handshake grammar (unknown record type, bad batch, ...). */
  PROTOCOL_VIOLATION: 1002,
  /** A record failed authentication (tampering, replay, reordering, wrong key). */
  DECRYPT_FAILED: 1003,
  /** A frame's length prefix exceeded the receiver's maximum frame size. */
  FRAME_TOO_LARGE: 1004,
  /** Another connection authenticated with the same identity and replaced this one. */
  REPLACED: 1005,
  /** The login payload was refused by `authenticate`. */
  AUTH_FAILED: 1006,
  /** Nothing was received for longer than the idle timeout. */
  IDLE_TIMEOUT: 1007,
  /** The peer sent faster than policy allows. */
  RATE_LIMITED: 1008,
  /** The peer read slower than we wrote: the bounded send buffer overflowed. */
  SLOW_CONSUMER: 1009,
  /** A bug or an unexpected failure on the sending side. */
  INTERNAL_ERROR: 1010,
  /** Local only: the socket ended or errored without a close record. */
  CONNECTION_LOST: 4000,
  /** Local only: the handshake did not finish within the handshake timeout. */
  HANDSHAKE_TIMEOUT: 4001,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Which Noise handshake produced the session. */
export type HandshakePattern = "XX" | "IK" | "XXfallback";

/** The authenticated, encrypted connection handed to the application on both sides. */
export interface Connection {
  /**
   * Queues one stanza. Nothing is written immediately: all stanzas queued in one event-loop turn
   * leave as one encrypted record (or a few, when they exceed the maximum frame size) in one
   * socket write. Throws WireError "CLOSED" once the connection is closing or closed, and
   * WireError "FRAME_TOO_LARGE" for a stanza larger than `maxStanzaSize`. If the bounded send
   * buffer overflows the connection is closed with CloseCode.SLOW_CONSUMER (the stanza is dropped).
   *
   * `lazy`: the stanza may wait up to ~LAZY_FLUSH_MS (1 ms, timer granularity) for others to share
   * its record, unless a stanza sent without it flushes the queue earlier (order is kept either way).
   * For stanzas nobody waits on at the millisecond (the server's acks and receipts): paced traffic
   * then pays one record, write and wake-up at each end instead of two.
   */
  send(stanza: Uint8Array, lazy?: boolean): void;
  /**
   * Sets THE stanza handler (a later call replaces it). Stanzas that arrive before a handler is
   * set are held and delivered, in order, when it is set. The bytes are a view into a buffer the
   * transport never reuses, so the handler may keep them.
   */
  onStanza(handler: (stanza: Uint8Array) => void): void;
  /**
   * Adds a close listener; called exactly once, with the peer's close code and reason when the
   * peer closed cleanly, our own when we closed, or a local code (>= 4000) when the socket died.
   * `error` is set when the close was caused by a failure (hostile bytes, timeout, ...).
   */
  onClose(listener: (code: number, reason: string, error?: WireError) => void): void;
  /** Adds a listener called when `bufferedAmount` falls back under the high-water mark. */
  onDrain(listener: () => void): void;
  /**
   * Flushes queued stanzas, sends an encrypted close record with `code` and `reason` (UTF-8,
   * truncated to 123 bytes), then ends the socket. Idempotent.
   */
  close(code: number, reason: string): void;
  /** Writes queued stanzas now instead of at the end of the event-loop turn. */
  flush(): void;
  /** The peer's static X25519 public key, authenticated by the handshake (32 bytes). */
  readonly remoteStaticPublicKey: Uint8Array;
  /** The handshake pattern that set up this connection. */
  readonly pattern: HandshakePattern;
  /** Bytes queued in this connection and not yet accepted by the OS (plaintext + socket buffer). */
  readonly bufferedAmount: number;
  /** False once `bufferedAmount` is above the high-water mark or the connection is closing. */
  readonly writable: boolean;
  /** "open" until close starts; "closing" while the close record drains; then "closed". */
  readonly state: "open" | "closing" | "closed";
  /** Largest stanza `send` accepts with this connection's maximum frame size. */
  readonly maxStanzaSize: number;
}

/** Limits of one connection. Every field has a default (see DEFAULT_LIMITS in transport/limits.ts). */
export interface TransportLimits {
  /**
   * Largest frame accepted or sent, in bytes after the length prefix (a Noise message: record
   * plaintext + 16-byte tag). Checked on the length prefix, before any buffering.
   * At most 65,535 (the Noise message limit). Default 65,535.
   */
  maxFrameSize: number;
  /** Largest handshake frame accepted (login payloads are small). Default 4,096. */
  maxHandshakeFrameSize: number;
  /** `writable` turns false above this many buffered bytes. Default 1 MiB. */
  highWaterMark: number;
  /** Above this many buffered bytes the connection is closed with SLOW_CONSUMER. Default 8 MiB. */
  maxBufferedBytes: number;
  /** A peer that has not finished the handshake after this long is dropped. Default 10,000 ms. */
  handshakeTimeoutMs: number;
  /** Close with IDLE_TIMEOUT when nothing arrives for this long; 0 disables. Default 0. */
  idleTimeoutMs: number;
  /** Rekey the sending direction after this many records. Default 2^24. Tests lower it. */
  rekeyAfterRecords: number;
  /** Send an empty keep-alive record when nothing was sent for this long; 0 disables. Default 0. */
  keepAliveIntervalMs: number;
  /** How long a closing connection waits for its close record to drain before destroying. Default 2,000 ms. */
  closeTimeoutMs: number;
}

/** What `authenticate` may answer: the login result bytes, optionally with an application context. */
export type AuthenticateResult<C> = Uint8Array | { readonly loginResult: Uint8Array; readonly context: C };

/** Details of an accepted connection, given to `onConnection` on the server. */
export interface AcceptedLogin<C> {
  readonly loginPayload: Uint8Array;
  readonly loginResult: Uint8Array;
  /** The `context` returned by `authenticate` (undefined when it returned bare bytes). */
  readonly context: C | undefined;
}

/** Options of a Parley transport server (TCP or WebSocket), usable inside node:cluster workers. */
export interface ServerOptions<C = unknown> {
  /** The server's static X25519 key pair; clients pin its public key for IK. */
  readonly staticKeyPair: StaticKeyPair;
  /**
   * Checks a client's login. Resolve with the login result (sent to the client encrypted) or
   * reject: a `LoginRejectedError` sends its `reason` to the client and closes with AUTH_FAILED;
   * any other error sends "internal error".
   */
  authenticate(remoteStaticPublicKey: Uint8Array, loginPayload: Uint8Array): Promise<AuthenticateResult<C>>;
  /** Called once per authenticated connection, synchronously after the login result is queued. */
  onConnection(connection: Connection, login: AcceptedLogin<C>): void;
  /** Reports handshakes that failed (hostile or broken peers); optional, for logging/metrics. */
  onHandshakeError?(error: WireError): void;
  readonly limits?: Partial<TransportLimits>;
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** "tcp://host:port" or "ws://host:port/path" ("wss://" in browsers). */
  readonly url: string;
  /** The device's transport identity. */
  readonly clientStaticKeyPair: StaticKeyPair;
  /** The server's static key if known (IK, one round trip); absent → XX (learns it). */
  readonly serverStaticPublicKey?: Uint8Array;
  /**
   * Called when the handshake learns the server's static key (XX, or XXfallback after the pinned key
   * was refused); return false to abort with HANDSHAKE_FAILED. Default: accept (trust on first use).
   */
  readonly acceptServerKey?: (serverStaticPublicKey: Uint8Array) => boolean;
  /** Opaque login data, sent encrypted under a state that authenticates the client's static key. */
  readonly loginPayload: Uint8Array;
  readonly timeouts?: {
    /** TCP/WebSocket connection establishment. Default 10,000 ms. */
    readonly connectMs?: number;
    /** Handshake + login. Default 10,000 ms. */
    readonly handshakeMs?: number;
  };
  readonly limits?: Partial<TransportLimits>;
  /** TCP only: local source address (e.g. 127.0.0.2) to spread load-test clients over ports. */
  readonly localAddress?: string;
}

/** What `connect` resolves to. */
export interface ConnectResult {
  readonly connection: Connection;
  /** The bytes `authenticate` returned on the server. */
  readonly loginResult: Uint8Array;
  /** The server's static key as authenticated by the handshake: pin it for the next IK connect. */
  readonly serverStaticPublicKey: Uint8Array;
  readonly pattern: HandshakePattern;
}
