// Long fuzz run: `npm run fuzz:wire [-- --cases N --noise N --seed S]`.
// Decoders (stanza, node, batch, login payloads) over random and mutated inputs, then the Noise
// XX handshake over mutated messages. Prints cases/s; exits 1 on any failure.
import { nodeSuite } from "../../src/noise/suite.node.ts";
import { buildCorpus, fuzzDecoders, Rng } from "./harness.ts";
import { fuzzNoiseHandshake } from "./noise-fuzz.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isFinite(v) ? v : fallback;
}

const totalCases = arg("cases", 1_000_000);
const noiseCases = arg("noise", 20_000);
const seed = arg("seed", Date.now() % 2 ** 31);
const chunk = 100_000;

console.log(`fuzz:wire seed=${seed} codec cases=${totalCases} noise cases=${noiseCases}`);
const corpus = buildCorpus(seed, 2000);
let failures = 0;
const rejected: Record<string, number> = {};
let decoded = 0;
const started = performance.now();
for (let done = 0; done < totalCases; done += chunk) {
  const n = Math.min(chunk, totalCases - done);
  const stats = fuzzDecoders(corpus, seed + done, n);
  decoded += stats.decoded;
  for (const [code, count] of Object.entries(stats.rejected)) rejected[code] = (rejected[code] ?? 0) + count;
  for (const f of stats.failures) console.log(`FAILURE input=${f.input} error=${f.error}`);
  failures += stats.failures.length;
  const elapsed = (performance.now() - started) / 1000;
  console.log(`  codec ${done + n} cases, ${Math.round((done + n) / elapsed)} cases/s`);
}
const codecSeconds = (performance.now() - started) / 1000;
console.log(
  `codec: ${totalCases} cases in ${codecSeconds.toFixed(1)} s (${Math.round(totalCases / codecSeconds)} cases/s), ` +
    `decoded ${decoded}, rejected ${JSON.stringify(rejected)}, failures ${failures}`,
);

const noiseStart = performance.now();
const noise = fuzzNoiseHandshake(nodeSuite, new Rng(seed ^ 0x5a5a5a5a), noiseCases);
const noiseSeconds = (performance.now() - noiseStart) / 1000;
for (const f of noise.failures) console.log(`NOISE FAILURE input=${f.input} error=${f.error}`);
failures += noise.failures.length;
console.log(
  `noise XX handshake: ${noise.cases} cases in ${noiseSeconds.toFixed(1)} s (${Math.round(noise.cases / noiseSeconds)} cases/s), ` +
    `accepted ${noise.accepted} (altered message 1 only), rejected ${JSON.stringify(noise.rejected)}, failures ${noise.failures.length}`,
);
console.log(failures === 0 ? "fuzz:wire OK" : `fuzz:wire FAILED (${failures} failures)`);
process.exit(failures === 0 ? 0 : 1);
