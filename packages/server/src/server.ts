// `parley serve`: the whole server. With `workers: 0` everything runs in this
// process (tests, embedding); otherwise this process is the cluster primary:
// it prepares the data directory, forks the workers that hold connections,
// relays routing events and metrics between them, restarts a worker that dies,
// and runs the periodic purge of expired queue entries.
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { type Clock, systemClock } from "./clock.ts";
import type { ServerConfig } from "./config.ts";
import { isHandoffMessage } from "./handoff.ts";
import type { MetricSnapshot } from "./metrics.ts";
import { LocalRouter } from "./routing/local.ts";
import { loadOrCreateServerKey } from "./server-key.ts";
import { SqliteStorage } from "./storage/index.ts";
import { purgeQueueShards, rebalanceQueueShards, ShardedStorage } from "./storage/sharded-storage.ts";
import { isTcpListenerOffer, isTcpListenerRequest, TCP_LISTENER_ENV, type TcpListenerGrant } from "./tcp-listener.ts";
import type { Verifier } from "./verifier.ts";
import { MAX_DEVICES_PER_ACCOUNT, startWorker } from "./worker.ts";

export interface ServerHandle {
  httpPort: number;
  tcpPort: number;
  /** The server's static public key (clients pin it). */
  publicKey: Uint8Array;
  /** Runs the purge of entries older than the retention now (it also runs at start and hourly). */
  purgeNow(): Promise<number>;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  verifier?: Verifier;
  log?: Logger;
}

/** How often the primary purges undelivered entries older than the retention. */
const PURGE_INTERVAL_MS = 60 * 60 * 1000;

export function createLogger(config: Pick<ServerConfig, "logLevel">): Logger {
  return pino({ level: config.logLevel, base: { pid: process.pid } });
}

export async function startServer(config: ServerConfig, options: StartOptions = {}): Promise<ServerHandle> {
  const log = options.log ?? createLogger(config);
  const clock = options.clock ?? systemClock;
  const serverKey = loadOrCreateServerKey(config.dataDir);
  const retentionMs = config.retentionDays * 86_400_000;
  // Opening the storage once here runs migrations before any worker races to do it, and the queue
  // shards are brought in line with the worker count (one shard per worker; one in-process).
  const shards = Math.max(config.workers, 1);
  const shared = new SqliteStorage({ dataDir: config.dataDir, clock, retentionMs });
  const moved = await rebalanceQueueShards(config.dataDir, shards);
  if (moved > 0) log.info({ moved, shards }, "moved queue entries to their shards");

  if (config.workers === 0) {
    await shared.close();
    const storage = new ShardedStorage({
      dataDir: config.dataDir,
      clock,
      retentionMs,
      maxDevicesPerAccount: MAX_DEVICES_PER_ACCOUNT,
      shard: { index: 0, count: 1 },
    });
    const purgeNow = async () => {
      const n = await storage.purgeExpired(clock.now());
      if (n > 0) log.info({ purged: n }, "purged undelivered messages past retention");
      return n;
    };
    const purgeTimer = startPurging(purgeNow, log);
    await purgeNow().catch((err) => log.error({ err }, "purge failed"));
    const worker = await startWorker({
      config,
      log,
      router: new LocalRouter(),
      serverKey,
      clock,
      storage,
      ...(options.verifier ? { verifier: options.verifier } : {}),
    });
    log.info({ http: worker.httpPort, tcp: worker.tcpPort, dataDir: config.dataDir }, "parley server listening");
    return {
      httpPort: worker.httpPort,
      tcpPort: worker.tcpPort,
      publicKey: serverKey.publicKey,
      purgeNow,
      async close() {
        clearInterval(purgeTimer);
        await worker.close();
        await storage.close();
      },
    };
  }
  // The primary purges the shard files itself (a short write-lock share with each owner, hourly).
  const purgeNow = async () => {
    const now = clock.now();
    const n = (await shared.purgeExpired(now)) + (await purgeQueueShards(config.dataDir, shards, now - retentionMs));
    if (n > 0) log.info({ purged: n }, "purged undelivered messages past retention");
    return n;
  };
  await purgeNow().catch((err) => log.error({ err }, "purge failed"));
  const purgeTimer = startPurging(purgeNow, log);
  return startCluster(config, log, serverKey.publicKey, purgeNow, async () => {
    clearInterval(purgeTimer);
    await shared.close();
  });
}

function startPurging(purgeNow: () => Promise<number>, log: Logger): NodeJS.Timeout {
  const timer = setInterval(() => purgeNow().catch((err) => log.error({ err }, "purge failed")), PURGE_INTERVAL_MS);
  timer.unref();
  return timer;
}

// ----------------------------------------------------------------- cluster

interface ReadyMessage {
  parleyReady: { httpPort: number; tcpPort: number };
}
/** A worker whose start-up failed says why before it exits (cluster-worker.ts). */
interface StartFailedMessage {
  parleyStartFailed: string;
}
interface MetricsRequest {
  parleyMetricsRequest: number;
}
interface MetricsSnapshotMessage {
  parleyMetricsSnapshot: number;
  snapshot: MetricSnapshot[];
}

function workerEntry(): string {
  const self = fileURLToPath(import.meta.url);
  return self.replace(/server\.(ts|js)$/, "cluster-worker.$1");
}

async function startCluster(
  config: ServerConfig,
  log: Logger,
  publicKey: Uint8Array,
  purgeNow: () => Promise<number>,
  closePrimary: () => Promise<void>,
): Promise<ServerHandle> {
  // --worker-semi-space-mb: the workers' young generation (see ServerConfig.workerSemiSpaceMb).
  const semiSpace = config.workerSemiSpaceMb ?? 0;
  const execArgv = semiSpace > 0 ? [...process.execArgv, `--max-semi-space-size=${semiSpace}`] : process.execArgv;
  cluster.setupPrimary({ exec: workerEntry(), silent: false, execArgv });
  let shuttingDown = false;
  const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  // A /metrics scrape lands on one worker; the primary gathers every worker's snapshot for it.
  interface PendingScrape {
    from: Worker;
    reqId: number;
    snapshots: MetricSnapshot[][];
    expected: number;
    timer: NodeJS.Timeout;
  }
  const scrapes = new Map<number, PendingScrape>();
  let nextScrape = 1;
  const answer = (id: number) => {
    const p = scrapes.get(id);
    if (!p) return;
    scrapes.delete(id);
    clearTimeout(p.timer);
    if (p.from.isConnected())
      p.from.send({ parleyMetricsResult: p.reqId, snapshots: p.snapshots, workers: live().length });
  };

  // The TCP listening socket's raw handle, held here (never polled: no accept loop in the primary)
  // for the workers that ask, restarted ones included (./tcp-listener.ts). Until slot 0 has created
  // it, the workers that asked wait.
  let tcpListener: { close?: () => void } | undefined;
  let awaitingTcpListener: Worker[] = [];
  const grantTcpListener = (w: Worker) => {
    if (w.isConnected()) w.send({ parleyTcpListener: true } satisfies TcpListenerGrant, tcpListener as never);
  };

  const onMessage = (worker: Worker, msg: unknown, handle: unknown) => {
    if (typeof msg !== "object" || msg === null) return;
    if (isTcpListenerOffer(msg)) {
      if (!handle || tcpListener) return;
      tcpListener = handle as { close?: () => void };
      for (const w of awaitingTcpListener) grantTcpListener(w);
      awaitingTcpListener = [];
    } else if (isTcpListenerRequest(msg)) {
      if (tcpListener) grantTcpListener(worker);
      else awaitingTcpListener.push(worker);
    } else if (isHandoffMessage(msg)) {
      // A worker passes a logged-in connection to the worker owning its queue shard (./handoff.ts).
      // The handle arrives raw (not read from here); this process's copy is closed once it is sent on.
      const raw = handle as { close?: () => void } | undefined;
      const target = workerBySlot.get(msg.parleyHandoff.to);
      if (!raw) return;
      if (!target?.isConnected()) {
        raw.close?.(); // the target is restarting: the client reconnects
        return;
      }
      target.send(msg, raw as never, () => raw.close?.());
    } else if ("parleyMetricsRequest" in msg) {
      const id = nextScrape++;
      const workers = live();
      scrapes.set(id, {
        from: worker,
        reqId: (msg as MetricsRequest).parleyMetricsRequest,
        snapshots: [],
        expected: workers.length,
        timer: setTimeout(() => answer(id), 2000), // a stuck worker must not hang the scrape
      });
      for (const w of workers) w.send({ parleyMetricsCollect: id });
    } else if ("parleyMetricsSnapshot" in msg) {
      const m = msg as MetricsSnapshotMessage;
      const p = scrapes.get(m.parleyMetricsSnapshot);
      if (!p) return;
      p.snapshots.push(m.snapshot);
      if (p.snapshots.length >= p.expected) answer(m.parleyMetricsSnapshot);
    }
  };
  cluster.on("message", onMessage);

  // Worker i owns queue shard i; a restarted worker takes over its predecessor's slot. The mesh id
  // names this cluster's worker-to-worker sockets.
  const meshId = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const slotOf = new Map<number, number>(); // cluster worker id → slot
  const workerBySlot = new Map<number, Worker>();
  const fork = (slot: number) =>
    new Promise<ReadyMessage["parleyReady"]>((resolve, reject) => {
      const w = cluster.fork({
        PARLEY_WORKER_CONFIG: JSON.stringify(config),
        PARLEY_WORKER_INDEX: String(slot),
        PARLEY_MESH_ID: meshId,
        // Slot 0 creates the TCP listening socket at start-up; every other start receives it.
        [TCP_LISTENER_ENV]: slot === 0 && tcpListener === undefined ? "create" : "receive",
      });
      slotOf.set(w.id, slot);
      workerBySlot.set(slot, w);
      let failure: string | undefined;
      const onReady = (msg: unknown) => {
        if (typeof msg !== "object" || msg === null) return;
        if ("parleyReady" in msg) {
          w.off("message", onReady);
          resolve((msg as ReadyMessage).parleyReady);
        } else if ("parleyStartFailed" in msg) {
          failure = String((msg as StartFailedMessage).parleyStartFailed);
        }
      };
      w.on("message", onReady);
      w.once("exit", (code) =>
        reject(new Error(`worker ${slot} could not start: ${failure ?? `it exited with code ${code}`}`)),
      );
    });

  // Until every worker is ready, a worker that exits fails the start (below) instead of being
  // restarted: a cause such as a port in use would only make it fail again, for ever.
  let started = false;
  let exitedDuringStart: string | undefined;
  const onExit = (worker: Worker, code: number, signal: string) => {
    if (shuttingDown) return;
    const slot = slotOf.get(worker.id) ?? 0;
    if (!started) {
      exitedDuringStart ??= `worker ${slot} exited during start-up (code ${code}, signal ${signal})`;
      return;
    }
    log.error({ worker: worker.process.pid, code, signal }, "worker died; starting a new one");
    slotOf.delete(worker.id);
    fork(slot).catch((err) => log.error({ err }, "could not restart worker"));
  };
  cluster.on("exit", onExit);

  const stopWorkers = async () => {
    shuttingDown = true;
    cluster.off("message", onMessage);
    cluster.off("exit", onExit);
    await Promise.all(
      live().map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => w.process.kill("SIGKILL"), 5000);
            w.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            w.process.kill("SIGTERM");
          }),
      ),
    );
    tcpListener?.close?.();
    await closePrimary();
  };

  let ready: ReadyMessage["parleyReady"][];
  try {
    ready = await Promise.all(Array.from({ length: config.workers }, (_, slot) => fork(slot)));
    // A worker that was ready and then died while others were still starting fails the start too.
    if (exitedDuringStart) throw new Error(exitedDuringStart);
  } catch (err) {
    await stopWorkers();
    throw err;
  }
  started = true;
  const { httpPort, tcpPort } = ready[0]!;
  log.info(
    { http: httpPort, tcp: tcpPort, workers: config.workers, dataDir: config.dataDir },
    "parley server listening",
  );

  return {
    httpPort,
    tcpPort,
    publicKey,
    purgeNow,
    close: stopWorkers,
  };
}
