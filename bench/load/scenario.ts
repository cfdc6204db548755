// The load scenarios over a pool of generator processes: account set-up
// (registration or cache), logins, online pairs (saturated or paced) and the
// offline store + drain, each with CPU measured from /proc for the server
// process tree and the generator processes.
import { accountKeyPair, fromHex, type LoadAccount, readAccountCache, writeAccountCache } from "./accounts.ts";
import { loopbackAddress, openLoadConnection } from "./connection.ts";
import { CpuMeter, processTree } from "./cpu.ts";
import type { ConnectReport, DrainReport, StoreReport, TrafficReport } from "./generator.ts";
import { Histogram } from "./histogram.ts";
import type { GeneratorPool } from "./pool.ts";

/** Source addresses per generator process: 127.0.0.(2 + 4p) ... (5 + 4p). */
export const ADDRESSES_PER_PROCESS = 4;
/** Sockets per generator process stay below the 20,000 open-file limit (plus pipes, files). */
export const MAX_CONNECTIONS_PER_PROCESS = 19_000;

export function addressesOf(proc: number): string[] {
  return Array.from({ length: ADDRESSES_PER_PROCESS }, (_, i) => loopbackAddress(2 + proc * ADDRESSES_PER_PROCESS + i));
}

export interface CpuPoint {
  serverPercent: number;
  generatorPercent: number;
  /** Each server process's % of one core, busiest first (the primary and every worker). */
  serverProcessesPercent: number[];
  /** Each generator process's % of one core, busiest first. */
  generatorProcessesPercent: number[];
  serverCpuMs: number;
  generatorCpuMs: number;
  wallMs: number;
}

export class CpuMeters {
  readonly server: CpuMeter;
  readonly generator: CpuMeter;
  constructor(serverRootPid: number | undefined, generatorPids: () => readonly number[]) {
    this.server = new CpuMeter(() => (serverRootPid === undefined ? [] : processTree(serverRootPid)));
    this.generator = new CpuMeter(generatorPids);
  }

  start() {
    return { server: this.server.sample(), generator: this.generator.sample() };
  }

  stop(started: ReturnType<CpuMeters["start"]>): CpuPoint {
    const s = this.server.since(started.server);
    const g = this.generator.since(started.generator);
    return {
      serverPercent: s.percent,
      generatorPercent: g.percent,
      serverProcessesPercent: s.perProcess,
      generatorProcessesPercent: g.perProcess,
      serverCpuMs: s.cpuMs,
      generatorCpuMs: g.cpuMs,
      wallMs: s.wallMs,
    };
  }
}

// ---------------------------------------------------------------- accounts

export interface AccountSetup {
  accounts: LoadAccount[];
  serverKey: string;
  registered: number;
  fromCache: number;
  ms: number;
}

/** Is the cached set still valid on this server? (the first account logs in with IK) */
async function cacheStillValid(url: string, serverKey: string, account: LoadAccount): Promise<boolean> {
  try {
    const opened = await openLoadConnection({
      url,
      keyPair: accountKeyPair(account),
      serverKey: fromHex(serverKey),
      user: account.user,
      device: account.device,
    });
    opened.conn.start(() => {});
    await opened.conn.close();
    return opened.pattern === "IK";
  } catch {
    return false;
  }
}

/**
 * `count` registered accounts: from the cache of `dataDir` when it holds enough valid ones,
 * registering the rest (spread over the generator processes), then the cache is rewritten.
 * `cache: false` (fresh temporary server) neither reads nor writes it.
 */
export async function prepareAccounts(
  pool: GeneratorPool,
  options: { url: string; dataDir: string; count: number; cache: boolean },
): Promise<AccountSetup> {
  const started = performance.now();
  let cached = options.cache ? readAccountCache(options.dataDir) : undefined;
  if (
    cached &&
    cached.accounts.length > 0 &&
    !(await cacheStillValid(options.url, cached.serverKey, cached.accounts[0]!))
  ) {
    cached = undefined;
  }
  const have = cached ? cached.accounts.slice(0, options.count) : [];
  const missing = options.count - have.length;
  let serverKey = cached?.serverKey;
  let fresh: LoadAccount[] = [];
  if (missing > 0) {
    const tag = Date.now().toString(36);
    const names = Array.from({ length: missing }, (_, i) => `ld${tag}_${i}`);
    const shares = pool.size;
    const replies = await pool.all<{ accounts: LoadAccount[]; serverKey: string }>((p) => ({
      op: "register",
      names: names.filter((_, i) => i % shares === p),
      localAddresses: addressesOf(p),
      concurrency: 32,
    }));
    fresh = replies.flatMap((r) => r.accounts);
    serverKey = replies.find((r) => r.accounts.length > 0)?.serverKey ?? serverKey;
  }
  if (!serverKey) throw new Error("no server key: nothing registered and no cache");
  const accounts = [...have, ...fresh];
  if (options.cache && fresh.length > 0) {
    writeAccountCache(options.dataDir, fromHex(serverKey), [...(cached?.accounts ?? []), ...fresh]);
  }
  return { accounts, serverKey, registered: fresh.length, fromCache: have.length, ms: performance.now() - started };
}

// ---------------------------------------------------------------- online pairs

export interface PairPlan {
  /** per generator process: the accounts it logs in and the flows it drives */
  perProcess: { accounts: LoadAccount[]; flows: { from: string; to: string }[] }[];
  pairs: number;
}

/** Splits pairs over the processes; both ends of a pair live in the same process (one clock for latencies). */
export function planPairs(
  accounts: readonly LoadAccount[],
  pairs: number,
  processes: number,
  bothWays: boolean,
): PairPlan {
  const perProcess = Array.from({ length: processes }, () => ({
    accounts: [] as LoadAccount[],
    flows: [] as { from: string; to: string }[],
  }));
  for (let i = 0; i < pairs; i++) {
    const a = accounts[2 * i]!;
    const b = accounts[2 * i + 1]!;
    const slot = perProcess[i % processes]!;
    slot.accounts.push(a, b);
    slot.flows.push({ from: a.user, to: b.user });
    if (bothWays) slot.flows.push({ from: b.user, to: a.user });
  }
  return { perProcess, pairs };
}

export async function connectPlan(pool: GeneratorPool, plan: PairPlan) {
  const started = performance.now();
  const replies = await pool.all<ConnectReport>((p) => ({
    op: "connect",
    accounts: plan.perProcess[p]!.accounts,
    localAddresses: addressesOf(p),
    concurrency: 64,
  }));
  return {
    connected: replies.reduce((n, r) => n + r.connected, 0),
    ik: replies.reduce((n, r) => n + r.ik, 0),
    queued: replies.reduce((n, r) => n + r.queued, 0),
    ms: performance.now() - started,
  };
}

export interface OnlineResult {
  mode: "saturate" | "paced";
  targetRate?: number;
  flows: number;
  deliveredPerSec: number;
  receiptsPerSec: number;
  acksPerSec: number;
  sentPerSec: number;
  oneWay: { p50: number; p99: number; max: number; samples: number };
  receiptRtt: { p50: number; p99: number; max: number; samples: number };
  cpu: CpuPoint;
  totals: TrafficReport["totals"];
  duplicates: number;
  misrouted: number;
  stale: number;
  ackErrors: number;
  firstError?: string;
  missing: TrafficReport["missing"];
  pacedSkipped: number;
  connectionsLost: number;
}

export async function runOnline(
  pool: GeneratorPool,
  plan: PairPlan,
  meters: CpuMeters,
  options: {
    mode: "saturate" | "paced";
    ratePerSec?: number;
    maxInFlight: number;
    warmupMs: number;
    measureMs: number;
  },
): Promise<OnlineResult> {
  const totalFlows = plan.perProcess.reduce((n, p) => n + p.flows.length, 0);
  const replies = pool.all<TrafficReport>((p) => {
    const flows = plan.perProcess[p]!.flows;
    return {
      op: "traffic",
      options: {
        flows,
        mode: options.mode,
        // a paced rate is shared in proportion to the flows each process drives
        ...(options.ratePerSec !== undefined ? { ratePerSec: (options.ratePerSec * flows.length) / totalFlows } : {}),
        maxInFlight: options.maxInFlight,
        warmupMs: options.warmupMs,
        measureMs: options.measureMs,
      },
    };
  });
  // CPU over the same window the generators measure in (their clocks start within a few ms of ours).
  await new Promise((r) => setTimeout(r, options.warmupMs));
  const cpuStart = meters.start();
  await new Promise((r) => setTimeout(r, options.measureMs));
  const cpu = meters.stop(cpuStart);
  const reports = await replies;

  return mergeTraffic(reports, options, totalFlows, cpu);
}

/** One traffic point from every generator process's report: rates over the window, merged histograms, summed checks. */
export function mergeTraffic(
  reports: TrafficReport[],
  options: { mode: "saturate" | "paced"; ratePerSec?: number },
  totalFlows: number,
  cpu: CpuPoint,
): OnlineResult {
  const oneWay = new Histogram();
  const rtt = new Histogram();
  const sum = (f: (r: TrafficReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  for (const r of reports) {
    oneWay.merge(Histogram.fromJSON(r.oneWay));
    rtt.merge(Histogram.fromJSON(r.receiptRtt));
  }
  const windowSec = Math.max(...reports.map((r) => r.window.ms)) / 1000;
  const firstError = reports.find((r) => r.firstError !== undefined)?.firstError;
  return {
    mode: options.mode,
    ...(options.ratePerSec !== undefined ? { targetRate: options.ratePerSec } : {}),
    flows: totalFlows,
    deliveredPerSec: sum((r) => r.window.delivered) / windowSec,
    receiptsPerSec: sum((r) => r.window.receipted) / windowSec,
    acksPerSec: sum((r) => r.window.acked) / windowSec,
    sentPerSec: sum((r) => r.window.sent) / windowSec,
    oneWay: { p50: oneWay.percentile(0.5), p99: oneWay.percentile(0.99), max: oneWay.max, samples: oneWay.count },
    receiptRtt: { p50: rtt.percentile(0.5), p99: rtt.percentile(0.99), max: rtt.max, samples: rtt.count },
    cpu,
    totals: {
      sent: sum((r) => r.totals.sent),
      acked: sum((r) => r.totals.acked),
      delivered: sum((r) => r.totals.delivered),
      receipted: sum((r) => r.totals.receipted),
    },
    duplicates: sum((r) => r.duplicates),
    misrouted: sum((r) => r.misrouted),
    stale: sum((r) => r.stale),
    ackErrors: sum((r) => r.ackErrors),
    ...(firstError !== undefined ? { firstError } : {}),
    missing: {
      ack: sum((r) => r.missing.ack),
      delivery: sum((r) => r.missing.delivery),
      receipt: sum((r) => r.missing.receipt),
    },
    pacedSkipped: sum((r) => r.pacedSkipped),
    connectionsLost: sum((r) => r.connectionsLost),
  };
}

// ---------------------------------------------------------------- offline

export interface OfflineResult {
  store: StoreReport & { cpu: CpuPoint };
  drain: DrainReport & { cpu: CpuPoint };
  senders: number;
}

/** Runs in generator process 0: `senders` online accounts fill the queue of an offline `recipient`, then it logs in. */
export async function runOffline(
  pool: GeneratorPool,
  meters: CpuMeters,
  options: { senders: LoadAccount[]; recipient: LoadAccount; messages: number; window: number },
): Promise<OfflineResult> {
  const addresses = addressesOf(0);
  await pool.call<ConnectReport>(0, {
    op: "connect",
    accounts: options.senders,
    localAddresses: addresses,
    concurrency: 16,
  });
  let cpuStart = meters.start();
  const store = await pool.call<StoreReport>(0, {
    op: "offline-store",
    options: {
      senders: options.senders.map((s) => s.user),
      recipient: options.recipient,
      messages: options.messages,
      window: options.window,
    },
  });
  const storeCpu = meters.stop(cpuStart);
  cpuStart = meters.start();
  const drain = await pool.call<DrainReport>(0, {
    op: "offline-drain",
    recipient: options.recipient,
    localAddress: addresses[addresses.length - 1]!,
  });
  const drainCpu = meters.stop(cpuStart);
  await pool.call(0, { op: "disconnect", users: [...options.senders.map((s) => s.user), options.recipient.user] });
  return { store: { ...store, cpu: storeCpu }, drain: { ...drain, cpu: drainCpu }, senders: options.senders.length };
}
