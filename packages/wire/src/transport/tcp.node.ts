/** Parley over raw TCP (node:net): 2-byte length-prefixed frames. */
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { WireError } from "../errors.ts";
import { CipherState } from "../noise/cipher-state.ts";
import { nodeSuite } from "../noise/suite.node.ts";
import { FRAME_HEADER_SIZE, FrameDecoder, writeFrameHeader } from "./framing.ts";
import { acceptLink } from "./handshake-server.ts";
import { resolveLimits } from "./limits.ts";
import type { FrameLink, FrameLinkHandlers } from "./link.ts";
import { PARLEY_NOISE_CIPHER } from "./prologue.ts";
import { type HandoffState, type Scheduler, SecureConnection } from "./session.ts";
import type { Connection, ServerOptions, TransportLimits } from "./types.ts";

const noop = () => {};
const NO_HANDLERS: FrameLinkHandlers = { frameReceived: noop, linkFailed: noop, linkClosed: noop, linkDrained: noop };

export class TcpFrameLink implements FrameLink {
  readonly frameHeaderSize = FRAME_HEADER_SIZE;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private handlers: FrameLinkHandlers = NO_HANDLERS;
  private closed = false;
  private readonly deliver = (frame: Uint8Array): void => this.handlers.frameReceived(frame);
  private readonly onData = (chunk: Buffer): void => {
    try {
      this.decoder.push(chunk, this.deliver);
    } catch (err) {
      this.handlers.linkFailed(
        err instanceof WireError ? err : new WireError("PROTOCOL_VIOLATION", "frame handling failed", { cause: err }),
      );
    }
  };

  constructor(socket: Socket, maxFrameSize: number) {
    this.socket = socket;
    this.decoder = new FrameDecoder(maxFrameSize);
    socket.setNoDelay(true);
    socket.on("data", this.onData);
    socket.on("drain", () => this.handlers.linkDrained());
    // Errors (ECONNRESET, EPIPE) are followed by "close"; the close path reports them.
    socket.on("error", noop);
    socket.on("close", () => {
      this.closed = true;
      this.decoder.stop();
      this.handlers.linkClosed();
    });
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  setMaxFrameSize(bytes: number): void {
    this.decoder.maxFrameSize = bytes;
  }

  setHandlers(handlers: FrameLinkHandlers): void {
    this.handlers = handlers;
  }

  writeFrames(frames: readonly Uint8Array[]): void {
    if (this.closed || this.socket.writableEnded) return;
    if (frames.length === 1) {
      const frame = frames[0]!;
      writeFrameHeader(frame);
      this.socket.write(frame);
      return;
    }
    this.socket.cork();
    for (const frame of frames) {
      writeFrameHeader(frame);
      this.socket.write(frame);
    }
    this.socket.uncork();
  }

  /** Feeds bytes as if they had arrived on the socket (the unread rest of a handed-off stream). */
  feed(bytes: Uint8Array): void {
    if (bytes.length > 0) this.onData(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  /**
   * Stops reading and lets go of the socket (for a handoff to another process): returns it with the
   * bytes read but not yet framed. Nothing more is read or reported here.
   */
  detach(): { socket: Socket; unread: Uint8Array } {
    const socket = this.socket;
    socket.pause();
    // Stop the handle reading now (pause() alone lets it go on filling the stream's buffer); clear
    // its flag as net.Socket does, so whoever wraps this handle next starts reading again.
    const handle = (socket as unknown as { _handle?: { readStop?: () => number; reading?: boolean } })._handle;
    if (handle) {
      handle.reading = false;
      handle.readStop?.();
    }
    socket.removeAllListeners("data");
    socket.removeAllListeners("drain");
    socket.removeAllListeners("close");
    const parts: Uint8Array[] = [this.decoder.take()];
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      parts.push(chunk);
    }
    this.closed = true;
    this.handlers = NO_HANDLERS;
    return { socket, unread: Buffer.concat(parts) };
  }

  end(): void {
    this.decoder.stop();
    if (!this.socket.writableEnded) this.socket.end();
  }

  destroy(): void {
    this.decoder.stop();
    this.socket.destroy();
  }
}

/** Runs the Parley handshake on an accepted TCP socket (e.g. from a cluster worker's own server). */
export function handleTcpSocket<C>(socket: Socket, options: ServerOptions<C>): void {
  try {
    acceptLink(new TcpFrameLink(socket, 0xffff), options, { suite: nodeSuite });
  } catch (err) {
    socket.destroy();
    options.onHandshakeError?.(
      err instanceof WireError ? err : new WireError("HANDSHAKE_FAILED", "cannot accept", { cause: err }),
    );
  }
}

/** A net.Server that speaks Parley on every connection; call `.listen(...)` on it. */
export function createTcpServer<C>(options: ServerOptions<C>): Server {
  return createServer({ noDelay: true }, (socket) => handleTcpSocket(socket, options));
}

/** Opens a TCP socket to host:port and resolves once connected. */
export function openTcpLink(
  host: string,
  port: number,
  timeoutMs: number,
  localAddress?: string,
): Promise<TcpFrameLink> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new WireError("CLOSED", `TCP connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(new WireError("CLOSED", `TCP connect to ${host}:${port} failed: ${err.message}`, { cause: err }));
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(new TcpFrameLink(socket, 0xffff));
    });
  });
}

/** A TCP connection leaving this process: its socket, its unread bytes and its session state. */
export interface DetachedTcpConnection {
  socket: Socket;
  unread: Uint8Array;
  state: HandoffState;
}

/**
 * Detaches a just-logged-in TCP connection so that another process can continue it on the same
 * socket (null when it is not a TCP connection or not in a state to move: then keep serving it).
 * The caller passes the socket's handle on and closes its own copy.
 */
export function detachTcpConnection(connection: Connection): DetachedTcpConnection | null {
  if (!(connection instanceof SecureConnection) || !(connection.link instanceof TcpFrameLink)) return null;
  if (!connection.canHandOff()) return null;
  const { socket, unread } = connection.link.detach();
  return { socket, unread, state: connection.exportForHandoff() };
}

/** Continues a handed-off session on `socket` (which must not have been read from in this process). */
export function resumeTcpConnection(
  socket: Socket,
  unread: Uint8Array,
  state: HandoffState,
  options: { limits?: Partial<TransportLimits>; scheduler?: Scheduler } = {},
): SecureConnection {
  const link = new TcpFrameLink(socket, 0xffff);
  const connection = new SecureConnection({
    link,
    send: CipherState.fromState(nodeSuite, PARLEY_NOISE_CIPHER, state.send),
    receive: CipherState.fromState(nodeSuite, PARLEY_NOISE_CIPHER, state.receive),
    remoteStaticPublicKey: state.remoteStaticPublicKey,
    pattern: state.pattern,
    limits: resolveLimits(options.limits),
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
  });
  connection.restoreFromHandoff(state);
  link.feed(unread);
  return connection;
}
