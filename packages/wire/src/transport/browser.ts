/**
 * Browser client: the global WebSocket (binary, one message per frame) and the @noble/* crypto suite,
 * so nothing here loads node:crypto. Same Connection interface as in Node.
 */
import { WireError } from "../errors.ts";
import { MAX_NOISE_MESSAGE } from "../noise/suite.ts";
import { nobleSuite } from "../noise/suite-noble.ts";
import { runClientHandshake } from "./handshake-client.ts";
import { resolveLimits } from "./limits.ts";
import type { FrameLink, FrameLinkHandlers } from "./link.ts";
import type { ConnectOptions, ConnectResult } from "./types.ts";

const noop = () => {};
const NO_HANDLERS: FrameLinkHandlers = { frameReceived: noop, linkFailed: noop, linkClosed: noop, linkDrained: noop };
/** Browsers have no drain event on WebSocket: poll bufferedAmount while it is non-zero. */
const DRAIN_POLL_MS = 20;

export class BrowserWebSocketLink implements FrameLink {
  readonly frameHeaderSize = 0;
  private readonly ws: WebSocket;
  private maxFrameSize: number;
  private handlers: FrameLinkHandlers = NO_HANDLERS;
  private closed = false;
  private drainTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(ws: WebSocket, maxFrameSize: number) {
    this.ws = ws;
    this.maxFrameSize = maxFrameSize;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event: MessageEvent) => {
      if (this.closed) return;
      if (!(event.data instanceof ArrayBuffer)) {
        this.handlers.linkFailed(new WireError("PROTOCOL_VIOLATION", "text WebSocket message"));
        return;
      }
      const frame = new Uint8Array(event.data);
      if (frame.length > this.maxFrameSize) {
        this.handlers.linkFailed(new WireError("FRAME_TOO_LARGE", `frame of ${frame.length} bytes exceeds the limit`));
        return;
      }
      if (frame.length === 0) {
        this.handlers.linkFailed(new WireError("PROTOCOL_VIOLATION", "empty frame"));
        return;
      }
      this.handlers.frameReceived(frame);
    });
    ws.addEventListener("close", () => {
      if (this.closed) return;
      this.closed = true;
      if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
      this.handlers.linkClosed();
    });
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  setMaxFrameSize(bytes: number): void {
    this.maxFrameSize = bytes;
  }

  setHandlers(handlers: FrameLinkHandlers): void {
    this.handlers = handlers;
  }

  writeFrames(frames: readonly Uint8Array[]): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    for (const frame of frames) this.ws.send(frame as Uint8Array<ArrayBuffer>);
    if (this.drainTimer === undefined && this.ws.bufferedAmount > 0) this.pollDrain();
  }

  private pollDrain(): void {
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      if (this.closed) return;
      if (this.ws.bufferedAmount > 0) this.pollDrain();
      this.handlers.linkDrained();
    }, DRAIN_POLL_MS);
  }

  end(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }

  destroy(): void {
    this.end();
  }
}

/** Browser `connect`: ws:// or wss:// URLs only. */
export function connectBrowser(options: ConnectOptions): Promise<ConnectResult> {
  const limits = resolveLimits(options.limits);
  const connectMs = options.timeouts?.connectMs ?? 10_000;
  if (!/^wss?:\/\//.test(options.url)) {
    return Promise.reject(new WireError("PROTOCOL_VIOLATION", "browsers connect with ws:// or wss:// URLs"));
  }
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(options.url);
    const timer = setTimeout(() => {
      ws.close();
      reject(new WireError("CLOSED", `WebSocket connect to ${options.url} timed out`));
    }, connectMs);
    ws.addEventListener("open", () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.addEventListener("error", () => {
      clearTimeout(timer);
      reject(new WireError("CLOSED", `WebSocket connect to ${options.url} failed`));
    });
  }).then((ws) =>
    runClientHandshake({
      link: new BrowserWebSocketLink(ws, MAX_NOISE_MESSAGE),
      suite: nobleSuite,
      clientStaticKeyPair: options.clientStaticKeyPair,
      ...(options.serverStaticPublicKey ? { serverStaticPublicKey: options.serverStaticPublicKey } : {}),
      ...(options.acceptServerKey ? { acceptServerKey: options.acceptServerKey } : {}),
      loginPayload: options.loginPayload,
      limits,
      handshakeTimeoutMs: options.timeouts?.handshakeMs ?? limits.handshakeTimeoutMs,
    }),
  );
}
