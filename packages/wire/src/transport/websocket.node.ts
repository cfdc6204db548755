/**
 * Parley over WebSocket in Node (`ws`): one binary WebSocket message per frame, so no length prefix
 * (the WebSocket framing already delimits messages). `maxPayload` makes `ws` refuse an oversized
 * message from its header, before buffering it.
 */
import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Server as HttpsServer } from "node:https";
import { WebSocket, WebSocketServer } from "ws";
import { WireError } from "../errors.ts";
import { nodeSuite } from "../noise/suite.node.ts";
import { MAX_NOISE_MESSAGE } from "../noise/suite.ts";
import { acceptLink } from "./handshake-server.ts";
import type { FrameLink, FrameLinkHandlers } from "./link.ts";
import type { ServerOptions } from "./types.ts";

const noop = () => {};
const NO_HANDLERS: FrameLinkHandlers = { frameReceived: noop, linkFailed: noop, linkClosed: noop, linkDrained: noop };
/** ws reports this code when a message exceeds maxPayload. */
const WS_TOO_LARGE = "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH";

export class NodeWebSocketLink implements FrameLink {
  readonly frameHeaderSize = 0;
  private readonly ws: WebSocket;
  private maxFrameSize: number;
  private handlers: FrameLinkHandlers = NO_HANDLERS;
  private closed = false;
  private readonly afterWrite = (): void => this.handlers.linkDrained();

  constructor(ws: WebSocket, maxFrameSize: number) {
    this.ws = ws;
    this.maxFrameSize = maxFrameSize;
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (this.closed) return;
      if (!isBinary) {
        this.handlers.linkFailed(new WireError("PROTOCOL_VIOLATION", "text WebSocket message"));
        return;
      }
      if (data.length > this.maxFrameSize) {
        this.handlers.linkFailed(new WireError("FRAME_TOO_LARGE", `frame of ${data.length} bytes exceeds the limit`));
        return;
      }
      if (data.length === 0) {
        this.handlers.linkFailed(new WireError("PROTOCOL_VIOLATION", "empty frame"));
        return;
      }
      this.handlers.frameReceived(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    ws.on("error", (err: Error & { code?: string }) => {
      if (err.code === WS_TOO_LARGE) this.handlers.linkFailed(new WireError("FRAME_TOO_LARGE", err.message));
      // other errors are followed by "close"
    });
    ws.on("close", () => {
      if (this.closed) return;
      this.closed = true;
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
    const last = frames.length - 1;
    for (let i = 0; i <= last; i++) {
      // ws has no drain event: the write callback of the last frame stands in for it.
      this.ws.send(frames[i]!, { binary: true, compress: false }, i === last ? this.afterWrite : undefined);
    }
  }

  end(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }

  destroy(): void {
    this.ws.terminate();
  }
}

export interface WebSocketServerOptions<C> extends ServerOptions<C> {
  /** URL path to accept upgrades on when attaching to an HTTP server (default: any). */
  readonly path?: string;
}

/**
 * Serves Parley on WebSocket: give an HTTP(S) server (a WebSocketServer is created on it, binary
 * frames, no compression, maxPayload = 65,535) or your own WebSocketServer.
 */
export function attachWebSocketServer<C>(
  target: HttpServer | HttpsServer | WebSocketServer,
  options: WebSocketServerOptions<C>,
): WebSocketServer {
  const wss =
    target instanceof WebSocketServer
      ? target
      : new WebSocketServer({
          server: target,
          ...(options.path ? { path: options.path } : {}),
          maxPayload: MAX_NOISE_MESSAGE,
          perMessageDeflate: false,
        });
  wss.on("connection", (ws: WebSocket, _request: IncomingMessage) => handleWebSocket(ws, options));
  return wss;
}

/** Runs the Parley handshake on one accepted WebSocket. */
export function handleWebSocket<C>(ws: WebSocket, options: ServerOptions<C>): void {
  try {
    acceptLink(new NodeWebSocketLink(ws, MAX_NOISE_MESSAGE), options, { suite: nodeSuite });
  } catch (err) {
    ws.terminate();
    options.onHandshakeError?.(
      err instanceof WireError ? err : new WireError("HANDSHAKE_FAILED", "cannot accept", { cause: err }),
    );
  }
}

/** Opens a WebSocket (Node) and resolves once it is open. */
export function openWebSocketLink(url: string, timeoutMs: number): Promise<NodeWebSocketLink> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: MAX_NOISE_MESSAGE, perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new WireError("CLOSED", `WebSocket connect to ${url} timed out`));
    }, timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(new WireError("CLOSED", `WebSocket connect to ${url} failed: ${err.message}`, { cause: err }));
    };
    ws.once("error", onError);
    ws.once("open", () => {
      clearTimeout(timer);
      ws.off("error", onError);
      resolve(new NodeWebSocketLink(ws, MAX_NOISE_MESSAGE));
    });
  });
}
