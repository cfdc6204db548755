// `parley serve`: the whole server. With `workers: 0` everything runs in this
// process (tests, embedding); otherwise this process is the cluster primary:
// it prepares the data directory, forks the workers that hold connections,
// relays routing events and metrics between them, restarts a worker that dies,
// and runs the periodic purge of expired queue entries.
import cluster, { type Worker } from "node:cluster";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { type Clock, systemClock } from "./clock.ts";
import type { ServerConfig } from "./config.ts";
import type { MetricSnapshot } from "./metrics.ts";
import { isRouteBatch, relayBetweenWorkers } from "./routing/cluster.ts";
import { LocalRouter } from "./routing/local.ts";
import { loadOrCreateServerKey } from "./server-key.ts";
import { SqliteStorage } from "./storage/index.ts";
import type { Verifier } from "./verifier.ts";
import { startWorker } from "./worker.ts";

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
  // Opening the storage once here runs migrations before any worker races to do it.
  const storage = new SqliteStorage({ dataDir: config.dataDir, clock, retentionMs: config.retentionDays * 86_400_000 });
  const purgeNow = async () => {
    const n = await storage.purgeExpired(clock.now());
    if (n > 0) log.info({ purged: n }, "purged undelivered messages past retention");
    return n;
  };
  const purge = () =>
    purgeNow().catch((err) => {
      log.error({ err }, "purge failed");
      return 0;
    });
  await purge();
  const purgeTimer = setInterval(purge, PURGE_INTERVAL_MS);
  purgeTimer.unref();

  if (config.workers === 0) {
    const worker = await startWorker({
      config,
      log,
      router: new LocalRouter(),
      serverKey,
      clock,
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
  return startCluster(config, log, serverKey.publicKey, purgeNow, async () => {
    clearInterval(purgeTimer);
    await storage.close();
  });
}

// ----------------------------------------------------------------- cluster

interface ReadyMessage {
  parleyReady: { httpPort: number; tcpPort: number };
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
  cluster.setupPrimary({ exec: workerEntry(), silent: false });
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

  const onMessage = (worker: Worker, msg: unknown) => {
    if (isRouteBatch(msg)) return relayBetweenWorkers(live, msg);
    if (typeof msg !== "object" || msg === null) return;
    if ("parleyMetricsRequest" in msg) {
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

  const env = { PARLEY_WORKER_CONFIG: JSON.stringify(config) };
  const fork = () =>
    new Promise<ReadyMessage["parleyReady"]>((resolve, reject) => {
      const w = cluster.fork(env);
      const onReady = (msg: unknown) => {
        if (typeof msg === "object" && msg !== null && "parleyReady" in msg) {
          w.off("message", onReady);
          resolve((msg as ReadyMessage).parleyReady);
        }
      };
      w.on("message", onReady);
      w.once("exit", (code) => reject(new Error(`worker exited with code ${code} before it was ready`)));
    });

  cluster.on("exit", (worker, code, signal) => {
    if (shuttingDown) return;
    log.error({ worker: worker.process.pid, code, signal }, "worker died; starting a new one");
    fork().catch((err) => log.error({ err }, "could not restart worker"));
  });

  const ready = await Promise.all(Array.from({ length: config.workers }, fork));
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
    async close() {
      shuttingDown = true;
      cluster.off("message", onMessage);
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
      await closePrimary();
    },
  };
}
