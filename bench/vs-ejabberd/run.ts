// npm run bench:vs-ejabberd: Parley against Debian's ejabberd on this machine,
// the same workloads one server after the other, one table with both figures
// and their ratio, JSON in bench/results/vs-ejabberd.json. See README.md here.
//
//   1. density: authenticated idle connections held, server RSS per connection
//      (all server processes, minus the RSS before the logins), logins/s;
//   2. messaging: 500 online pairs, at most 10 in flight per sender, delivery
//      receipts; messages/s, one-way and receipt round-trip p50/p99 at maximum
//      and at 50% of it; Parley also paced at ejabberd's 50% rate;
//   3. offline: 10,000 messages to an offline user (store rate), then login →
//      last message.
// Server and generator CPU come from /proc; rows where the generator used more
// CPU than the server are marked. Everything started here is stopped at the
// end, on errors and on Ctrl-C.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildDist, type RunningServer, startServerProcess } from "../e2e/server-process.ts";
import type { LoadAccount } from "../load/accounts.ts";
import { bundleEntry } from "../load/bundle.ts";
import { E2E_TEXT_CIPHERTEXT_BYTES } from "../load/generator.ts";
import { ENTRY as GENERATOR_ENTRY, startGeneratorPool } from "../load/pool.ts";
import {
  CpuMeters,
  type CpuPoint,
  connectPlan,
  type OfflineResult,
  type OnlineResult,
  planPairs,
  runOffline,
  runOnline,
} from "../load/scenario.ts";
import { fmtInt, fmtMs, fmtPct, renderTable } from "../load/table.ts";
import { XMPP_BODY_BYTES } from "../load/xmpp-generator.ts";
import { ensureEjabberd, type RunningEjabberd, startEjabberd } from "./ejabberd-process.ts";
import { sleep } from "./measure.ts";
import {
  connectXmppPlan,
  type DensityResult,
  parleyDensity,
  planXmppPairs,
  processesFor,
  registerParleyAccounts,
  runXmppOffline,
  runXmppOnline,
  startDensityPool,
  startXmppPool,
  xmppDensity,
} from "./workloads.ts";

const WORKLOADS = ["density", "messaging", "offline"] as const;
type Workload = (typeof WORKLOADS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    workloads: { type: "string", default: WORKLOADS.join(",") },
    "ejabberd-connections": { type: "string" },
    "parley-connections": { type: "string" },
    "parley-density-workers": { type: "string" },
    "parley-workers": { type: "string", default: "2" },
    "login-concurrency": { type: "string", default: "256" },
    "hold-ms": { type: "string" },
    pairs: { type: "string" },
    procs: { type: "string", default: "2" },
    "max-in-flight": { type: "string", default: "10" },
    "warmup-ms": { type: "string" },
    "measure-ms": { type: "string" },
    "half-measure-ms": { type: "string" },
    "offline-messages": { type: "string" },
    "offline-senders": { type: "string", default: "10" },
    "offline-window": { type: "string", default: "100" },
    "ejabberd-half-rate": { type: "string" },
    "parley-paced-rates": { type: "string" },
    "parley-data": { type: "string" },
    "server-cpu-prof": { type: "string" },
    "parley-source": { type: "boolean", default: false },
    "parley-density-semi-space-mb": { type: "string", default: "4" },
    "parley-semi-space-mb": { type: "string", default: "16" },
    help: { type: "boolean", default: false },
  },
});

if (args.help) {
  console.log(`npm run bench:vs-ejabberd -- [options]
  --quick                       small counts and short windows (a harness check, ~2 min)
  --only parley|ejabberd        one server only (Parley's "at ejabberd's 50% rate" point then uses
                                --ejabberd-half-rate or the last bench/results/vs-ejabberd.json)
  --workloads density,messaging,offline
  --ejabberd-connections N      density target for ejabberd (default 19,500: one OS process, 20,000 fds)
  --parley-connections N        density target for Parley (default 100,000)
  --parley-density-workers N    parley serve --workers for density (default: connections / 17,000, at least 2)
  --parley-workers N            parley serve --workers for messaging and offline (default 2, parley
                                serve's own: one per core; 1 halves paced latency here, where the
                                generator shares the cores, for ~15-30% less maximum)
  --login-concurrency N         logins in flight over all generator processes (default 256)
  --hold-ms N                   idle time before memory is read (default 5000)
  --pairs N --procs N --max-in-flight N --warmup-ms N --measure-ms N --half-measure-ms N
  --offline-messages N --offline-senders N --offline-window N
  --parley-paced-rates R,R,...  messaging on Parley: only pace at these msg/s, one after the other
                                (no max, no 50% point; a latency-vs-rate sweep, logged and in the JSON)
  --parley-data DIR             keep Parley's data dir and account cache there (skips re-registering)
  --server-cpu-prof DIR         write V8 CPU profiles of every Parley server process into DIR
                                (the load generators' own: env PARLEY_BENCH_GENERATOR_CPU_PROF=DIR)
  --parley-density-semi-space-mb N
                                parley serve --worker-semi-space-mb for density (default 4: the
                                memory-lean setting for idle connections; 0 = V8's default)
  --parley-semi-space-mb N      parley serve --worker-semi-space-mb for messaging and offline (default 16:
                                paced at 7,000 msg/s a scavenge pauses p50 2.3 ms, p90 5.3 ms, vs 5.9
                                and 9.9 with 64 MiB, which at full load saves ~7% of the worker's CPU
                                in scavenges; 0 = V8's default)
  env PARLEY_BENCH_SERVER_NODE_FLAGS, PARLEY_BENCH_GENERATOR_NODE_FLAGS
                                extra node flags for the server's or the generators' processes
                                (e.g. "--trace-gc")
  --parley-source               run Parley's TypeScript sources through tsx (default: the compiled
                                build, npm run build first, as a deployment runs it)`);
  process.exit(0);
}

const quick = args.quick;
const num = (name: keyof typeof args, fallback: number) => {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
  return n;
};
const only = args.only;
if (only !== undefined && only !== "parley" && only !== "ejabberd") throw new Error("--only parley|ejabberd");
const runEjabberd = only !== "parley";
const runParley = only !== "ejabberd";
const workloads = new Set(
  args.workloads.split(",").map((w) => {
    const t = w.trim();
    if (!(WORKLOADS as readonly string[]).includes(t)) throw new Error(`unknown workload ${t}`);
    return t as Workload;
  }),
);

const ejabberdConnections = num("ejabberd-connections", quick ? 2000 : 19_500);
const parleyConnections = num("parley-connections", quick ? 3000 : 100_000);
const parleyDensityWorkers = num("parley-density-workers", Math.max(2, Math.ceil(parleyConnections / 17_000)));
const parleyWorkers = num("parley-workers", 2);
const densitySemiSpace = num("parley-density-semi-space-mb", 4);
const messagingSemiSpace = num("parley-semi-space-mb", 16);
const loginConcurrency = num("login-concurrency", 256);
const holdMs = num("hold-ms", quick ? 2000 : 5000);
const pairs = num("pairs", quick ? 100 : 500);
const procs = Math.max(1, num("procs", 2));
const maxInFlight = num("max-in-flight", 10);
const warmupMs = num("warmup-ms", quick ? 1000 : 3000);
const measureMs = num("measure-ms", quick ? 3000 : 10_000);
const halfMeasureMs = num("half-measure-ms", quick ? 3000 : 8000);
const pacedRates = (args["parley-paced-rates"] ?? "")
  .split(",")
  .filter((r) => r.trim() !== "")
  .map((r) => {
    const n = Number(r);
    if (!Number.isFinite(n) || n <= 0) throw new Error("--parley-paced-rates takes positive msg/s, comma-separated");
    return n;
  });
const offlineMessages = num("offline-messages", quick ? 2000 : 10_000);
const offlineSenders = Math.max(1, num("offline-senders", 10));
const offlineWindow = num("offline-window", 100);

const log = (msg: string) => console.error(`[vs-ejabberd ${new Date().toISOString().slice(11, 19)}] ${msg}`);

// ------------------------------------------------------------------ cleanup

const stoppers: { name: string; stop: () => Promise<void> }[] = [];
/** Registers something to stop; returns a function that stops it now (and unregisters it). */
function own(name: string, stop: () => Promise<void>): () => Promise<void> {
  const entry = { name, stop };
  stoppers.push(entry);
  return async () => {
    const i = stoppers.indexOf(entry);
    if (i >= 0) stoppers.splice(i, 1);
    await stop();
  };
}
/** Temporary directories, removed after everything is stopped (a server may still be writing). */
const tempDirs: string[] = [];
/** Stops everything registered so far, newest first. Runs again for whatever is registered later. */
async function cleanup(): Promise<void> {
  while (stoppers.length > 0) {
    const s = stoppers.pop()!;
    await s.stop().catch((err) => console.error(`stopping ${s.name}:`, err));
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

// Ctrl-C / SIGTERM: stop what runs now; the main flow then fails fast at its next step (its pools
// and servers are gone) and its final cleanup stops anything that was still starting. A second
// signal exits at once.
class Interrupted extends Error {
  override readonly name = "Interrupted";
}
let interrupted = false;
const checkInterrupted = () => {
  if (interrupted) throw new Interrupted("interrupted");
};
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) {
      console.error(`\n${signal} again: exiting now`);
      void cleanup();
      process.exit(130);
    }
    interrupted = true;
    process.exitCode = 130;
    console.error(`\n${signal}: stopping the servers and the generators`);
    void cleanup();
  });
}

// ------------------------------------------------------------------ results

interface SideResults {
  density?: DensityResult;
  max?: OnlineResult;
  half?: OnlineResult;
  atEjabberdHalf?: OnlineResult;
  /** --parley-paced-rates: one paced point per requested rate. */
  paced?: OnlineResult[];
  offline?: OfflineResult;
  errors: { workload: string; error: string }[];
}
const ejabberd: SideResults & { version?: string; registerMs?: number; registered?: number } = { errors: [] };
const parley: SideResults & {
  registerMs?: number;
  registered?: number;
  fromCache?: number;
  registerRetries?: number;
  firstRegisterRetry?: string;
} = { errors: [] };

async function attempt(side: SideResults, workload: string, task: () => Promise<void>): Promise<void> {
  checkInterrupted();
  try {
    await task();
  } catch (err) {
    if (interrupted) throw err;
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    log(`${workload} failed: ${error}`);
    side.errors.push({ workload, error });
  }
}

const EJ_PREFIX = "vb";
const EJ_PASSWORD = "bench-password";
const messagingUsers = 2 * pairs;

// ------------------------------------------------------------------ ejabberd

async function benchEjabberd() {
  ensureEjabberd(log);
  const needed = Math.max(
    workloads.has("density") ? ejabberdConnections : 0,
    workloads.has("messaging") || workloads.has("offline") ? messagingUsers + offlineSenders + 1 : 0,
  );
  let server: RunningEjabberd;
  try {
    server = await startEjabberd({ userPrefix: EJ_PREFIX, users: needed, password: EJ_PASSWORD }, log);
  } catch (err) {
    if (interrupted) throw err;
    ejabberd.errors.push({ workload: "start", error: String(err) });
    log(String(err));
    return;
  }
  const stopServer = own("ejabberd", () => server.stop());
  checkInterrupted();
  ejabberd.version = server.version;
  ejabberd.registerMs = server.registerMs;
  ejabberd.registered = server.registered;
  log(
    `ejabberd ${server.version} up (pid ${server.pid}); ${server.registered} users registered in ${server.registerMs} ms`,
  );
  const target = { host: "127.0.0.1", port: server.port, domain: server.domain, password: EJ_PASSWORD };

  if (workloads.has("density")) {
    await attempt(ejabberd, "density", async () => {
      const pool = await startXmppPool(processesFor(ejabberdConnections), target);
      const stopPool = own("ejabberd density generators", () => pool.stop());
      try {
        const meters = new CpuMeters(server.pid, () => pool.pids());
        log(`density: ${fmtInt(ejabberdConnections)} XMPP logins over ${pool.size} generator processes`);
        ejabberd.density = await xmppDensity(pool, EJ_PREFIX, {
          serverRoot: server.pid,
          meters,
          target: ejabberdConnections,
          loginConcurrency,
          holdMs,
        });
        logDensity("ejabberd", ejabberd.density);
        await pool.all(() => ({ op: "close-all" }));
      } finally {
        await stopPool();
      }
      await sleep(2000); // let the server tear the sessions down before the next workload
    });
  }

  if (workloads.has("messaging") || workloads.has("offline")) {
    await attempt(ejabberd, "messaging", async () => {
      const pool = await startXmppPool(procs, target);
      const stopPool = own("ejabberd generators", () => pool.stop());
      try {
        const meters = new CpuMeters(server.pid, () => pool.pids());
        if (workloads.has("messaging")) {
          const plan = planXmppPairs(EJ_PREFIX, 1, pairs, procs);
          const login = await connectXmppPlan(pool, plan);
          log(`messaging: ${login.connected} XMPP clients online in ${fmtMs(login.ms / 1000)} s`);
          log(`messaging: saturating ${pairs} pairs, ${maxInFlight} in flight per sender`);
          ejabberd.max = await runXmppOnline(pool, plan, meters, {
            mode: "saturate",
            maxInFlight,
            warmupMs,
            measureMs,
          });
          logOnline("ejabberd max", ejabberd.max);
          const halfRate = ejabberd.max.deliveredPerSec / 2;
          log(`messaging: paced at ${fmtInt(halfRate)} msg/s (50%)`);
          ejabberd.half = await runXmppOnline(pool, plan, meters, {
            mode: "paced",
            ratePerSec: halfRate,
            maxInFlight,
            warmupMs: Math.min(warmupMs, 1000),
            measureMs: halfMeasureMs,
          });
          logOnline("ejabberd 50%", ejabberd.half);
          await pool.all((p) => ({ op: "disconnect", users: plan.perProcess[p]!.users }));
        }
        if (workloads.has("offline")) {
          const first = messagingUsers + 1;
          const recipient = `${EJ_PREFIX}${first}`;
          const senders = Array.from({ length: offlineSenders }, (_, i) => `${EJ_PREFIX}${first + 1 + i}`);
          log(`offline: ${fmtInt(offlineMessages)} messages from ${senders.length} senders to an offline user`);
          ejabberd.offline = await runXmppOffline(pool, meters, {
            senders,
            recipient,
            messages: offlineMessages,
            window: offlineWindow,
          });
          logOffline("ejabberd", ejabberd.offline);
        }
      } finally {
        await stopPool();
      }
    });
  }
  await stopServer();
}

// ------------------------------------------------------------------ Parley

async function benchParley() {
  if (!args["parley-source"]) {
    log("building Parley (npm run build) to run the compiled server");
    buildDist();
  }
  const dataDir = args["parley-data"] ? resolve(args["parley-data"]) : mkdtempSync(join(tmpdir(), "parley-vs-ej-"));
  if (!args["parley-data"]) tempDirs.push(dataDir);
  else mkdirSync(dataDir, { recursive: true });
  const cache = args["parley-data"] !== undefined;
  let accounts: LoadAccount[] = [];
  let serverKey = "";
  const messagingNeeded = messagingUsers + offlineSenders + 1;

  const start = async (workers: number, extraArgs: string[] = []) => {
    log(`starting parley serve --workers ${workers} ${extraArgs.join(" ")} (data ${dataDir})`);
    const server = await startServerProcess({
      dataDir,
      workers,
      extraArgs,
      logLevel: "warn",
      dist: !args["parley-source"],
      ...(args["server-cpu-prof"] ? { cpuProfileDir: resolve(args["server-cpu-prof"]) } : {}),
    });
    const stop = own(`parley serve (${workers} workers)`, () => server.stop());
    checkInterrupted();
    return { server, stop };
  };
  /** Registers (or reads from the cache) `count` accounts, in bulk over density generator processes. */
  const ensureAccounts = async (server: RunningServer, count: number) => {
    if (accounts.length >= count) return;
    const url = `tcp://127.0.0.1:${server.tcpPort}`;
    const regProcs = Math.max(2, procs);
    const pool = await startDensityPool(regProcs, url);
    const stopPool = own("Parley registration generators", () => pool.stop());
    try {
      log(`registering ${fmtInt(count)} Parley accounts over ${regProcs} processes${cache ? " (cache)" : ""}`);
      const setup = await registerParleyAccounts(pool, { dataDir, count, cache });
      accounts = setup.accounts;
      serverKey = setup.serverKey;
      parley.registered = setup.registered;
      parley.fromCache = setup.fromCache;
      parley.registerMs = setup.ms;
      parley.registerRetries = setup.retries;
      if (setup.firstRetry) parley.firstRegisterRetry = setup.firstRetry;
      if (setup.retries > 0) log(`WARNING: ${setup.retries} registrations unanswered for 20 s (${setup.firstRetry})`);
      log(
        `accounts: ${setup.registered} registered (${fmtInt((setup.registered / setup.ms) * 1000)}/s), ` +
          `${setup.fromCache} from cache, ${fmtMs(setup.ms / 1000)} s`,
      );
    } finally {
      await stopPool();
    }
  };

  if (workloads.has("density")) {
    await attempt(parley, "density", async () => {
      const { server, stop } = await start(parleyDensityWorkers, ["--worker-semi-space-mb", String(densitySemiSpace)]);
      try {
        await ensureAccounts(server, Math.max(parleyConnections, workloads.size > 1 ? messagingNeeded : 0));
        const url = `tcp://127.0.0.1:${server.tcpPort}`;
        const pool = await startDensityPool(processesFor(parleyConnections), url, serverKey);
        const stopPool = own("Parley density generators", () => pool.stop());
        try {
          const meters = new CpuMeters(server.pid, () => pool.pids());
          log(`density: ${fmtInt(parleyConnections)} Parley logins over ${pool.size} generator processes`);
          parley.density = await parleyDensity(pool, accounts, {
            serverRoot: server.pid,
            meters,
            target: parleyConnections,
            loginConcurrency,
            holdMs,
          });
          logDensity("Parley", parley.density);
          await pool.all(() => ({ op: "close-all" }));
        } finally {
          await stopPool();
        }
      } finally {
        await stop();
      }
    });
  }

  if (workloads.has("messaging") || workloads.has("offline")) {
    await attempt(parley, "messaging", async () => {
      const { server, stop } = await start(parleyWorkers, ["--worker-semi-space-mb", String(messagingSemiSpace)]);
      try {
        await ensureAccounts(server, messagingNeeded);
        const url = `tcp://127.0.0.1:${server.tcpPort}`;
        const pool = await startGeneratorPool(procs, url, serverKey, await bundleEntry(GENERATOR_ENTRY));
        const stopPool = own("Parley generators", () => pool.stop());
        try {
          const meters = new CpuMeters(server.pid, () => pool.pids());
          if (workloads.has("messaging")) {
            const plan = planPairs(accounts, pairs, procs, false);
            const login = await connectPlan(pool, plan);
            log(`messaging: ${login.connected} Parley clients online (${login.ik} IK) in ${fmtMs(login.ms / 1000)} s`);
            // One paced point: the shape the 50%, ejabberd's-50% and --parley-paced-rates points share.
            const paced = (ratePerSec: number) =>
              runOnline(pool, plan, meters, {
                mode: "paced",
                ratePerSec,
                maxInFlight,
                warmupMs: Math.min(warmupMs, 1000),
                measureMs: halfMeasureMs,
              });
            if (pacedRates.length > 0) {
              parley.paced = [];
              for (const rate of pacedRates) {
                log(`messaging: paced at ${fmtInt(rate)} msg/s (--parley-paced-rates)`);
                const point = await paced(rate);
                logOnline(`Parley at ${fmtInt(rate)} msg/s`, point);
                parley.paced.push(point);
              }
            } else {
              parley.max = await runOnline(pool, plan, meters, { mode: "saturate", maxInFlight, warmupMs, measureMs });
              logOnline("Parley max", parley.max);
              const halfRate = parley.max.deliveredPerSec / 2;
              log(`messaging: paced at ${fmtInt(halfRate)} msg/s (50%)`);
              parley.half = await paced(halfRate);
              logOnline("Parley 50%", parley.half);
              const ejHalf = ejabberdHalfRate();
              if (ejHalf !== undefined) {
                log(`messaging: paced at ejabberd's 50% rate, ${fmtInt(ejHalf.rate)} msg/s (${ejHalf.source})`);
                parley.atEjabberdHalf = await paced(ejHalf.rate);
                logOnline("Parley at ejabberd's 50%", parley.atEjabberdHalf);
              }
            }
            await pool.all((p) => ({ op: "disconnect", users: plan.perProcess[p]!.accounts.map((a) => a.user) }));
          }
          if (workloads.has("offline")) {
            const [recipient, ...senders] = accounts.slice(messagingUsers, messagingUsers + offlineSenders + 1);
            log(`offline: ${fmtInt(offlineMessages)} messages from ${senders.length} senders to an offline user`);
            parley.offline = await runOffline(pool, meters, {
              senders,
              recipient: recipient!,
              messages: offlineMessages,
              window: offlineWindow,
            });
            logOffline("Parley", parley.offline);
          }
        } finally {
          await stopPool();
        }
      } finally {
        await stop();
      }
    });
  }
}

const RESULTS = fileURLToPath(new URL("../results/vs-ejabberd.json", import.meta.url));

/** ejabberd's 50%-of-max rate: from this run, else --ejabberd-half-rate, else the last JSON. */
function ejabberdHalfRate(): { rate: number; source: string } | undefined {
  if (ejabberd.half?.targetRate) return { rate: ejabberd.half.targetRate, source: "this run" };
  if (args["ejabberd-half-rate"]) return { rate: num("ejabberd-half-rate", 0), source: "--ejabberd-half-rate" };
  try {
    const last = JSON.parse(readFileSync(RESULTS, "utf8")) as { ejabberd?: { half?: { targetRate?: number } } };
    const rate = last.ejabberd?.half?.targetRate;
    if (rate) return { rate, source: "last bench/results/vs-ejabberd.json" };
  } catch {
    // no earlier run
  }
  return undefined;
}

// ------------------------------------------------------------------ progress lines

function logDensity(name: string, d: DensityResult) {
  log(
    `${name} density: ${fmtInt(d.held)} held of ${fmtInt(d.target)} (${d.failed} failed, ${d.retried} retried${d.firstError ? `; first error: ${d.firstError}` : ""}), ` +
      `${fmtInt(d.loginsPerSec)} logins/s, ${d.rssPerConnectionKiB.toFixed(1)} KiB/conn, ` +
      `server max fds/process ${d.loaded.maxFds}, generator max fds ${d.generatorMaxFds}`,
  );
}
/** "(61+58+1)": each process's share of a core, busiest first (idle ones, under 0.5%, left out). */
const perProcess = (percents: readonly number[]) =>
  `(${
    percents
      .filter((p) => p >= 0.5)
      .map((p) => Math.round(p))
      .join("+") || "0"
  })`;
function logOnline(name: string, o: OnlineResult) {
  log(
    `${name}: ${fmtInt(o.deliveredPerSec)} msg/s, one-way p50 ${fmtMs(o.oneWay.p50)} p99 ${fmtMs(o.oneWay.p99)} ms, ` +
      `CPU server ${fmtPct(o.cpu.serverPercent)} ${perProcess(o.cpu.serverProcessesPercent)} ` +
      `generator ${fmtPct(o.cpu.generatorPercent)} ${perProcess(o.cpu.generatorProcessesPercent)}; ${checkOnline(o)}`,
  );
}
function logOffline(name: string, o: OfflineResult) {
  log(
    `${name} offline: store ${fmtInt(o.store.acksPerSec)} msg/s, drain ${fmtMs(o.drain.drainMs)} ms; ${checkOffline(o)}`,
  );
}

// ------------------------------------------------------------------ checks

function checkOnline(r: OnlineResult): string {
  const problems: string[] = [];
  const { sent, delivered, receipted } = r.totals;
  if (delivered !== sent || receipted !== sent)
    problems.push(`sent ${sent} delivered ${delivered} receipted ${receipted}`);
  if (r.duplicates > 0) problems.push(`${r.duplicates} duplicates`);
  if (r.misrouted > 0) problems.push(`${r.misrouted} misrouted`);
  if (r.ackErrors > 0) problems.push(`${r.ackErrors} errors (${r.firstError})`);
  if (r.connectionsLost > 0) problems.push(`${r.connectionsLost} connections lost`);
  if (r.pacedSkipped > 0) problems.push(`pacing fell behind by ${r.pacedSkipped} msgs`);
  return problems.length === 0 ? `ok (${fmtInt(sent)} msgs exactly once)` : problems.join("; ");
}

function checkOffline(o: OfflineResult): string {
  const problems: string[] = [];
  if (o.store.acked !== o.store.messages) problems.push(`stored ${o.store.acked}/${o.store.messages}`);
  if (o.store.ackErrors > 0) problems.push(`${o.store.ackErrors} errors (${o.store.firstError})`);
  if (o.drain.delivered !== o.drain.messages) problems.push(`delivered ${o.drain.delivered}/${o.drain.messages}`);
  if (o.drain.receipted !== o.drain.messages) problems.push(`receipted ${o.drain.receipted}/${o.drain.messages}`);
  if (o.drain.duplicates > 0) problems.push(`${o.drain.duplicates} duplicates`);
  return problems.length === 0 ? `ok (${fmtInt(o.drain.messages)} msgs exactly once)` : problems.join("; ");
}

// ------------------------------------------------------------------ table

interface Row {
  metric: string;
  ejabberd: number | undefined;
  parley: number | undefined;
  unit: "int" | "ms" | "kib" | "us";
  lowerIsBetter: boolean;
  ejabberdCpu: CpuPoint | undefined;
  parleyCpu: CpuPoint | undefined;
  note?: string;
}

const fmtValue = (v: number | undefined, unit: Row["unit"]) =>
  v === undefined || !Number.isFinite(v)
    ? "-"
    : unit === "int" || unit === "us"
      ? fmtInt(v)
      : unit === "ms"
        ? fmtMs(v)
        : v.toFixed(1);
/**
 * CPU time per operation, µs, from a point's CPU share and its rate: what one login or one message
 * costs each side, which shows whether a figure is bounded by the server or by the cores it shares.
 */
const perOpUs = (percent: number | undefined, perSec: number | undefined) =>
  percent === undefined || perSec === undefined || !(perSec > 0) ? undefined : (percent / 100 / perSec) * 1e6;
const cpuCell = (c: CpuPoint | undefined) =>
  c === undefined
    ? "-"
    : `${fmtPct(c.serverPercent)} / ${fmtPct(c.generatorPercent)}${c.generatorPercent > c.serverPercent ? " ⚠" : ""}`;

function buildRows(): Row[] {
  const rows: Row[] = [];
  const e = ejabberd;
  const p = parley;
  const add = (
    metric: string,
    unit: Row["unit"],
    lowerIsBetter: boolean,
    ev: number | undefined,
    pv: number | undefined,
    ec: CpuPoint | undefined,
    pc: CpuPoint | undefined,
    note?: string,
  ) =>
    rows.push({
      metric,
      ejabberd: ev,
      parley: pv,
      unit,
      lowerIsBetter,
      ejabberdCpu: ec,
      parleyCpu: pc,
      ...(note ? { note } : {}),
    });
  /** Two rows: server and generator CPU per operation of one point, µs. */
  const perOp = (
    what: string,
    ec: CpuPoint | undefined,
    eRate: number | undefined,
    pc: CpuPoint | undefined,
    pRate: number | undefined,
  ) => {
    for (const side of ["server", "generator"] as const) {
      const key = side === "server" ? "serverPercent" : "generatorPercent";
      add(
        `${side} CPU per ${what}, µs`,
        "us",
        true,
        perOpUs(ec?.[key], eRate),
        perOpUs(pc?.[key], pRate),
        undefined,
        undefined,
      );
    }
  };
  if (workloads.has("density")) {
    const ed = e.density;
    const pd = p.density;
    add(
      `idle authenticated connections held (target ${fmtInt(ejabberdConnections)} / ${fmtInt(parleyConnections)})`,
      "int",
      false,
      ed?.held,
      pd?.held,
      undefined,
      undefined,
    );
    add(
      "server RSS per idle connection, KiB",
      "kib",
      true,
      ed?.rssPerConnectionKiB,
      pd?.rssPerConnectionKiB,
      undefined,
      undefined,
    );
    add("logins/s", "int", false, ed?.loginsPerSec, pd?.loginsPerSec, ed?.cpu, pd?.cpu);
    perOp("login", ed?.cpu, ed?.loginsPerSec, pd?.cpu, pd?.loginsPerSec);
  }
  if (workloads.has("messaging")) {
    const online = (label: string, eo: OnlineResult | undefined, po: OnlineResult | undefined) => {
      add(`${label}: messages/s delivered`, "int", false, eo?.deliveredPerSec, po?.deliveredPerSec, eo?.cpu, po?.cpu);
      add(`${label}: receipts/s`, "int", false, eo?.receiptsPerSec, po?.receiptsPerSec, undefined, undefined);
      add(`${label}: one-way p50 ms`, "ms", true, eo?.oneWay.p50, po?.oneWay.p50, undefined, undefined);
      add(`${label}: one-way p99 ms`, "ms", true, eo?.oneWay.p99, po?.oneWay.p99, undefined, undefined);
      add(`${label}: receipt RTT p50 ms`, "ms", true, eo?.receiptRtt.p50, po?.receiptRtt.p50, undefined, undefined);
      add(`${label}: receipt RTT p99 ms`, "ms", true, eo?.receiptRtt.p99, po?.receiptRtt.p99, undefined, undefined);
    };
    online(`1:1 max (${pairs} pairs, ≤${maxInFlight} in flight)`, e.max, p.max);
    perOp("message at max", e.max?.cpu, e.max?.deliveredPerSec, p.max?.cpu, p.max?.deliveredPerSec);
    online("1:1 at 50% of own max", e.half, p.half);
    if (p.atEjabberdHalf) {
      const rate = p.atEjabberdHalf.targetRate ?? 0;
      const label = `1:1 at ejabberd's 50% rate (${fmtInt(rate)} msg/s)`;
      add(
        `${label}: one-way p50 ms`,
        "ms",
        true,
        e.half?.oneWay.p50,
        p.atEjabberdHalf.oneWay.p50,
        e.half?.cpu,
        p.atEjabberdHalf.cpu,
      );
      add(
        `${label}: one-way p99 ms`,
        "ms",
        true,
        e.half?.oneWay.p99,
        p.atEjabberdHalf.oneWay.p99,
        undefined,
        undefined,
      );
      add(
        `${label}: receipt RTT p99 ms`,
        "ms",
        true,
        e.half?.receiptRtt.p99,
        p.atEjabberdHalf.receiptRtt.p99,
        undefined,
        undefined,
      );
      perOp(
        `message at ejabberd's 50% rate`,
        e.half?.cpu,
        e.half?.deliveredPerSec,
        p.atEjabberdHalf.cpu,
        p.atEjabberdHalf.deliveredPerSec,
      );
    }
  }
  if (workloads.has("offline")) {
    const eo = e.offline;
    const po = p.offline;
    add(
      `offline store: ${fmtInt(offlineMessages)} msgs, msg/s`,
      "int",
      false,
      eo?.store.acksPerSec,
      po?.store.acksPerSec,
      eo?.store.cpu,
      po?.store.cpu,
    );
    add(
      "offline drain: login → last message, ms",
      "ms",
      true,
      eo?.drain.drainMs,
      po?.drain.drainMs,
      eo?.drain.cpu,
      po?.drain.cpu,
    );
  }
  return rows;
}

function ratio(r: Row): string {
  if (r.ejabberd === undefined || r.parley === undefined || !(r.ejabberd > 0) || !Number.isFinite(r.parley)) return "-";
  const x = r.parley / r.ejabberd;
  return `${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2)}×`;
}

function report() {
  const rows = buildRows();
  const header = [
    "workload / metric",
    "ejabberd",
    "Parley",
    "Parley ÷ ejabberd",
    "better",
    "ejabberd CPU srv / gen",
    "Parley CPU srv / gen",
  ];
  const cells = rows.map((r) => {
    const better =
      r.ejabberd === undefined || r.parley === undefined || !Number.isFinite(r.ejabberd) || !Number.isFinite(r.parley)
        ? "-"
        : r.parley === r.ejabberd
          ? "="
          : r.parley < r.ejabberd === r.lowerIsBetter
            ? "Parley"
            : "ejabberd";
    return [
      r.metric,
      fmtValue(r.ejabberd, r.unit),
      fmtValue(r.parley, r.unit),
      ratio(r),
      better,
      cpuCell(r.ejabberdCpu),
      cpuCell(r.parleyCpu),
    ];
  });
  console.log(
    `\n## Parley vs ejabberd ${ejabberd.version ?? ""} on this machine (${cpus().length} cores${quick ? ", --quick" : ""})`,
  );
  console.log(renderTable(header, cells));

  const heavier = rows.filter(
    (r) =>
      (r.ejabberdCpu && r.ejabberdCpu.generatorPercent > r.ejabberdCpu.serverPercent) ||
      (r.parleyCpu && r.parleyCpu.generatorPercent > r.parleyCpu.serverPercent),
  );
  const notes: string[] = [
    `Payloads: ejabberd gets <message type='chat'> with a ${XMPP_BODY_BYTES}-byte body and a XEP-0184 receipt request; ` +
      `Parley gets ${E2E_TEXT_CIPHERTEXT_BYTES}-byte random bodies, the size of a Signal ciphertext of a 100-byte text ` +
      "(pre-encrypted-size random bytes, not real Signal sessions), inside real Noise transport and stanzas.",
    "CPU = % of one core from /proc over the measured window (server = every server process; gen = load generator " +
      "processes); ⚠ marks points where the generator used more CPU than the server (the figure may be client-bound).",
    "Density memory = (RSS of all server processes after the logins and a " +
      `${holdMs / 1000} s idle hold − RSS before) ÷ connections held. ejabberd is one OS process, so the 20,000 ` +
      "open-file limit caps it below 20,000 connections; Parley runs several workers, for density with " +
      `--worker-semi-space-mb ${densitySemiSpace} (a small young generation: less idle memory, ~10% less peak throughput), ` +
      `messaging and offline with --workers ${parleyWorkers} --worker-semi-space-mb ${messagingSemiSpace} (scavenge ` +
      "pauses are most of a paced message's latency tail). Load generators run with --max-semi-space-size=4 (short pauses).",
    "Offline store: Parley = server acks (durable) per second; ejabberd = messages handled per second, from XEP-0198 " +
      "<a h/> answers (ejabberd stores in Mnesia before handling the next stanza).",
    "Parley's server commits every message durably (SQLite) before acking; ejabberd keeps online messages in memory.",
  ];
  if (heavier.length > 0) notes.push(`Generator heavier than server at: ${heavier.map((r) => r.metric).join("; ")}.`);
  const checks: string[] = [];
  if (ejabberd.max) checks.push(`ejabberd max: ${checkOnline(ejabberd.max)}`);
  if (ejabberd.half) checks.push(`ejabberd 50%: ${checkOnline(ejabberd.half)}`);
  if (ejabberd.offline) checks.push(`ejabberd offline: ${checkOffline(ejabberd.offline)}`);
  if (parley.max) checks.push(`Parley max: ${checkOnline(parley.max)}`);
  if (parley.half) checks.push(`Parley 50%: ${checkOnline(parley.half)}`);
  if (parley.atEjabberdHalf) checks.push(`Parley at ejabberd's 50%: ${checkOnline(parley.atEjabberdHalf)}`);
  if (parley.offline) checks.push(`Parley offline: ${checkOffline(parley.offline)}`);
  if (checks.length > 0) notes.push(`Checks: ${checks.join("; ")}.`);
  for (const d of [
    ["ejabberd", ejabberd.density],
    ["Parley", parley.density],
  ] as const) {
    if (d[1]) {
      notes.push(
        `${d[0]} density: ${fmtInt(d[1].held)} held of ${fmtInt(d[1].target)} (${d[1].failed} failed, ${d[1].retried} retried once${d[1].firstError ? `; first error: ${d[1].firstError}` : ""}); ` +
          `server ${d[1].loaded.processes} processes, ${fmtInt(d[1].loaded.rssBytes / 1048576)} MiB RSS ` +
          `(${fmtInt(d[1].baseline.rssBytes / 1048576)} before), at most ${fmtInt(d[1].loaded.maxFds)} fds in one process; ` +
          `${d[1].generatorProcesses} generator processes (≤ ${fmtInt(d[1].generatorMaxFds)} fds each), ${d[1].loginConcurrency} logins in flight.`,
      );
    }
  }
  if (ejabberd.registered !== undefined)
    notes.push(
      `ejabberd: ${fmtInt(ejabberd.registered)} users registered in-VM in ${fmtMs((ejabberd.registerMs ?? 0) / 1000)} s.`,
    );
  if (parley.registered !== undefined)
    notes.push(
      `Parley: ${fmtInt(parley.registered)} accounts registered over the protocol in ${fmtMs((parley.registerMs ?? 0) / 1000)} s` +
        `${parley.fromCache ? `, ${fmtInt(parley.fromCache)} from cache` : ""}` +
        `${parley.registerRetries ? `; ${parley.registerRetries} unanswered for 20 s and retried (${parley.firstRegisterRetry})` : ""}.`,
    );
  for (const [name, side] of [
    ["ejabberd", ejabberd],
    ["Parley", parley],
  ] as const) {
    for (const e of side.errors) notes.push(`ERROR ${name} ${e.workload}: ${e.error}`);
  }
  for (const n of notes) console.log(`- ${n}`);

  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    quick,
    options: {
      workloads: [...workloads],
      only: only ?? "both",
      ejabberdConnections,
      parleyConnections,
      parleyDensityWorkers,
      parleyWorkers,
      densitySemiSpace,
      messagingSemiSpace,
      loginConcurrency,
      holdMs,
      pairs,
      procs,
      maxInFlight,
      warmupMs,
      measureMs,
      halfMeasureMs,
      offlineMessages,
      offlineSenders,
      offlineWindow,
    },
    payloads: {
      ejabberd: `${XMPP_BODY_BYTES}-byte body, XEP-0184 request`,
      parley: `${E2E_TEXT_CIPHERTEXT_BYTES}-byte pre-encrypted-size random bytes, not real Signal sessions`,
    },
    ejabberd,
    parley,
    rows: rows.map((r) => ({ ...r, ratio: ratio(r) })),
    notes,
  };
  mkdirSync(fileURLToPath(new URL("../results/", import.meta.url)), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nJSON: ${RESULTS}`);
}

async function main() {
  log(
    `workloads ${[...workloads].join(", ")}; ${only ? `only ${only}` : "ejabberd then Parley"}` +
      `${quick ? " (--quick)" : ""}`,
  );
  if (runEjabberd) await benchEjabberd();
  checkInterrupted();
  if (runParley) await benchParley();
  checkInterrupted();
  report();
  if (ejabberd.errors.length > 0 || parley.errors.length > 0) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  if (interrupted) console.error("interrupted: no table");
  else {
    console.error(err);
    process.exitCode = 1;
  }
} finally {
  await cleanup();
}
