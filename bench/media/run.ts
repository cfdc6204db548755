// Media benchmark: a 1 GiB file (MEDIA_BENCH_MIB to change) encrypted+uploaded and then
// downloaded+verified+decrypted through a Parley server running as a child process, against
// `openssl enc -aes-256-cbc` plus `sha256sum` on the same file on the same machine. Reports the
// rates and peak RSS of the client (this process) and the server (/proc/<pid>/status), prints a
// table and JSON, writes bench/results/media.json, and deletes its temp files.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { openClient } from "@parley/client";
import { downloadMedia, mediaUploadCredentials, uploadMediaFile } from "../../packages/client/src/media/index.node.ts";

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.MEDIA_BENCH_MIB ?? 1024);
const SIZE = SIZE_MIB * MiB;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function run(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status})`);
  return seconds(t);
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

async function startServerChild(dataDir: string): Promise<{ child: ChildProcess; port: number }> {
  const entry = fileURLToPath(new URL("./server-child.ts", import.meta.url));
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", entry, dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

/** Samples this process's RSS every 20 ms; the peak over the sampled span. */
function rssSampler() {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss());
    },
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "parley-media-bench-"));
  let server: ChildProcess | undefined;
  try {
    const file = join(dir, "input.bin");
    process.stderr.write(`generating ${SIZE_MIB} MiB in ${dir}\n`);
    await writeFile(file);

    // Baseline: what the machine's OpenSSL does on the same file (encrypt, hash; decrypt, hash).
    const key = randomBytes(32).toString("hex");
    const iv = randomBytes(16).toString("hex");
    const opensslEnc = run("openssl", [
      "enc",
      "-aes-256-cbc",
      "-K",
      key,
      "-iv",
      iv,
      "-in",
      file,
      "-out",
      `${file}.enc`,
    ]);
    const shaPlain = run("sha256sum", [file]);
    const opensslDec = run("openssl", [
      "enc",
      "-d",
      "-aes-256-cbc",
      "-K",
      key,
      "-iv",
      iv,
      "-in",
      `${file}.enc`,
      "-out",
      `${file}.dec`,
    ]);
    const shaDec = run("sha256sum", [`${file}.dec`]);
    rmSync(`${file}.enc`);
    rmSync(`${file}.dec`);

    const dataDir = join(dir, "server");
    mkdirSync(dataDir);
    const started = await startServerChild(dataDir);
    server = started.child;
    const serverIdle = procMemory(server.pid!);
    const client = await openClient({
      dir: join(dir, "profile"),
      serverUrl: `ws://127.0.0.1:${started.port}/ws`,
      preKeyBatch: 2,
    });
    const reg = await client.register(`bench${Date.now() % 1e9}`);
    if (reg.status !== "registered") throw new Error("registration failed");
    const credentials = mediaUploadCredentials(client.store);
    await client.stop();
    global.gc?.();
    const clientIdle = process.memoryUsage.rss();

    const upSampler = rssSampler();
    let t = process.hrtime.bigint();
    const descriptor = await uploadMediaFile(file, {
      baseUrl: `http://127.0.0.1:${started.port}`,
      credentials,
      mime: "application/octet-stream",
    });
    const upload = seconds(t);
    const clientPeakUp = upSampler.stop();
    const serverAfterUp = procMemory(server.pid!);

    const downSampler = rssSampler();
    t = process.hrtime.bigint();
    const got = await downloadMedia(descriptor, { destDir: join(dir, "inbox") });
    const download = seconds(t);
    const clientPeakDown = downSampler.stop();
    const serverAfterDown = procMemory(server.pid!);
    const sha = spawnSync("sha256sum", [got.path], { encoding: "utf8" }).stdout.split(" ")[0];
    if (sha !== Buffer.from(descriptor.fileSha256).toString("hex")) throw new Error("downloaded file differs");

    const rate = (s: number) => SIZE / MiB / s;
    const opensslUpRate = rate(opensslEnc + shaPlain);
    const opensslDownRate = rate(opensslDec + shaDec);
    const result = {
      sizeMiB: SIZE_MIB,
      openssl: {
        encryptSec: opensslEnc,
        sha256Sec: shaPlain,
        decryptSec: opensslDec,
        sha256DecSec: shaDec,
        encryptPlusHashMiBps: opensslUpRate,
        decryptPlusHashMiBps: opensslDownRate,
      },
      parley: {
        encryptUploadSec: upload,
        encryptUploadMiBps: rate(upload),
        downloadDecryptSec: download,
        downloadDecryptMiBps: rate(download),
      },
      ratio: { upload: rate(upload) / opensslUpRate, download: rate(download) / opensslDownRate },
      goal: { ratio: 0.7, peakRssMiB: 100 },
      rssMiB: {
        clientIdle: clientIdle / MiB,
        clientPeakUpload: clientPeakUp / MiB,
        clientPeakDownload: clientPeakDown / MiB,
        serverIdle: serverIdle.rss / MiB,
        serverPeak: Math.max(serverAfterUp.peak, serverAfterDown.peak) / MiB,
      },
    };
    const f = (n: number) => n.toFixed(1);
    console.log(`media benchmark, ${SIZE_MIB} MiB file`);
    console.log("| path | seconds | MiB/s | vs openssl+sha256sum |");
    console.log("|---|---:|---:|---:|");
    console.log(`| openssl enc -aes-256-cbc + sha256sum | ${f(opensslEnc + shaPlain)} | ${f(opensslUpRate)} | 100% |`);
    console.log(`| parley encrypt + upload | ${f(upload)} | ${f(rate(upload))} | ${f(result.ratio.upload * 100)}% |`);
    console.log(`| openssl enc -d + sha256sum | ${f(opensslDec + shaDec)} | ${f(opensslDownRate)} | 100% |`);
    console.log(
      `| parley download + verify + decrypt | ${f(download)} | ${f(rate(download))} | ${f(result.ratio.download * 100)}% |`,
    );
    console.log("");
    console.log("| process | idle RSS MiB | peak RSS MiB |");
    console.log("|---|---:|---:|");
    console.log(`| client (upload) | ${f(result.rssMiB.clientIdle)} | ${f(result.rssMiB.clientPeakUpload)} |`);
    console.log(`| client (download) | ${f(result.rssMiB.clientIdle)} | ${f(result.rssMiB.clientPeakDownload)} |`);
    console.log(`| server (child process) | ${f(result.rssMiB.serverIdle)} | ${f(result.rssMiB.serverPeak)} |`);
    console.log("");
    console.log(JSON.stringify(result, null, 2));
    const out = fileURLToPath(new URL("../results/", import.meta.url));
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
