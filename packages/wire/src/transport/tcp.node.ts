/** Parley over raw TCP (node:net): 2-byte length-prefixed frames. */
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { WireError } from "../errors.ts";
import { nodeSuite } from "../noise/suite.node.ts";
import { FRAME_HEADER_SIZE, FrameDecoder, writeFrameHeader } from "./framing.ts";
import { acceptLink } from "./handshake-server.ts";
import type { FrameLink, FrameLinkHandlers } from "./link.ts";
import type { ServerOptions } from "./types.ts";

const noop = () => {};
const NO_HANDLERS: FrameLinkHandlers = { onFrame: noop, onError: noop, onClosed: noop, onDrain: noop };

export class TcpFrameLink implements FrameLink {
  readonly frameHeaderSize = FRAME_HEADER_SIZE;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private handlers: FrameLinkHandlers = NO_HANDLERS;
  private closed = false;
  private readonly deliver = (frame: Uint8Array): void => this.handlers.onFrame(frame);

  constructor(socket: Socket, maxFrameSize: number) {
    this.socket = socket;
    this.decoder = new FrameDecoder(maxFrameSize);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, this.deliver);
      } catch (err) {
        this.handlers.onError(
          err instanceof WireError ? err : new WireError("PROTOCOL_VIOLATION", "frame handling failed", { cause: err }),
        );
      }
    });
    socket.on("drain", () => this.handlers.onDrain());
    // Errors (ECONNRESET, EPIPE) are followed by "close"; the close path reports them.
    socket.on("error", noop);
    socket.on("close", () => {
      this.closed = true;
      this.decoder.stop();
      this.handlers.onClosed();
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
