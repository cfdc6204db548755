// One worker process of `parley serve`: an HTTP listener (WebSocket transport
// on /ws, /healthz, /metrics), a raw TCP transport listener, and the gateway
// behind both. Under node:cluster the workers share the listening sockets (HTTP
// through the primary's round-robin, TCP accepted by each worker itself: see
// ./tcp-listener.ts); with `workers: 0` this runs inside the calling process.
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type AddressInfo, type ListenOptions, Socket, type Server as TcpServer } from "node:net";
import {
  attachWebSocketServer,
  CloseCode,
  type Connection,
  createTcpServer,
  detachTcpConnection,
  resumeTcpConnection,
  type ServerOptions,
} from "@parley/wire";
import type { Logger } from "pino";
import type { WebSocketServer } from "ws";
import { type Clock, systemClock } from "./clock.ts";
import type { ServerConfig } from "./config.ts";
import { Gateway, type LoginContext } from "./gateway/gateway.ts";
import { decodeHandoff, encodeHandoff, type HandoffMessage, rawHandleOf } from "./handoff.ts";
import { createMediaService, isMediaPath } from "./media/index.ts";
import { type MetricSnapshot, Metrics, mergeSnapshots, renderPrometheus } from "./metrics.ts";
import type { Router } from "./routing/types.ts";
import type { ServerKeyPair } from "./server-key.ts";
import { ShardedStorage, type ShardLink } from "./storage/sharded-storage.ts";
import { LogVerifier, type Verifier } from "./verifier.ts";

/** A primary and up to 4 linked companions, as WhatsApp allows. */
export const MAX_DEVICES_PER_ACCOUNT = 5;

export interface WorkerDeps {
  config: ServerConfig;
  log: Logger;
  router: Router;
  serverKey: ServerKeyPair;
  clock?: Clock;
  verifier?: Verifier;
  /**
   * The storage to serve from (kept open by close()); default: a ShardedStorage on config.dataDir
   * for `shard` (default: the only shard), closed with the worker.
   */
  storage?: ShardedStorage;
  /** This worker's queue shard among `count` workers; several shards need `shardLink`. */
  shard?: { index: number; count: number };
  shardLink?: ShardLink;
  /** Metrics of every worker (the cluster asks the primary); default: this worker's only. */
  collectMetrics?: () => Promise<{ snapshots: MetricSnapshot[][]; workers: number }>;
  /**
   * Passes a logged-in TCP connection to the worker owning its account's queue shard (./handoff.ts);
   * `done` is called once the handle has left this process. Without it, connections stay where they land.
   */
  handOff?: (message: HandoffMessage, handle: object, done: (error: Error | null) => void) => void;
  /**
   * Makes the TCP transport's server listen and resolves with its port (a cluster worker shares one
   * listening socket, ./tcp-listener.ts); default: listen on config.tcpPort and config.host.
   */
  listenTcp?: (server: TcpServer) => Promise<number>;
}

export interface WorkerHandle {
  gateway: Gateway;
  metrics: Metrics;
  httpPort: number;
  tcpPort: number;
  /** Takes over a connection another worker handed off (./handoff.ts). */
  adopt(message: HandoffMessage, handle: object): void;
  /** Stops accepting, closes every connection with SERVER_SHUTDOWN, flushes storage. */
  close(): Promise<void>;
}

/**
 * Makes `server` listen, on a port (`{ port, host }`, with `exclusive` to bypass node:cluster) or on
 * a listening socket's raw handle received from another process; resolves with the port.
 */
export function listenOn(server: HttpServer | TcpServer, target: ListenOptions | object): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(target, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startWorker(deps: WorkerDeps): Promise<WorkerHandle> {
  const { config, log } = deps;
  const clock = deps.clock ?? systemClock;
  const metrics = new Metrics();
  const ownsStorage = deps.storage === undefined;
  const storage =
    deps.storage ??
    new ShardedStorage({
      dataDir: config.dataDir,
      clock,
      retentionMs: config.retentionDays * 24 * 3600 * 1000,
      maxDevicesPerAccount: MAX_DEVICES_PER_ACCOUNT,
      shard: deps.shard ?? { index: 0, count: 1 },
      ...(deps.shardLink ? { link: deps.shardLink } : {}),
    });
  const gateway = new Gateway({
    storage,
    router: deps.router,
    metrics,
    log,
    clock,
    verifier: deps.verifier ?? new LogVerifier(log),
    config,
  });
  const sendOff = storage.count > 1 ? deps.handOff : undefined;
  /** Hands a just-logged-in TCP connection to the owner of its shard; false: serve it here. */
  const handOff = (connection: Connection, context: LoginContext | undefined): boolean => {
    if (!sendOff || context?.mode !== "device") return false;
    const owner = storage.queueOwner(context.account.id);
    if (owner === storage.shardIndex) return false; // this worker owns the queue: serve it here
    const detached = detachTcpConnection(connection);
    if (!detached) return false;
    const handle = rawHandleOf(detached.socket);
    const login = { accountId: context.account.id, deviceId: context.device.deviceId, passive: context.passive };
    const message = encodeHandoff(owner, login, detached.unread, detached.state);
    if (!handle) return true; // the socket is already gone; so is the client's connection
    metrics.handoffs.inc();
    sendOff(message, handle, () => detached.socket.destroy()); // closes only this process's copy
    return true;
  };
  const limits = { idleTimeoutMs: 0 };
  const transportOptions: ServerOptions<LoginContext> = {
    staticKeyPair: deps.serverKey,
    authenticate: (remoteStatic, payload) => gateway.authenticate(remoteStatic, payload),
    onConnection: (connection, login) => {
      if (!sendOff) return gateway.accept(connection, login.context);
      // After the transport has fed this connection the frames that came with the login.
      queueMicrotask(() => {
        try {
          if (handOff(connection, login.context)) return;
        } catch (err) {
          log.error({ err }, "connection handoff failed; serving it here");
        }
        gateway.accept(connection, login.context);
      });
    },
    onHandshakeError: (err) => {
      metrics.handshakeFailures.inc();
      log.debug({ code: err.code, msg: err.message }, "handshake failed");
    },
    limits,
  };

  const media = createMediaService({ config, storage, clock, log });
  const collect = deps.collectMetrics ?? (async () => ({ snapshots: [metrics.snapshot()], workers: 1 }));
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "ok", pid: process.pid, connections: gateway.sessionCount() }));
      return;
    }
    if (isMediaPath(req.url)) return media.handle(req, res);
    if (req.url === "/metrics") {
      collect()
        .then(async ({ snapshots, workers }) => {
          const merged = mergeSnapshots(snapshots);
          // Queue depth is global (this worker reads every shard's file), so it is sampled here once, not summed.
          const depth = merged.find((m) => m.name === metrics.queueDepth.name);
          if (depth) depth.values = [await storage.totalDepth()];
          res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
          res.end(renderPrometheus(merged, workers));
        })
        .catch((err) => {
          log.error({ err }, "metrics collection failed");
          res.writeHead(500).end();
        });
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: Parley speaks its protocol on /ws (WebSocket) and on the TCP port\n");
  });
  const wss: WebSocketServer = attachWebSocketServer(http, { ...transportOptions, path: "/ws" });
  // ws re-emits the HTTP server's errors; listenOn() below handles them (e.g. the port in use), and an
  // 'error' event without a listener would end the process before the cause could be reported.
  wss.on("error", (err) => log.debug({ err }, "HTTP server error (re-emitted by ws)"));
  const tcp = config.tcpPort === 0 ? null : createTcpServer(transportOptions);

  const httpPort = await listenOn(http, { port: config.port, host: config.host });
  const tcpPort = tcp ? await (deps.listenTcp?.(tcp) ?? listenOn(tcp, { port: config.tcpPort, host: config.host })) : 0;

  return {
    gateway,
    metrics,
    httpPort,
    tcpPort,
    adopt(message, handle) {
      const { login, unread, state } = decodeHandoff(message);
      const socket = new Socket({ handle, readable: true, writable: true } as ConstructorParameters<typeof Socket>[0]);
      const connection = resumeTcpConnection(socket, unread, state, { limits });
      gateway.adopt(connection, login).catch((err) => {
        log.error({ err }, "could not take over a handed-off connection");
        connection.close(CloseCode.INTERNAL_ERROR, "internal error");
      });
    },
    async close() {
      const closed = Promise.all([
        new Promise<void>((r) => http.close(() => r())),
        tcp ? new Promise<void>((r) => tcp.close(() => r())) : Promise.resolve(),
      ]);
      gateway.closeAll("server shutting down");
      media.close();
      await new Promise((r) => setTimeout(r, 50)); // let the close records leave
      wss.close();
      http.closeAllConnections();
      await closed;
      await deps.router.close();
      if (ownsStorage) await storage.close();
    },
  };
}
