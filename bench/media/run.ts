// Media benchmark: a 1 GiB file (MEDIA_BENCH_MIB to change) encrypted+uploaded and then
// downloaded+verified+decrypted in the production configuration: the compiled build (dist/,
// built first when missing or older than src/) on plain node, the server as
// `PARLEY_DIST=1 parley serve --workers 0` and the client as its own process
// (./client-child.mjs), so each RSS is that process's own kernel peak (VmHWM).
//
// Baseline: OpenSSL on the same file, same machine, measured twice (see docs/media.md):
//   "disk":  openssl enc -aes-256-cbc -out <file> (+ sha256sum), the classic comparison; at
//            1 GiB the page cache writeback throttles the writer, which slows openssl as much
//            as the crypto does.
//   "nodisk": openssl enc … -out /dev/null (+ sha256sum of the plaintext in the page cache):
//            the pure CPU cost of encrypt+hash, with no writes at all on the openssl side.
// Each side runs MEDIA_BENCH_RUNS times (default 3), interleaved (openssl, then Parley, in each
// run), and the median counts, because the machine is shared and noisy. Prints a table and JSON, writes bench/results/media.json, deletes its temp files.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { mediaUploadCredentials, openClient } from "@parley/client";

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.MEDIA_BENCH_MIB ?? 1024);
const SIZE = SIZE_MIB * MiB;
const RUNS = Math.max(1, Number(process.env.MEDIA_BENCH_RUNS ?? 3));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGES = ["wire", "signal", "server", "client", "cli"];

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function run(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status})`);
  return seconds(t);
}

function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** `npm run build` when some package's dist/ is missing or older than its src/. */
function ensureBuild(): void {
  const stale = PACKAGES.filter((p) => {
    const pkg = join(ROOT, "packages", p);
    const info = join(pkg, "dist", ".tsbuildinfo");
    return !existsSync(info) || newestMtime(join(pkg, "src")) > statSync(info).mtimeMs;
  });
  if (stale.length === 0) return;
  process.stderr.write(`building (stale: ${stale.join(", ")})\n`);
  const r = spawnSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error("npm run build failed");
}

async function writeFile(path: string): Promise<void> {
  const out = createWriteStream(path);
  for (let i = 0; i < SIZE_MIB; i++) {
    if (!out.write(randomBytes(MiB))) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
}

function procMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** Extra node flags for a child (profiling: "--cpu-prof --cpu-prof-dir=/tmp/prof", "--trace-gc"). */
function nodeArgs(variable: string): string[] {
  return process.env[variable]?.split(" ").filter(Boolean) ?? [];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The production server: the compiled CLI on plain node, one process (no workers). */
async function startServer(dataDir: string): Promise<{ child: ChildProcess; port: number }> {
  const [port, tcpPort] = [await freePort(), await freePort()];
  const args = [
    ...nodeArgs("MEDIA_BENCH_SERVER_NODE_ARGS"),
    join(ROOT, "packages/cli/bin/parley.js"),
    "serve",
    "--dev",
    "--workers",
    "0",
    "--port",
    String(port),
    "--tcp-port",
    String(tcpPort),
    "--data",
    dataDir,
    "--log-level",
    "silent",
    "--media-max-bytes",
    String(2 * SIZE + MiB),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "inherit", "pipe"],
    env: {
      ...process.env,
      PARLEY_DIST: "1",
    },
  });
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on("line", (line) => {
      if (line.startsWith("parley server:")) resolve();
      else process.stderr.write(`server: ${line}\n`);
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port };
}

interface ChildResult {
  seconds: number;
  /** CPU time of the client process (all threads) during the operation. */
  cpuSeconds?: { user: number; system: number };
  /** When each progress phase ended (seconds from the start): download, then decrypt. */
  phases?: Record<string, number>;
  idleRssMiB: number;
  peakRssMiB: number;
  descriptorB64?: string;
  path?: string;
}

/** One upload or download in a fresh plain-node client process. */
async function clientChild(job: object): Promise<ChildResult> {
  const entry = fileURLToPath(new URL("./client-child.mjs", import.meta.url));
  // MEDIA_BENCH_CLIENT_WRAP runs the client under a tool, e.g. "strace -f -c -o /tmp/sys.txt".
  const wrap = nodeArgs("MEDIA_BENCH_CLIENT_WRAP");
  const argv = [process.execPath, ...nodeArgs("MEDIA_BENCH_CLIENT_NODE_ARGS"), entry];
  const child = spawn(wrap[0] ?? argv[0]!, [...wrap.slice(1), ...(wrap.length > 0 ? argv : argv.slice(1))], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  child.stdin!.end(JSON.stringify(job));
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  if (code !== 0) throw new Error(`client child exited with ${code}`);
  // The result is the last line; anything before it is diagnostics (e.g. --trace-gc).
  const lines = out.trim().split("\n");
  if (lines.length > 1) process.stderr.write(`${lines.slice(0, -1).join("\n")}\n`);
  return JSON.parse(lines.at(-1) ?? "") as ChildResult;
}

function opensslArgs(decrypt: boolean, key: string, iv: string, input: string, output: string): string[] {
  return ["enc", ...(decrypt ? ["-d"] : []), "-aes-256-cbc", "-K", key, "-iv", iv, "-in", input, "-out", output];
}

async function main(): Promise<void> {
  ensureBuild();
  const dir = mkdtempSync(join(tmpdir(), "parley-media-bench-"));
  let server: ChildProcess | undefined;
  try {
    const file = join(dir, "input.bin");
    process.stderr.write(`generating ${SIZE_MIB} MiB in ${dir}; ${RUNS} run(s) of each path\n`);
    await writeFile(file);

    const key = randomBytes(32).toString("hex");
    const iv = randomBytes(16).toString("hex");
    const enc = `${file}.enc`;
    const dec = `${file}.dec`;
    const base = {
      encDisk: [] as number[],
      decDisk: [] as number[],
      encNoDisk: [] as number[],
      decNoDisk: [] as number[],
    };
    // One run of each baseline; called right before each Parley run, so that both see the same
    // load on a shared machine (interleaved, not all of one and then all of the other).
    const opensslRun = (i: number) => {
      process.stderr.write(`openssl run ${i + 1}/${RUNS}\n`);
      base.encDisk.push(run("openssl", opensslArgs(false, key, iv, file, enc)) + run("sha256sum", [file]));
      base.decDisk.push(run("openssl", opensslArgs(true, key, iv, enc, dec)) + run("sha256sum", [dec]));
      base.encNoDisk.push(run("openssl", opensslArgs(false, key, iv, file, "/dev/null")) + run("sha256sum", [file]));
      // The plaintext hash runs over the (identical, cached) input: nothing decrypted is written.
      base.decNoDisk.push(run("openssl", opensslArgs(true, key, iv, enc, "/dev/null")) + run("sha256sum", [file]));
      rmSync(enc, { force: true });
      rmSync(dec, { force: true });
    };

    const dataDir = join(dir, "server");
    mkdirSync(dataDir);
    const started = await startServer(dataDir);
    server = started.child;
    const baseUrl = `http://127.0.0.1:${started.port}`;
    const serverIdle = procMemory(server.pid!);
    const profile = await openClient({
      dir: join(dir, "profile"),
      serverUrl: `ws://127.0.0.1:${started.port}/ws`,
      preKeyBatch: 2,
    });
    const reg = await profile.register(`bench${Date.now() % 1e9}`);
    if (reg.status !== "registered") throw new Error("registration failed");
    const creds = mediaUploadCredentials(profile.store);
    await profile.stop();
    const credentials = {
      user: creds.user,
      device: creds.device,
      identityPrivateKeyHex: Buffer.from(creds.identityPrivateKey).toString("hex"),
    };

    // VmHWM only grows: read after the first upload it is the upload's peak, at the end the overall one.
    let serverPeakUpload = 0;
    const ups: ChildResult[] = [];
    const downs: ChildResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      opensslRun(i);
      process.stderr.write(`parley run ${i + 1}/${RUNS}\n`);
      const up = await clientChild({ op: "upload", file, baseUrl, credentials });
      ups.push(up);
      serverPeakUpload = Math.max(serverPeakUpload, procMemory(server.pid!).peak);
      const inbox = join(dir, "inbox");
      const down = await clientChild({ op: "download", descriptorB64: up.descriptorB64, destDir: inbox });
      downs.push(down);
      const sha = spawnSync("sha256sum", [down.path!], { encoding: "utf8" }).stdout.split(" ")[0];
      const want = spawnSync("sha256sum", [file], { encoding: "utf8" }).stdout.split(" ")[0];
      if (sha !== want) throw new Error("downloaded file differs");
      rmSync(inbox, { recursive: true, force: true });
    }
    const serverPeak = procMemory(server.pid!).peak;

    const rate = (s: number) => SIZE / MiB / s;
    const upSec = median(ups.map((u) => u.seconds));
    const downSec = median(downs.map((d) => d.seconds));
    const b = {
      encDisk: median(base.encDisk),
      decDisk: median(base.decDisk),
      encNoDisk: median(base.encNoDisk),
      decNoDisk: median(base.decNoDisk),
    };
    const result = {
      sizeMiB: SIZE_MIB,
      runs: RUNS,
      configuration:
        "compiled dist/ on plain node; server: PARLEY_DIST=1 parley serve --workers 0; client: own process",
      openssl: {
        encryptHashToDiskMiBps: rate(b.encDisk),
        decryptHashToDiskMiBps: rate(b.decDisk),
        encryptHashNoDiskMiBps: rate(b.encNoDisk),
        decryptHashNoDiskMiBps: rate(b.decNoDisk),
        samplesSec: base,
      },
      parley: {
        encryptUploadMiBps: rate(upSec),
        downloadVerifyDecryptMiBps: rate(downSec),
        samplesSec: { upload: ups.map((u) => u.seconds), download: downs.map((d) => d.seconds) },
        // Download = fetch + verify (first pass), then decrypt (second pass): when each ended.
        downloadPhasesSec: downs.map((d) => d.phases ?? {}),
        // CPU seconds of the client process (all threads), user and system: less noisy than wall time.
        clientCpuSec: { upload: ups.map((u) => u.cpuSeconds), download: downs.map((d) => d.cpuSeconds) },
      },
      ratio: {
        uploadVsDisk: b.encDisk / upSec,
        downloadVsDisk: b.decDisk / downSec,
        uploadVsNoDisk: b.encNoDisk / upSec,
        downloadVsNoDisk: b.decNoDisk / downSec,
      },
      goal: { ratio: 0.7, peakRssMiB: 100 },
      rssMiB: {
        clientIdle: median(ups.map((u) => u.idleRssMiB)),
        clientPeakUpload: Math.max(...ups.map((u) => u.peakRssMiB)),
        clientPeakDownload: Math.max(...downs.map((d) => d.peakRssMiB)),
        serverIdle: serverIdle.rss / MiB,
        serverPeakUpload: serverPeakUpload / MiB,
        serverPeak: serverPeak / MiB,
      },
    };
    const f = (n: number) => n.toFixed(1);
    const pct = (n: number) => `${(n * 100).toFixed(1)}%`;
    console.log(`media benchmark, ${SIZE_MIB} MiB file, median of ${RUNS} run(s), compiled build on plain node`);
    console.log("| path | MiB/s | parley vs it |");
    console.log("|---|---:|---:|");
    console.log(
      `| openssl enc -aes-256-cbc → file, + sha256sum | ${f(rate(b.encDisk))} | ${pct(result.ratio.uploadVsDisk)} |`,
    );
    console.log(
      `| openssl enc -aes-256-cbc → /dev/null, + sha256sum | ${f(rate(b.encNoDisk))} | ${pct(result.ratio.uploadVsNoDisk)} |`,
    );
    console.log(`| **parley encrypt + upload** | ${f(rate(upSec))} | |`);
    console.log(`| openssl enc -d → file, + sha256sum | ${f(rate(b.decDisk))} | ${pct(result.ratio.downloadVsDisk)} |`);
    console.log(
      `| openssl enc -d → /dev/null, + sha256sum | ${f(rate(b.decNoDisk))} | ${pct(result.ratio.downloadVsNoDisk)} |`,
    );
    console.log(`| **parley download + verify + decrypt** | ${f(rate(downSec))} | |`);
    const fetchSec = median(downs.map((d) => d.phases?.download ?? Number.NaN));
    console.log(`| … first pass: fetch + SHA-256 + MAC (to the temporary file) | ${f(rate(fetchSec))} | |`);
    console.log(`| … second pass: decrypt + SHA-256 (in place) | ${f(rate(downSec - fetchSec))} | |`);
    console.log("");
    console.log("| process | idle RSS MiB | peak RSS MiB (VmHWM) |");
    console.log("|---|---:|---:|");
    console.log(`| client, upload | ${f(result.rssMiB.clientIdle)} | ${f(result.rssMiB.clientPeakUpload)} |`);
    console.log(`| client, download | ${f(result.rssMiB.clientIdle)} | ${f(result.rssMiB.clientPeakDownload)} |`);
    console.log(`| server, upload | ${f(result.rssMiB.serverIdle)} | ${f(result.rssMiB.serverPeakUpload)} |`);
    console.log(`| server, upload + download | ${f(result.rssMiB.serverIdle)} | ${f(result.rssMiB.serverPeak)} |`);
    console.log("");
    console.log(JSON.stringify(result, null, 2));
    const out = join(ROOT, "bench/results");
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "media.json"), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    if (server && server.exitCode === null) {
      server.kill("SIGTERM");
      await new Promise((r) => server!.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
