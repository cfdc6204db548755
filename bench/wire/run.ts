// npm run bench:wire: bytes on the wire vs XMPP, login cost, and codec throughput per stanza kind.
// Also runs the transport throughput part (bench/wire/noise.ts) when present.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Row } from "./row.ts";
import { BRIEF_FRAME_OVERHEAD, loginRows, sizeRows, TRANSPORT_RECORD_OVERHEAD } from "./sizes.ts";
import { throughputRows } from "./throughput.ts";

function table(title: string, rows: Row[]): void {
  console.log(`\n## ${title}`);
  console.table(rows);
}

const sizes = sizeRows();
table(
  `Bytes on the wire (E2E payload excluded; framed = stanza + ${BRIEF_FRAME_OVERHEAD} B frame [3-byte length + 16-byte tag]; ` +
    `transport = stanza + ${TRANSPORT_RECORD_OVERHEAD} B + varint length, Parley's actual record; ` +
    `warm = names already interned on the connection, cold = first mention)`,
  sizes,
);
const login = loginRows();
table("Full connect + login", login);
const throughput = throughputRows(Number(process.env.BENCH_MS ?? 300));
table("Codec throughput (stanzas/s, one core)", throughput);

let noise: Row[] = [];
const noiseBench = new URL("./noise.ts", import.meta.url);
if (existsSync(fileURLToPath(noiseBench))) {
  const mod = (await import(noiseBench.href)) as { runNoiseBench?: () => Promise<Row[]> };
  if (typeof mod.runNoiseBench === "function") {
    noise = await mod.runNoiseBench();
    table("Noise transport", noise);
  }
}

const result = { sizes, login, throughput, noise, node: process.version, date: new Date().toISOString() };
console.log(`\n${JSON.stringify(result)}`);
const dir = fileURLToPath(new URL("../results/", import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}wire.json`, `${JSON.stringify(result, null, 2)}\n`);
