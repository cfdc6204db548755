// Entry point of a cluster worker process (forked by server.ts).
import type { ServerConfig } from "./config.ts";
import { isHandoffMessage, rawHandleOf } from "./handoff.ts";
import type { MetricSnapshot } from "./metrics.ts";
import { ClusterWorkerRouter } from "./routing/cluster.ts";
import { WorkerMesh } from "./routing/mesh.ts";
import { createLogger } from "./server.ts";
import { loadOrCreateServerKey } from "./server-key.ts";
import { isTcpListenerGrant, TCP_LISTENER_ENV } from "./tcp-listener.ts";
import { listenOn, startWorker } from "./worker.ts";

const config = JSON.parse(process.env.PARLEY_WORKER_CONFIG ?? "null") as ServerConfig | null;
if (!config) {
  console.error("cluster-worker: PARLEY_WORKER_CONFIG is missing; start the server with `parley serve`");
  process.exit(2);
}
const log = createLogger(config);
// When the whole process group is signalled at once the primary may be gone before we finish
// closing: IPC writes then fail with EPIPE, which must not crash an orderly shutdown.
process.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE" && err.code !== "ERR_IPC_CHANNEL_CLOSED") log.error({ err }, "worker process error");
});
// Which queue shard this worker owns (stable across restarts of this slot) and the mesh it talks on.
const index = Number(process.env.PARLEY_WORKER_INDEX ?? "0");
// The TCP listening socket (./tcp-listener.ts): this worker creates it, or asks the primary for it.
const createsTcpListener = process.env[TCP_LISTENER_ENV] === "create";
const tcpListenerHandle = new Promise<object>((resolve) => {
  const onGrant = (msg: unknown, handle: unknown) => {
    if (typeof msg === "object" && msg !== null && isTcpListenerGrant(msg) && handle) {
      process.off("message", onGrant);
      resolve(handle as object);
    }
  };
  process.on("message", onGrant);
});
const meshId = process.env.PARLEY_MESH_ID ?? String(process.ppid);
const mesh = new WorkerMesh(index, config.workers, meshId, log);
await mesh.listen();
const pending = new Map<number, (r: { snapshots: MetricSnapshot[][]; workers: number }) => void>();
let nextReq = 1;

/** Tells the primary why this worker cannot start (e.g. the TCP port is in use), then exits. */
const startFailed = (err: unknown): Promise<never> => {
  const reason = err instanceof Error ? err.message : String(err);
  log.error({ err }, "worker could not start");
  if (process.send) process.send({ parleyStartFailed: reason }, () => process.exit(1));
  else process.exit(1);
  return new Promise<never>(() => {}); // the exit follows once the message has left
};

const worker = await startWorker({
  config,
  log,
  router: new ClusterWorkerRouter(mesh),
  shard: { index, count: config.workers },
  shardLink: mesh,
  serverKey: loadOrCreateServerKey(config.dataDir),
  // Through the primary, which relays the handle to the worker of the target slot.
  handOff: (message, handle, done) => {
    if (!process.send) return done(new Error("no IPC channel"));
    process.send(message, handle as never, {}, (err) => done(err ?? null));
  },
  listenTcp: async (tcp) => {
    if (createsTcpListener) {
      // exclusive: bound here, not through node:cluster's primary.
      const port = await listenOn(tcp, { port: config.tcpPort, host: config.host, exclusive: true });
      const handle = rawHandleOf(tcp);
      if (!handle) throw new Error("the TCP server has no listening handle to share");
      process.send?.({ parleyTcpListenerOffer: true }, handle as never);
      return port;
    }
    process.send?.({ parleyTcpListenerRequest: true });
    return listenOn(tcp, await tcpListenerHandle);
  },
  collectMetrics: () =>
    new Promise((resolve) => {
      const id = nextReq++;
      pending.set(id, resolve);
      process.send?.({ parleyMetricsRequest: id });
    }),
}).catch(startFailed);

process.on("message", (msg: unknown, handle: unknown) => {
  if (typeof msg !== "object" || msg === null) return;
  if (isHandoffMessage(msg)) {
    if (handle) worker.adopt(msg, handle as object);
  } else if ("parleyMetricsCollect" in msg) {
    process.send?.({
      parleyMetricsSnapshot: (msg as { parleyMetricsCollect: number }).parleyMetricsCollect,
      snapshot: worker.metrics.snapshot(),
    });
  } else if ("parleyMetricsResult" in msg) {
    const m = msg as { parleyMetricsResult: number; snapshots: MetricSnapshot[][]; workers: number };
    pending.get(m.parleyMetricsResult)?.({ snapshots: m.snapshots, workers: m.workers });
    pending.delete(m.parleyMetricsResult);
  }
});

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await worker.close().catch((err) => log.error({ err }, "error while stopping"));
  await mesh.close().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", () => {}); // the primary decides when workers stop
process.on("disconnect", stop);

process.send?.({ parleyReady: { httpPort: worker.httpPort, tcpPort: worker.tcpPort } });
