// Direct links between the cluster's worker processes: every worker listens on a Unix socket
// (Linux abstract namespace: nothing to clean up) and opens one outgoing link to every other
// worker on first use. Messages sent within one event-loop turn travel as one frame (4-byte length
// + v8-serialized array), so bytes (envelopes) cross without base64 and JSON, and the primary is
// off the hot path (it relayed every event before, costing two IPC hops and its CPU).
//
// Carries the routing events (./cluster.ts) and the queue-shard calls (storage/sharded-storage.ts)
// on the same links, so a worker sees another worker's events in the order it sent them.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import type { Logger } from "pino";
import { record, timing } from "../debug-timing.ts";
import { StorageError } from "../storage/errors.ts";
import type { ShardLink, ShardOp } from "../storage/sharded-storage.ts";
import type { RouteEvent } from "./types.ts";

export type MeshMessage =
  | { t: "hello"; from: number }
  | { t: "route"; e: RouteEvent }
  | { t: "call"; id: number; op: ShardOp }
  | { t: "reply"; id: number; ok: true; v: unknown }
  | { t: "reply"; id: number; ok: false; code: string; msg: string };

export function meshAddress(meshId: string, index: number): string {
  const name = `parley-${meshId}-${index}`;
  return process.platform === "linux" ? `\0${name}` : join(tmpdir(), `${name}.sock`);
}

/** Reads length-prefixed frames from a socket. */
function readFrames(socket: Socket, onFrame: (frame: Buffer) => void): void {
  let pending: Buffer | null = null;
  socket.on("data", (chunk: Buffer) => {
    let data = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    let offset = 0;
    while (data.length - offset >= 4) {
      const length = data.readUInt32BE(offset);
      if (data.length - offset - 4 < length) break;
      onFrame(data.subarray(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    if (offset < data.length) {
      data = data.subarray(offset);
      pending = data;
    }
  });
}

class OutLink {
  socket: Socket | undefined;
  connected = false;
  queue: MeshMessage[] = [];
  scheduled = false;
  retryTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly peer: number,
    private readonly mesh: WorkerMesh,
  ) {}

  send(message: MeshMessage): void {
    this.queue.push(message);
    if (!this.socket) this.connect();
    if (this.connected && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private connect(): void {
    if (this.mesh.closed) return;
    const socket = createConnection(this.mesh.addressOf(this.peer));
    this.socket = socket;
    socket.setNoDelay?.(true);
    socket.on("connect", () => {
      this.connected = true;
      this.write([{ t: "hello", from: this.mesh.index }]);
      this.flush();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      const wasConnected = this.connected;
      this.socket = undefined;
      this.connected = false;
      this.mesh.linkLost(this.peer, wasConnected);
      // The peer is starting (not listening yet) or restarting: retry while there is something to send.
      if (this.queue.length > 0 && !this.mesh.closed) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          if (!this.socket) this.connect();
        }, 50);
      }
    });
  }

  flush(): void {
    this.scheduled = false;
    if (!this.connected || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.write(batch);
  }

  private write(batch: MeshMessage[]): void {
    const body = serialize(batch);
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(body.length, 0);
    const socket = this.socket!;
    socket.cork();
    socket.write(header);
    socket.write(body);
    socket.uncork();
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.queue = [];
    this.socket?.destroy();
  }
}

export class WorkerMesh implements ShardLink {
  closed = false;
  private server: Server | undefined;
  private readonly out = new Map<number, OutLink>();
  private readonly inbound = new Set<Socket>();
  private routeHandler: (event: RouteEvent) => void = () => {};
  /**
   * Until this worker's storage serves its shard, calls wait for it (in order). A peer that is up
   * sooner forwards enqueues and acks as soon as its first clients log in, as after a restart of
   * the whole server; rejecting them made those clients' connections fail with an internal error.
   */
  private callHandler: (op: ShardOp) => Promise<unknown> = (op) =>
    new Promise((resolve) => this.callsBeforeServe.push(() => resolve(this.callHandler(op))));
  private callsBeforeServe: (() => void)[] = [];
  private nextCall = 1;
  private readonly calls = new Map<number, { peer: number; resolve(v: unknown): void; reject(e: unknown): void }>();

  constructor(
    readonly index: number,
    readonly count: number,
    private readonly meshId: string,
    private readonly log?: Logger,
  ) {}

  addressOf(peer: number): string {
    return meshAddress(this.meshId, peer);
  }

  /** Starts listening for the other workers' links. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.accept(socket));
      this.server = server;
      server.once("error", reject);
      server.listen(this.addressOf(this.index), () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    this.inbound.add(socket);
    socket.setNoDelay?.(true);
    let from = -1;
    socket.on("error", () => {});
    socket.on("close", () => this.inbound.delete(socket));
    readFrames(socket, (frame) => {
      let batch: MeshMessage[];
      try {
        batch = deserialize(frame) as MeshMessage[];
      } catch (err) {
        this.log?.error({ err }, "undecodable mesh frame");
        socket.destroy();
        return;
      }
      for (const m of batch) {
        if (m.t === "hello") from = m.from;
        else this.receive(from, m);
      }
    });
  }

  private receive(from: number, m: MeshMessage): void {
    switch (m.t) {
      case "route":
        this.routeHandler(m.e);
        return;
      case "call":
        this.callHandler(m.op).then(
          (v) => this.send(from, { t: "reply", id: m.id, ok: true, v }),
          (err) =>
            this.send(from, {
              t: "reply",
              id: m.id,
              ok: false,
              code: err instanceof StorageError ? err.code : "INTERNAL",
              msg: err instanceof Error ? err.message : String(err),
            }),
        );
        return;
      case "reply": {
        const call = this.calls.get(m.id);
        if (!call) return;
        this.calls.delete(m.id);
        if (m.ok) call.resolve(m.v);
        else call.reject(new StorageError(m.code as StorageError["code"], m.msg));
        return;
      }
    }
  }

  send(peer: number, message: MeshMessage): void {
    if (this.closed || peer < 0 || peer >= this.count || peer === this.index) return;
    let link = this.out.get(peer);
    if (!link) {
      link = new OutLink(peer, this);
      this.out.set(peer, link);
    }
    link.send(message);
  }

  broadcast(message: MeshMessage): void {
    for (let p = 0; p < this.count; p++) if (p !== this.index) this.send(p, message);
  }

  /** A link to `peer` closed: its answers to our calls will never come (it restarts or is gone). */
  linkLost(peer: number, wasConnected: boolean): void {
    if (!wasConnected) return;
    for (const [id, call] of this.calls) {
      if (call.peer !== peer) continue;
      this.calls.delete(id);
      call.reject(new StorageError("BUSY", `queue shard ${peer} is restarting`));
    }
  }

  onRoute(handler: (event: RouteEvent) => void): void {
    this.routeHandler = handler;
  }

  // ShardLink
  call(shard: number, op: ShardOp): Promise<unknown> {
    if (this.closed) return Promise.reject(new StorageError("CLOSED", "storage is closed"));
    return new Promise((resolve, reject) => {
      const id = this.nextCall++;
      if (timing) {
        const t0 = performance.now();
        const done = resolve;
        resolve = (v: unknown) => {
          record(`mesh-${op.op}`, performance.now() - t0);
          done(v);
        };
      }
      this.calls.set(id, { peer: shard, resolve, reject });
      this.send(shard, { t: "call", id, op });
    });
  }

  serve(handler: (op: ShardOp) => Promise<unknown>): void {
    this.callHandler = handler;
    const waiting = this.callsBeforeServe;
    this.callsBeforeServe = [];
    for (const run of waiting) run();
  }

  async close(): Promise<void> {
    // Let replies queued in this turn leave first.
    await new Promise((r) => setImmediate(r));
    for (const link of this.out.values()) link.flush();
    this.closed = true;
    for (const link of this.out.values()) link.close();
    for (const s of this.inbound) s.destroy();
    for (const call of this.calls.values()) call.reject(new StorageError("CLOSED", "storage is closed"));
    this.calls.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
