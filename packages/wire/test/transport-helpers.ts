/** Test helpers for the transport: servers on ephemeral 127.0.0.1 ports and an in-memory FrameLink pair. */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo, Server } from "node:net";
import { WireError } from "../src/errors.ts";
import {
  attachWebSocketServer,
  type Connection,
  createTcpServer,
  generateStaticKeyPair,
  LoginRejectedError,
  type ServerOptions,
  type StaticKeyPair,
  type TransportLimits,
} from "../src/transport/index.node.ts";
import type { FrameLink, FrameLinkHandlers } from "../src/transport/index.ts";

export interface TestServer {
  url: string;
  staticKeyPair: StaticKeyPair;
  connections: Connection[];
  logins: { key: Uint8Array; payload: Uint8Array }[];
  handshakeErrors: WireError[];
  close(): Promise<void>;
}

export type Kind = "tcp" | "ws";

/** An echo server: every stanza is sent back; logins whose payload starts with "bad" are refused. */
export async function startServer(
  kind: Kind,
  overrides: Partial<ServerOptions> & { limits?: Partial<TransportLimits> } = {},
): Promise<TestServer> {
  const staticKeyPair = overrides.staticKeyPair ?? generateStaticKeyPair();
  const connections: Connection[] = [];
  const logins: TestServer["logins"] = [];
  const handshakeErrors: WireError[] = [];
  const options: ServerOptions = {
    staticKeyPair,
    authenticate: async (key, payload) => {
      logins.push({ key, payload });
      if (new TextDecoder().decode(payload).startsWith("bad")) throw new LoginRejectedError("bad credentials");
      return new TextEncoder().encode(`welcome ${payload.length}`);
    },
    onConnection: (connection) => {
      connections.push(connection);
      connection.onStanza((stanza) => {
        if (connection.state === "open") connection.send(stanza);
      });
    },
    onHandshakeError: (error) => handshakeErrors.push(error),
    ...overrides,
  };
  let server: Server | HttpServer;
  if (kind === "tcp") {
    server = createTcpServer(options);
  } else {
    const http = createHttpServer();
    attachWebSocketServer(http, { ...options, path: "/parley" });
    server = http;
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: kind === "tcp" ? `tcp://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/parley`,
    staticKeyPair,
    connections,
    logins,
    handshakeErrors,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) if (c.state === "open") c.close(1001, "test over");
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
        setTimeout(resolve, 500).unref();
      }),
  };
}

/** Waits until `predicate` holds (polling), failing after `ms`. */
export async function until(predicate: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const bytes = (text: string) => new TextEncoder().encode(text);
export const text = (data: Uint8Array) => new TextDecoder().decode(data);

const noop = () => {};

/** One end of an in-memory link; frames reach the peer on a later macrotask, like a socket. */
export class MemoryLink implements FrameLink {
  readonly frameHeaderSize = 0;
  peer!: MemoryLink;
  handlers: FrameLinkHandlers = { frameReceived: noop, linkFailed: noop, linkClosed: noop, linkDrained: noop };
  /** Every writeFrames call, with copies of its frames. */
  readonly writes: Uint8Array[][] = [];
  maxFrameSize = 65535;
  closed = false;
  /** Tests may intercept frames on their way to the peer. */
  tamper: ((frame: Uint8Array) => Uint8Array[]) | null = null;

  get bufferedAmount(): number {
    return 0;
  }
  setMaxFrameSize(bytes: number): void {
    this.maxFrameSize = bytes;
  }
  setHandlers(handlers: FrameLinkHandlers): void {
    this.handlers = handlers;
  }
  writeFrames(frames: readonly Uint8Array[]): void {
    if (this.closed) return;
    const copies = frames.map((f) => f.slice());
    this.writes.push(copies);
    setImmediate(() => {
      for (const frame of copies) {
        for (const f of this.tamper ? this.tamper(frame) : [frame]) this.peer.receive(f);
      }
    });
  }
  receive(frame: Uint8Array): void {
    if (this.closed) return;
    if (frame.length > this.maxFrameSize) {
      this.handlers.linkFailed(new WireError("FRAME_TOO_LARGE", "frame too large"));
      return;
    }
    this.handlers.frameReceived(frame);
  }
  end(): void {
    setImmediate(() => {
      this.close();
      this.peer.close();
    });
  }
  destroy(): void {
    this.close();
    setImmediate(() => this.peer.close());
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.linkClosed();
  }
}

export function memoryLinkPair(): [MemoryLink, MemoryLink] {
  const a = new MemoryLink();
  const b = new MemoryLink();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
