// The client side of the media benchmark as its own plain-node process on the compiled SDK
// (`@parley/client` resolves to dist/ without --conditions=source), so the RSS it reports is
// a production client's, not the harness's (which runs under tsx and holds the test profile).
// One operation per process, read as JSON from stdin:
//   {"op":"upload","file":…,"baseUrl":…,"credentials":{"user","device","identityPrivateKeyHex"}}
//   {"op":"download","descriptorB64":…,"destDir":…}
// Prints one JSON line: {seconds, cpuSeconds, phases, idleRssMiB, peakRssMiB, descriptorB64? | path?}, where
// phases maps each progress phase (upload; download, decrypt) to when it ended, in seconds.
import { readFileSync } from "node:fs";
import { decodeMediaDescriptor, downloadMedia, encodeMediaDescriptor, uploadMediaFile } from "@parley/client";

const MiB = 1024 * 1024;

/** VmHWM: the kernel's own peak-RSS watermark for this process (no sampling gaps). */
function peakRss() {
  const status = readFileSync("/proc/self/status", "utf8");
  return (Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024) / MiB;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const idleRssMiB = process.memoryUsage.rss() / MiB;
// MEDIA_BENCH_MEMTRACE=1: report the largest V8 heap and ArrayBuffer (external) memory seen, to tell
// garbage waiting for a GC from buffers held on purpose.
const memPeak = { heapUsed: 0, arrayBuffers: 0, rss: 0 };
const memTimer =
  process.env.MEDIA_BENCH_MEMTRACE === "1"
    ? setInterval(() => {
        const m = process.memoryUsage();
        for (const k of Object.keys(memPeak)) memPeak[k] = Math.max(memPeak[k], m[k] / MiB);
      }, 10).unref()
    : undefined;
process.on("exit", () => {
  if (memTimer) process.stderr.write(`client ${job.op} memory peaks MiB: ${JSON.stringify(memPeak)}\n`);
});
const start = process.hrtime.bigint();
const cpuStart = process.cpuUsage();
/** CPU seconds (all threads) this process spent since the start, in user and in kernel mode. */
const cpuSeconds = () => {
  const u = process.cpuUsage(cpuStart);
  return { user: u.user / 1e6, system: u.system / 1e6 };
};
const seconds = () => Number(process.hrtime.bigint() - start) / 1e9;
/** When each phase (upload; download, decrypt) ended, in seconds from the start. */
const phases = {};
const onProgress = (p) => {
  if (p.done) phases[p.phase] = seconds();
};

if (job.op === "upload") {
  const { user, device, identityPrivateKeyHex } = job.credentials;
  const descriptor = await uploadMediaFile(job.file, {
    baseUrl: job.baseUrl,
    credentials: { user, device, identityPrivateKey: new Uint8Array(Buffer.from(identityPrivateKeyHex, "hex")) },
    mime: "application/octet-stream",
    onProgress,
  });
  const elapsed = seconds();
  const descriptorB64 = Buffer.from(encodeMediaDescriptor(descriptor)).toString("base64");
  process.stdout.write(
    `${JSON.stringify({ seconds: elapsed, cpuSeconds: cpuSeconds(), phases, idleRssMiB, peakRssMiB: peakRss(), descriptorB64 })}\n`,
  );
} else if (job.op === "download") {
  const descriptor = decodeMediaDescriptor(new Uint8Array(Buffer.from(job.descriptorB64, "base64")));
  const got = await downloadMedia(descriptor, { destDir: job.destDir, onProgress });
  const elapsed = seconds();
  process.stdout.write(
    `${JSON.stringify({ seconds: elapsed, cpuSeconds: cpuSeconds(), phases, idleRssMiB, peakRssMiB: peakRss(), path: got.path })}\n`,
  );
} else {
  throw new Error(`unknown op ${job.op}`);
}
