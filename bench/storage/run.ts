/**
 * Storage benchmark: durable enqueue rate with group commit (1, 10, 100 concurrent producers),
 * shared (group) enqueue, fetch+ack drain rate, and prekey bundle takes, on a real SQLite file
 * (WAL, synchronous=FULL). Prints a table and JSON; writes bench/results/storage.json.
 *
 *   node --conditions=source --import tsx bench/storage/run.ts [--seconds 2]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newTestDevice } from "../../packages/server/src/storage/conformance.ts";
import { SqliteStorage } from "../../packages/server/src/storage/index.ts";

const secondsArg = process.argv.indexOf("--seconds");
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;
const ENVELOPE_BYTES = 100;
const RECIPIENTS = 100;

interface Row {
  case: string;
  ops: number;
  seconds: number;
  perSecond: number;
  commits: number;
  writesPerCommit: number;
}

const dir = mkdtempSync(join(tmpdir(), "parley-bench-storage-"));
const storage = new SqliteStorage({ dataDir: dir });
const rows: Row[] = [];

function measureCommits(): () => { commits: number; writesPerCommit: number } {
  const before = storage.commitStats;
  return () => {
    const after = storage.commitStats;
    const commits = after.batches - before.batches;
    const writes = after.writes - before.writes;
    return { commits, writesPerCommit: commits === 0 ? 0 : Math.round((writes / commits) * 10) / 10 };
  };
}

function record(
  name: string,
  ops: number,
  startNs: bigint,
  commits: ReturnType<ReturnType<typeof measureCommits>>,
): void {
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  rows.push({
    case: name,
    ops,
    seconds: Math.round(seconds * 100) / 100,
    perSecond: Math.round(ops / seconds),
    ...commits,
  });
}

const accounts: string[] = [];
for (let i = 0; i < RECIPIENTS; i++) {
  accounts.push((await storage.createAccount(`bench${i}`, newTestDevice())).account.id);
}
const envelope = new Uint8Array(ENVELOPE_BYTES).fill(7);

async function enqueueWithProducers(producers: number): Promise<void> {
  const deadline = Date.now() + SECONDS * 1000;
  let ops = 0;
  const commits = measureCommits();
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: producers }, async (_, p) => {
      let i = p;
      while (Date.now() < deadline) {
        await storage.enqueue([{ accountId: accounts[i++ % RECIPIENTS]!, deviceId: 1, envelope, messageId: `m${i}` }]);
        ops++;
      }
    }),
  );
  record(`enqueue, ${producers} producer${producers === 1 ? "" : "s"}`, ops, start, commits());
}

for (const producers of [1, 10, 100]) await enqueueWithProducers(producers);

{
  // a 1 KiB group message to 20 member devices, 10 senders
  const deadline = Date.now() + SECONDS * 1000;
  let ops = 0;
  const commits = measureCommits();
  const start = process.hrtime.bigint();
  const payload = new Uint8Array(1024).fill(3);
  await Promise.all(
    Array.from({ length: 10 }, async (_, p) => {
      let i = p;
      while (Date.now() < deadline) {
        const members = Array.from({ length: 20 }, (_, k) => ({
          accountId: accounts[(i + k) % RECIPIENTS]!,
          deviceId: 1,
        }));
        await storage.enqueueShared(payload, members);
        i++;
        ops += members.length;
      }
    }),
  );
  record("enqueueShared 1 KiB x 20 members (entries/s)", ops, start, commits());
}

{
  // drain every queue: each device fetches 100 and acks them, all devices concurrently
  let ops = 0;
  const commits = measureCommits();
  const start = process.hrtime.bigint();
  await Promise.all(
    accounts.map(async (accountId) => {
      for (;;) {
        const page = await storage.fetch(accountId, 1, 0, 100);
        if (page.length === 0) return;
        // not `ops += await ...`: that reads `ops` before the await and loses concurrent updates
        const acked = await storage.ack(
          accountId,
          1,
          page.map((e) => e.seq),
        );
        ops += acked.length;
      }
    }),
  );
  record("fetch 100 + ack, 100 devices (entries/s)", ops, start, commits());
}

{
  const target = accounts[0]!;
  const keys = 1000;
  await storage.uploadPreKeys(target, 1, {
    ecOneTime: Array.from({ length: keys }, (_, i) => ({ id: i, publicKey: new Uint8Array(33).fill(1) })),
    kemOneTime: Array.from({ length: keys }, (_, i) => ({
      id: i,
      publicKey: new Uint8Array(1569).fill(2),
      signature: new Uint8Array(64),
    })),
  });
  const commits = measureCommits();
  const start = process.hrtime.bigint();
  for (let round = 0; round < keys / 50; round++) {
    await Promise.all(Array.from({ length: 50 }, () => storage.takePreKeyBundle(target, 1)));
  }
  record("takePreKeyBundle, 50 concurrent", keys, start, commits());
}

await storage.close();
rmSync(dir, { recursive: true, force: true });

const header = ["case", "ops", "s", "ops/s", "commits", "writes/commit"];
const table = rows.map((r) => [r.case, r.ops, r.seconds, r.perSecond, r.commits, r.writesPerCommit].map(String));
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
console.log(line(header));
for (const r of table) console.log(line(r));

const result = {
  name: "storage",
  date: new Date().toISOString(),
  node: process.version,
  settings: { secondsPerCase: SECONDS, envelopeBytes: ENVELOPE_BYTES, recipients: RECIPIENTS, synchronous: "FULL" },
  rows,
};
console.log(JSON.stringify(result, null, 2));
const resultsDir = fileURLToPath(new URL("../results/", import.meta.url));
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, "storage.json"), `${JSON.stringify(result, null, 2)}\n`);
