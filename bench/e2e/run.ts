// npm run bench:e2e: a fresh real server (`parley serve --dev --workers 2`) under
// protocol-level load from separate generator processes:
//   (a) messages/s end to end with N online pairs (send → durable → pushed → devack →
//       delivered receipt back at the sender), at most 10 in flight per sender;
//   (b) one-way and receipt round-trip latency at maximum load and paced at 50% of it;
//   (c) 10,000 messages to an offline user: store rate, then drain time after login.
// Payloads are random bytes of the size of a Signal ciphertext of a 100-byte text
// (pre-encrypted-size), not real Signal sessions. Prints one table, writes
// bench/results/e2e.json, and stops everything it started (also on errors / Ctrl-C).
//
// Options: --pairs 500 --procs 2 --workers 2 --warmup-ms 3000 --measure-ms 10000
//   --half-measure-ms 8000 --paced-rate 4000 (a fixed paced point; 0 = none) --offline-messages 10000 --offline-senders 10 --offline-window 100
//   --transport tcp|ws --both-ways --data DIR (reuse a server data dir + account cache)
//   --server-cpu-prof DIR (V8 CPU profiles of every server process, written at exit)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { processTree, rssKiB } from "../load/cpu.ts";
import { E2E_TEXT_CIPHERTEXT_BYTES } from "../load/generator.ts";
import { type GeneratorPool, startGeneratorPool } from "../load/pool.ts";
import {
  CpuMeters,
  type CpuPoint,
  connectPlan,
  MAX_CONNECTIONS_PER_PROCESS,
  type OfflineResult,
  type OnlineResult,
  planPairs,
  prepareAccounts,
  runOffline,
  runOnline,
} from "../load/scenario.ts";
import { fmtInt, fmtMs, fmtPct, renderTable } from "../load/table.ts";
import { type RunningServer, startServerProcess } from "./server-process.ts";

const { values: args } = parseArgs({
  options: {
    pairs: { type: "string", default: "500" },
    procs: { type: "string", default: "2" },
    workers: { type: "string", default: "2" },
    "warmup-ms": { type: "string", default: "3000" },
    "measure-ms": { type: "string", default: "10000" },
    "half-measure-ms": { type: "string", default: "8000" },
    "paced-rate": { type: "string", default: "4000" },
    "max-in-flight": { type: "string", default: "10" },
    "offline-messages": { type: "string", default: "10000" },
    "offline-senders": { type: "string", default: "10" },
    "offline-window": { type: "string", default: "100" },
    transport: { type: "string", default: "tcp" },
    "both-ways": { type: "boolean", default: false },
    data: { type: "string" },
    "server-cpu-prof": { type: "string" },
  },
});
const num = (name: keyof typeof args) => {
  const n = Number(args[name]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number`);
  return n;
};
const pairs = num("pairs");
const workers = num("workers");
const procs = Math.max(num("procs"), Math.ceil((2 * pairs) / MAX_CONNECTIONS_PER_PROCESS), 1);
const warmupMs = num("warmup-ms");
const measureMs = num("measure-ms");
const halfMeasureMs = num("half-measure-ms");
const pacedRate = num("paced-rate");
const maxInFlight = num("max-in-flight");
const offlineMessages = num("offline-messages");
const offlineSenders = num("offline-senders");
const offlineWindow = num("offline-window");
const transport = args.transport === "ws" ? "ws" : "tcp";

let server: RunningServer | undefined;
let pool: GeneratorPool | undefined;
let tempData: string | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = () => {
  cleaning ??= (async () => {
    await pool?.stop().catch(() => {});
    await server?.stop().catch(() => {});
    if (tempData) rmSync(tempData, { recursive: true, force: true });
  })();
  return cleaning;
};
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the server and the generators`);
    void cleanup().then(() => process.exit(130));
  });
}

const log = (msg: string) => console.error(`[e2e] ${msg}`);

async function main() {
  if (!args.data) tempData = mkdtempSync(join(tmpdir(), "parley-e2e-"));
  const dataDir = args.data ? resolve(args.data) : tempData!;
  if (args["server-cpu-prof"]) mkdirSync(resolve(args["server-cpu-prof"]), { recursive: true });
  log(`starting parley serve --workers ${workers} (data ${dataDir})`);
  server = await startServerProcess({
    dataDir,
    workers,
    logLevel: "warn",
    ...(args["server-cpu-prof"] ? { cpuProfileDir: resolve(args["server-cpu-prof"]) } : {}),
  });
  const url = transport === "tcp" ? `tcp://127.0.0.1:${server.tcpPort}` : `ws://127.0.0.1:${server.httpPort}/ws`;
  const generators = await startGeneratorPool(procs, url);
  pool = generators;
  const meters = new CpuMeters(server.pid, () => generators.pids());

  const needed = 2 * pairs + offlineSenders + 1;
  log(`preparing ${needed} accounts over ${procs} generator processes`);
  const setup = await prepareAccounts(pool, { url, dataDir, count: needed, cache: args.data !== undefined });
  log(`accounts: ${setup.registered} registered, ${setup.fromCache} from cache, ${(setup.ms / 1000).toFixed(1)} s`);
  // Logins pin the server key (IK, one round trip) from here on.
  await pool.all(() => ({ op: "init", url, serverKey: setup.serverKey }));

  const plan = planPairs(setup.accounts, pairs, procs, args["both-ways"]);
  const serverTree = () => processTree(server!.pid);
  const rssBefore = rssKiB(serverTree());
  const login = await connectPlan(pool, plan);
  await new Promise((r) => setTimeout(r, 1000)); // let the login garbage go
  const rssPerConnectionKiB = (rssKiB(serverTree()) - rssBefore) / Math.max(login.connected, 1);
  log(`server RSS grew ${rssPerConnectionKiB.toFixed(1)} KiB per logged-in idle connection`);
  log(`${login.connected} clients logged in (${login.ik} with IK) in ${(login.ms / 1000).toFixed(1)} s`);

  log(
    `(a) saturating: ${plan.pairs} pairs, ${maxInFlight} in flight per sender, ${warmupMs} ms warm-up + ${measureMs} ms`,
  );
  const max = await runOnline(pool, plan, meters, { mode: "saturate", maxInFlight, warmupMs, measureMs });
  const halfRate = max.deliveredPerSec / 2;
  log(`(b) paced at ${fmtInt(halfRate)} msg/s (50% of max), ${measureMs === 0 ? 0 : halfMeasureMs} ms`);
  const half = await runOnline(pool, plan, meters, {
    mode: "paced",
    ratePerSec: halfRate,
    maxInFlight,
    warmupMs: Math.min(warmupMs, 1000),
    measureMs: halfMeasureMs,
  });

  let fixed: OnlineResult | undefined;
  if (pacedRate > 0) {
    log(`(b') paced at ${fmtInt(pacedRate)} msg/s, ${halfMeasureMs} ms`);
    fixed = await runOnline(pool, plan, meters, {
      mode: "paced",
      ratePerSec: pacedRate,
      maxInFlight,
      warmupMs: Math.min(warmupMs, 1000),
      measureMs: halfMeasureMs,
    });
  }

  const offlineAccounts = setup.accounts.slice(2 * pairs, 2 * pairs + offlineSenders + 1);
  const [recipient, ...senders] = offlineAccounts;
  log(`(c) offline: ${fmtInt(offlineMessages)} messages from ${senders.length} senders to an offline user`);
  const offline = await runOffline(pool, meters, {
    senders,
    recipient: recipient!,
    messages: offlineMessages,
    window: offlineWindow,
  });

  report({
    dataDir,
    url,
    setup,
    login: { ...login, rssPerConnectionKiB },
    max,
    half,
    ...(fixed ? { fixed } : {}),
    offline,
  });
}

function checkOnline(r: OnlineResult): string {
  const problems: string[] = [];
  const { sent, acked, delivered, receipted } = r.totals;
  if (acked !== sent || delivered !== sent || receipted !== sent) {
    problems.push(`sent ${sent} acked ${acked} delivered ${delivered} receipted ${receipted}`);
  }
  if (r.duplicates > 0) problems.push(`${r.duplicates} duplicates`);
  if (r.misrouted > 0) problems.push(`${r.misrouted} misrouted`);
  if (r.ackErrors > 0) problems.push(`${r.ackErrors} ack errors (${r.firstError})`);
  if (r.connectionsLost > 0) problems.push(`${r.connectionsLost} connections lost`);
  if (r.pacedSkipped > 0) problems.push(`pacing fell behind by ${r.pacedSkipped} msgs`);
  return problems.length === 0 ? `ok (${fmtInt(sent)} msgs exactly once)` : problems.join("; ");
}

function checkOffline(o: OfflineResult): string {
  const problems: string[] = [];
  if (o.store.acked !== o.store.messages) problems.push(`acked ${o.store.acked}/${o.store.messages}`);
  if (o.store.ackErrors > 0) problems.push(`${o.store.ackErrors} ack errors (${o.store.firstError})`);
  if (o.drain.delivered !== o.drain.messages) problems.push(`delivered ${o.drain.delivered}/${o.drain.messages}`);
  if (o.drain.receipted !== o.drain.messages) problems.push(`receipted ${o.drain.receipted}/${o.drain.messages}`);
  if (o.drain.duplicates > 0) problems.push(`${o.drain.duplicates} duplicates`);
  if (!o.drain.queueEmptySeen) problems.push("no queue-empty notice");
  return problems.length === 0 ? `ok (${fmtInt(o.drain.messages)} msgs exactly once)` : problems.join("; ");
}

const cpuCells = (c: CpuPoint) => [fmtPct(c.serverPercent), fmtPct(c.generatorPercent)];

function report(r: {
  dataDir: string;
  url: string;
  setup: Awaited<ReturnType<typeof prepareAccounts>>;
  login: Awaited<ReturnType<typeof connectPlan>> & { rssPerConnectionKiB: number };
  max: OnlineResult;
  half: OnlineResult;
  fixed?: OnlineResult;
  offline: OfflineResult;
}) {
  const { max, half, offline } = r;
  const header = [
    "point",
    "delivered msg/s",
    "receipts/s",
    "one-way p50 ms",
    "one-way p99 ms",
    "receipt RTT p50 ms",
    "receipt RTT p99 ms",
    "time",
    "server CPU",
    "generator CPU",
    "server µs/msg",
    "check",
  ];
  const online = (label: string, o: OnlineResult) => [
    label,
    fmtInt(o.deliveredPerSec),
    fmtInt(o.receiptsPerSec),
    fmtMs(o.oneWay.p50),
    fmtMs(o.oneWay.p99),
    fmtMs(o.receiptRtt.p50),
    fmtMs(o.receiptRtt.p99),
    `${fmtInt(o.cpu.wallMs / 1000)} s`,
    ...cpuCells(o.cpu),
    fmtInt((o.cpu.serverCpuMs * 1000) / (o.deliveredPerSec * (o.cpu.wallMs / 1000))),
    checkOnline(o),
  ];
  const { store, drain } = offline;
  const rows = [
    online(`max load (${max.flows} senders, ${maxInFlight} in flight each)`, max),
    online(`50% of max (paced ${fmtInt(half.targetRate ?? 0)} msg/s)`, half),
    ...(r.fixed ? [online(`fixed pace (${fmtInt(r.fixed.targetRate ?? 0)} msg/s)`, r.fixed)] : []),
    [
      `offline store: ${fmtInt(store.messages)} msgs, ${offline.senders} senders (acks/s)`,
      fmtInt(store.acksPerSec),
      "-",
      "-",
      "-",
      "-",
      "-",
      `${fmtMs(store.ms)} ms`,
      ...cpuCells(store.cpu),
      fmtInt((store.cpu.serverCpuMs * 1000) / store.messages),
      checkOffline(offline),
    ],
    [
      "offline drain: login → last message",
      fmtInt((drain.delivered / drain.drainMs) * 1000),
      fmtInt((drain.receipted / drain.receiptsMs) * 1000),
      "-",
      "-",
      "-",
      "-",
      `${fmtMs(drain.drainMs)} ms`,
      ...cpuCells(drain.cpu),
      fmtInt((drain.cpu.serverCpuMs * 1000) / drain.messages),
      `login ${fmtMs(drain.loginMs)} ms, all receipts back ${fmtMs(drain.receiptsMs)} ms`,
    ],
  ];
  console.log(
    `\n## Parley end to end: ${r.login.connected} clients over ${transport.toUpperCase()}, server with ${workers} workers, ` +
      `${procs} generator processes`,
  );
  console.log(renderTable(header, rows));
  const notes = [
    `Payloads: ${E2E_TEXT_CIPHERTEXT_BYTES}-byte random bodies, the size of a Signal ciphertext of a 100-byte text ` +
      "(pre-encrypted-size random bytes, not real Signal sessions); real Noise handshakes, logins and stanzas.",
    "msg/s = messages delivered to recipients; receipts/s = delivered receipts back at senders; " +
      "one-way = send → delivery at the recipient; receipt RTT = send → delivered receipt at the sender.",
    "CPU from /proc, % of one core (the machine has 2): server = launcher + cluster primary + workers; " +
      "generator = the load processes. Drain CPU covers login → all receipts back.",
  ];
  const heavier = [
    ["max load", max.cpu],
    ["50% load", half.cpu],
    ...(r.fixed ? [["fixed pace", r.fixed.cpu] as const] : []),
    ["offline store", store.cpu],
    ["offline drain", drain.cpu],
  ].filter(([, c]) => (c as CpuPoint).generatorPercent > (c as CpuPoint).serverPercent);
  if (heavier.length > 0) {
    notes.push(
      `NOTE: the generator used more CPU than the server at: ${heavier.map(([n]) => n).join(", ")} ` +
        "(on 2 shared cores the figures there are bounded by the load side too).",
    );
  }
  notes.push(
    `Accounts: ${r.setup.registered} registered (${fmtMs(r.setup.ms / 1000)} s), ${r.setup.fromCache} from cache; ` +
      `${r.login.connected} logins in ${fmtMs(r.login.ms / 1000)} s (${r.login.ik} IK, ` +
      `${fmtInt((r.login.connected / r.login.ms) * 1000)}/s); server RSS +${r.login.rssPerConnectionKiB.toFixed(1)} KiB per idle connection.`,
  );
  for (const n of notes) console.log(`- ${n}`);

  const json = {
    date: new Date().toISOString(),
    node: process.version,
    transport,
    serverWorkers: workers,
    generatorProcesses: procs,
    pairs,
    bothWays: args["both-ways"],
    maxInFlight,
    bodyBytes: E2E_TEXT_CIPHERTEXT_BYTES,
    payloads: "pre-encrypted-size random bytes, not real Signal sessions",
    accounts: r.setup,
    login: r.login,
    maxLoad: max,
    halfLoad: half,
    ...(r.fixed ? { fixedPace: r.fixed } : {}),
    offline,
    generatorHeavier: heavier.map(([n]) => n),
  };
  const dir = fileURLToPath(new URL("../results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    `${dir}e2e.json`,
    `${JSON.stringify({ ...json, accounts: { ...r.setup, accounts: undefined } }, null, 2)}\n`,
  );
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
