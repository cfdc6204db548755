// The three workloads over generator pools, the same for both servers:
//   density: authenticated idle connections, server RSS per connection, logins/s;
//   online pairs (XMPP side; Parley's is scenario.ts's runOnline);
//   offline store + drain (XMPP side; Parley's is scenario.ts's runOffline).
import { fileURLToPath } from "node:url";
import { accountNames, fromHex, type LoadAccount, readAccountCache, writeAccountCache } from "../load/accounts.ts";
import { bundleEntry } from "../load/bundle.ts";
import { loopbackAddress } from "../load/connection.ts";
import type { TrafficReport } from "../load/generator.ts";
import type { DensityCommand, DensityConnectReport, DensityCountReport } from "../load/parley-density-process.ts";
import { MAX_SOCKETS_PER_PROCESS, ProcessPool } from "../load/process-pool.ts";
import {
  addressesOf,
  type CpuMeters,
  type CpuPoint,
  mergeTraffic,
  type OfflineResult,
  type OnlineResult,
} from "../load/scenario.ts";
import type { XmppTarget } from "../load/xmpp-generator.ts";
import type { XmppCommand, XmppConnectReport, XmppCountReport } from "../load/xmpp-generator-process.ts";
import { sleep, type TreeMemory, treeMemory } from "./measure.ts";

const XMPP_ENTRY = fileURLToPath(new URL("../load/xmpp-generator-process.ts", import.meta.url));
const DENSITY_ENTRY = fileURLToPath(new URL("../load/parley-density-process.ts", import.meta.url));

export type XmppPool = ProcessPool<XmppCommand>;
export type DensityPool = ProcessPool<DensityCommand>;

export async function startXmppPool(count: number, target: XmppTarget): Promise<XmppPool> {
  return ProcessPool.startInitialized<XmppCommand>(
    await bundleEntry(XMPP_ENTRY),
    count,
    { op: "close" },
    {
      op: "init",
      target,
    },
  );
}

export async function startDensityPool(count: number, url: string, serverKey?: string): Promise<DensityPool> {
  return ProcessPool.startInitialized<DensityCommand>(
    await bundleEntry(DENSITY_ENTRY),
    count,
    { op: "close" },
    {
      op: "init",
      url,
      ...(serverKey ? { serverKey } : {}),
    },
  );
}

/** Generator processes for `connections` sockets: under the per-process limit, at least 2 (2 cores). */
export function processesFor(connections: number): number {
  return Math.max(2, Math.ceil(connections / (MAX_SOCKETS_PER_PROCESS - 1000)));
}

/**
 * Source addresses of density process p: 127.1.x.y, a block apart from the 127.0.0.x that
 * registration and the messaging workload use, so TIME_WAIT sockets of one phase never collide
 * with the next phase's binds.
 */
export function densityAddresses(p: number): string[] {
  return Array.from({ length: 4 }, (_, i) => loopbackAddress(0x10000 + 2 + p * 4 + i));
}

/** Source addresses of registration process p: 127.2.x.y (registrations close right away: TIME_WAIT). */
export function registrationAddresses(p: number): string[] {
  return Array.from({ length: 4 }, (_, i) => loopbackAddress(0x20000 + 2 + p * 4 + i));
}

/**
 * `count` Parley accounts: from the account cache of `dataDir` when `cache` and it still logs in,
 * the rest registered in bulk over `pool` (see parley-density-process.ts); the cache is rewritten.
 */
export async function registerParleyAccounts(
  pool: DensityPool,
  options: { dataDir: string; count: number; cache: boolean },
): Promise<{
  accounts: LoadAccount[];
  serverKey: string;
  registered: number;
  fromCache: number;
  ms: number;
  /** Registrations the server did not answer within 20 s (retried under another name). */
  retries: number;
  firstRetry?: string;
}> {
  const started = performance.now();
  let cached = options.cache ? readAccountCache(options.dataDir) : undefined;
  if (
    cached &&
    (cached.accounts.length === 0 ||
      !(await pool.call<boolean>(0, { op: "check", account: cached.accounts[0]!, serverKey: cached.serverKey })))
  ) {
    cached = undefined;
  }
  const have = cached ? cached.accounts.slice(0, options.count) : [];
  const missing = options.count - have.length;
  let serverKey = cached?.serverKey;
  let fresh: LoadAccount[] = [];
  let retries = 0;
  let firstRetry: string | undefined;
  if (missing > 0) {
    const names = accountNames(missing);
    const replies = await pool.all<{ accounts: LoadAccount[]; serverKey: string; retries: number; firstRetry: string }>(
      (p) => ({
        op: "register",
        names: names.filter((_, i) => i % pool.size === p),
        localAddresses: registrationAddresses(p),
        concurrency: 32,
      }),
    );
    fresh = replies.flatMap((r) => r.accounts);
    retries = replies.reduce((n, r) => n + r.retries, 0);
    firstRetry = replies.find((r) => r.firstRetry)?.firstRetry;
    serverKey = replies.find((r) => r.accounts.length > 0)?.serverKey ?? serverKey;
  }
  if (!serverKey) throw new Error("no server key: nothing registered and no cache");
  if (options.cache && fresh.length > 0) {
    writeAccountCache(options.dataDir, fromHex(serverKey), [...(cached?.accounts ?? []), ...fresh]);
  }
  return {
    accounts: [...have, ...fresh],
    serverKey,
    registered: fresh.length,
    fromCache: have.length,
    ms: performance.now() - started,
    retries,
    ...(firstRetry ? { firstRetry } : {}),
  };
}

// ---------------------------------------------------------------- density

export interface DensityResult {
  target: number;
  connected: number;
  failed: number;
  /** Logins that failed once and succeeded on a second try. */
  retried: number;
  firstError?: string;
  /** Connections still open after the hold period. */
  held: number;
  loginMs: number;
  loginsPerSec: number;
  /** CPU while logging in. */
  cpu: CpuPoint;
  holdMs: number;
  baseline: TreeMemory;
  loaded: TreeMemory;
  /** (RSS loaded − RSS baseline) ÷ held, KiB. */
  rssPerConnectionKiB: number;
  generatorProcesses: number;
  generatorMaxFds: number;
  loginConcurrency: number;
}

interface DensityDriver {
  connect(
    p: number,
    share: number[],
    concurrency: number,
  ): Promise<{ failed: number; retried?: number; firstError?: string }>;
  count(): Promise<{ open: number; fds: number }[]>;
}

async function runDensity(
  driver: DensityDriver,
  options: {
    serverRoot: number;
    meters: CpuMeters;
    target: number;
    processes: number;
    loginConcurrency: number;
    holdMs: number;
  },
): Promise<DensityResult> {
  const { processes } = options;
  const shares = Array.from({ length: processes }, () => [] as number[]);
  for (let i = 0; i < options.target; i++) shares[i % processes]!.push(i);
  const perProcess = Math.max(1, Math.ceil(options.loginConcurrency / processes));
  const baseline = treeMemory(options.serverRoot);
  const cpuStart = options.meters.start();
  const started = performance.now();
  const replies = await Promise.all(shares.map((share, p) => driver.connect(p, share, perProcess)));
  const loginMs = performance.now() - started;
  const cpu = options.meters.stop(cpuStart);
  const failed = replies.reduce((n, r) => n + r.failed, 0);
  const retried = replies.reduce((n, r) => n + (r.retried ?? 0), 0);
  const firstError = replies.find((r) => r.firstError !== undefined)?.firstError;
  // Idle: let both sides settle (GC, allocator) before reading memory.
  await sleep(options.holdMs);
  const counts = await driver.count();
  const held = counts.reduce((n, c) => n + c.open, 0);
  const loaded = treeMemory(options.serverRoot);
  return {
    target: options.target,
    connected: options.target - failed,
    failed,
    retried,
    ...(firstError !== undefined ? { firstError } : {}),
    held,
    loginMs,
    loginsPerSec: ((options.target - failed) / loginMs) * 1000,
    cpu,
    holdMs: options.holdMs,
    baseline,
    loaded,
    rssPerConnectionKiB: held > 0 ? (loaded.rssBytes - baseline.rssBytes) / held / 1024 : Number.NaN,
    generatorProcesses: processes,
    generatorMaxFds: Math.max(...counts.map((c) => c.fds)),
    loginConcurrency: perProcess * processes,
  };
}

/** ejabberd density: users `${prefix}1..target` log in over XMPP (SASL PLAIN, bind, session, presence). */
export function xmppDensity(
  pool: XmppPool,
  userPrefix: string,
  options: { serverRoot: number; meters: CpuMeters; target: number; loginConcurrency: number; holdMs: number },
) {
  return runDensity(
    {
      connect: (p, share, concurrency) =>
        pool.call<XmppConnectReport>(p, {
          op: "connect",
          users: share.map((i) => `${userPrefix}${i + 1}`),
          localAddresses: densityAddresses(p),
          concurrency,
          tolerant: true,
        }),
      count: () => pool.all<XmppCountReport>(() => ({ op: "count" })),
    },
    { ...options, processes: pool.size },
  );
}

/** Parley density: registered accounts log in (Noise IK + login) and stay idle. */
export function parleyDensity(
  pool: DensityPool,
  accounts: readonly LoadAccount[],
  options: { serverRoot: number; meters: CpuMeters; target: number; loginConcurrency: number; holdMs: number },
) {
  return runDensity(
    {
      connect: (p, share, concurrency) =>
        pool.call<DensityConnectReport>(p, {
          op: "connect",
          accounts: share.map((i) => accounts[i]!),
          localAddresses: densityAddresses(p),
          concurrency,
        }),
      count: () => pool.all<DensityCountReport>(() => ({ op: "count" })),
    },
    { ...options, processes: pool.size },
  );
}

// ---------------------------------------------------------------- XMPP online pairs

export interface XmppPairPlan {
  perProcess: { users: string[]; flows: { from: string; to: string }[] }[];
  pairs: number;
}

/** Users `${prefix}${first}..` in pairs; both ends of a pair in the same process (one clock for latencies). */
export function planXmppPairs(userPrefix: string, first: number, pairs: number, processes: number): XmppPairPlan {
  const perProcess = Array.from({ length: processes }, () => ({
    users: [] as string[],
    flows: [] as { from: string; to: string }[],
  }));
  for (let i = 0; i < pairs; i++) {
    const a = `${userPrefix}${first + 2 * i}`;
    const b = `${userPrefix}${first + 2 * i + 1}`;
    const slot = perProcess[i % processes]!;
    slot.users.push(a, b);
    slot.flows.push({ from: a, to: b });
  }
  return { perProcess, pairs };
}

export async function connectXmppPlan(pool: XmppPool, plan: XmppPairPlan) {
  const started = performance.now();
  const replies = await pool.all<XmppConnectReport>((p) => ({
    op: "connect",
    users: plan.perProcess[p]!.users,
    localAddresses: addressesOf(p),
    concurrency: 64,
  }));
  return { connected: replies.reduce((n, r) => n + r.connected, 0), ms: performance.now() - started };
}

/** As scenario.ts's runOnline, over XMPP generator processes. */
export async function runXmppOnline(
  pool: XmppPool,
  plan: XmppPairPlan,
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
        ...(options.ratePerSec !== undefined ? { ratePerSec: (options.ratePerSec * flows.length) / totalFlows } : {}),
        maxInFlight: options.maxInFlight,
        warmupMs: options.warmupMs,
        measureMs: options.measureMs,
      },
    };
  });
  await sleep(options.warmupMs);
  const cpuStart = meters.start();
  await sleep(options.measureMs);
  const cpu = meters.stop(cpuStart);
  const reports = await replies;
  return mergeTraffic(reports, options, totalFlows, cpu);
}

// ---------------------------------------------------------------- XMPP offline

/** As scenario.ts's runOffline, in XMPP generator process 0 (senders use stream management acks). */
export async function runXmppOffline(
  pool: XmppPool,
  meters: CpuMeters,
  options: { senders: string[]; recipient: string; messages: number; window: number },
): Promise<OfflineResult> {
  const addresses = addressesOf(0);
  await pool.call(0, {
    op: "connect",
    users: options.senders,
    localAddresses: addresses,
    concurrency: 16,
    streamManagement: true,
  });
  let cpuStart = meters.start();
  const store = await pool.call<OfflineResult["store"]>(0, {
    op: "offline-store",
    options: {
      senders: options.senders,
      recipient: options.recipient,
      messages: options.messages,
      window: options.window,
    },
  });
  const storeCpu = meters.stop(cpuStart);
  cpuStart = meters.start();
  const drain = await pool.call<OfflineResult["drain"]>(0, {
    op: "offline-drain",
    recipient: options.recipient,
    localAddress: addresses[addresses.length - 1]!,
  });
  const drainCpu = meters.stop(cpuStart);
  await pool.call(0, { op: "disconnect", users: [...options.senders, options.recipient] });
  return { store: { ...store, cpu: storeCpu }, drain: { ...drain, cpu: drainCpu }, senders: options.senders.length };
}
