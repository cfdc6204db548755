// npm run bench:idle-memory: server JS heap and RSS per idle, logged-in connection.
// An in-process server (`--workers 0`, so its heap is this process's) takes N logins from
// separate generator processes; heap is measured after forced GCs before and after the logins.
// Options: --connections 2000 --procs 2
//   node --expose-gc --conditions=source --import tsx bench/e2e/idle-memory.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { loadConfig } from "../../packages/server/src/config.ts";
import { startServer } from "../../packages/server/src/server.ts";
import { startGeneratorPool } from "../load/pool.ts";
import { connectPlan, planPairs, prepareAccounts } from "../load/scenario.ts";
import { freePort } from "./server-process.ts";

const { values: args } = parseArgs({
  options: { connections: { type: "string", default: "2000" }, procs: { type: "string", default: "2" } },
});
const connections = Number(args.connections);
const procs = Number(args.procs);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 200));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss, external: m.external + m.arrayBuffers };
};

const dir = mkdtempSync(join(tmpdir(), "parley-idle-"));
const tcpPort = String(await freePort());
const config = loadConfig(["--dev", "--workers", "0", "--port", "0", "--tcp-port", tcpPort, "--data", dir], {});
const server = await startServer(config, { log: pino({ level: "warn" }) });
const url = `tcp://127.0.0.1:${server.tcpPort}`;
const pool = await startGeneratorPool(procs, url);
try {
  const setup = await prepareAccounts(pool, { url, dataDir: dir, count: connections, cache: false });
  await pool.all(() => ({ op: "init", url, serverKey: setup.serverKey }));
  const before = await settle();
  if (process.env.IDLE_HEAP_SNAPSHOT) {
    const { writeHeapSnapshot } = await import("node:v8");
    writeHeapSnapshot(`${process.env.IDLE_HEAP_SNAPSHOT}.before`);
  }
  const plan = planPairs(setup.accounts, connections / 2, procs, false);
  const login = await connectPlan(pool, plan);
  await new Promise((r) => setTimeout(r, 1000));
  const after = await settle();
  if (process.env.IDLE_HEAP_SNAPSHOT) {
    const { writeHeapSnapshot } = await import("node:v8");
    console.error(`heap snapshot: ${writeHeapSnapshot(process.env.IDLE_HEAP_SNAPSHOT)}`);
  }
  const per = (b: number, a: number) => ((a - b) / login.connected / 1024).toFixed(2);
  const result = {
    connections: login.connected,
    loginsPerSec: Math.round((login.connected / login.ms) * 1000),
    heapKiBPerConnection: Number(per(before.heap, after.heap)),
    externalKiBPerConnection: Number(per(before.external, after.external)),
    rssKiBPerConnection: Number(per(before.rss, after.rss)),
  };
  console.log(`| connections | logins/s | JS heap KiB/conn | external KiB/conn | RSS KiB/conn |`);
  console.log(`|---|---|---|---|---|`);
  console.log(
    `| ${result.connections} | ${result.loginsPerSec} | ${result.heapKiBPerConnection} | ${result.externalKiBPerConnection} | ${result.rssKiBPerConnection} |`,
  );
  console.log(JSON.stringify(result));
} finally {
  await pool.stop();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
