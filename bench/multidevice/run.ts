// npm run bench:multidevice: multi-device costs with real SDK clients against a real server
// process (`parley serve --dev --workers 2`, WebSocket transport: the history bundle goes through
// the HTTP content store of the same port).
//   (1) one text message from a sender with 5 devices to a recipient with 5 devices (primary + 4
//       companions each, the limit) against 1 + 1: the first message (session setup with every
//       device) and the steady state (median/p95 over --messages sequential messages): send → ✓,
//       send → stored on every recipient device / on every device, send → ✓✓; and the bytes of
//       the `message` stanza (all per-device ciphertexts + overhead) and of the deliveries.
//   (2) history transfer: a primary with --history messages in one chat links a new device;
//       sendHistory (export + encrypt + upload + send) and import on the new device.
// Prints two tables, writes bench/results/multidevice.json, stops everything it started.
//
// Options: --messages 50 --history 100000 --workers 2
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ParleyClient } from "@parley/client";
import { type RunningServer, startServerProcess } from "../e2e/server-process.ts";
import { fmtInt, fmtMs, renderTable } from "../load/table.ts";
import { type ClientFactory, createAccount, linkRetries, stopAll } from "./accounts.ts";
import { Arrivals } from "./arrivals.ts";
import { type FanoutResult, type MessageSample, runFanout } from "./fanout.ts";
import { type HistoryResult, runHistory } from "./history.ts";
import type { Summary } from "./stats.ts";
import { WireMeter } from "./wire-meter.ts";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "50" },
    history: { type: "string", default: "100000" },
    workers: { type: "string", default: "2" },
  },
});
const count = (name: keyof typeof args, min: number) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const steadyMessages = count("messages", 1);
const historyMessages = count("history", 1);
const workers = count("workers", 0);

const log = (msg: string) => console.error(`[multidevice] ${msg}`);
const started = performance.now();

let server: RunningServer | undefined;
let root: string | undefined;
const clients = new Set<ParleyClient>();
let cleaning: Promise<void> | undefined;
const cleanup = () => {
  cleaning ??= (async () => {
    await stopAll(clients).catch(() => {});
    await server?.stop().catch(() => {});
    if (root) rmSync(root, { recursive: true, force: true });
  })();
  return cleaning;
};
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the clients and the server`);
    void cleanup().then(() => process.exit(130));
  });
}

async function main() {
  root = mkdtempSync(join(tmpdir(), "parley-bench-multidevice-"));
  const dataDir = join(root, "server");
  mkdirSync(dataDir);
  log(`starting parley serve --dev --workers ${workers}`);
  server = await startServerProcess({ dataDir, workers, logLevel: "warn" });
  const meter = new WireMeter();
  const factory: ClientFactory = { serverUrl: `ws://127.0.0.1:${server.httpPort}/ws`, root, meter };
  const ctx = { arrivals: new Arrivals(), meter };

  const setupStart = performance.now();
  const accounts = [];
  for (const [name, devices] of [
    ["alice", 1],
    ["bob", 1],
    ["carol", 5],
    ["dave", 5],
  ] as const) {
    const account = await createAccount(factory, name, devices);
    for (const d of account.devices) clients.add(d);
    accounts.push(account);
  }
  const [alice, bob, carol, dave] = accounts as [
    (typeof accounts)[0],
    (typeof accounts)[0],
    (typeof accounts)[0],
    (typeof accounts)[0],
  ];
  const setupMs = performance.now() - setupStart;
  log(`4 accounts, ${clients.size} devices registered/linked in ${(setupMs / 1000).toFixed(1)} s`);

  const single = await runFanout(ctx, "1 + 1 devices", alice, bob, steadyMessages, log);
  const multi = await runFanout(ctx, "5 + 5 devices", carol, dave, steadyMessages, log);
  // The fan-out clients are done: stop them so their background work does not skew part 2.
  await stopAll(clients);
  clients.clear();

  const history = await runHistory(factory, historyMessages, log, (c) => clients.add(c));
  report({ setupMs, single, multi, history, undecodable: meter.undecodable, linkRetries });
}

const latency = (s: Summary) => `${fmtMs(s.median)} / ${fmtMs(s.p95)}`;
const one = (n: number) => fmtMs(n);

function report(r: {
  setupMs: number;
  single: FanoutResult;
  multi: FanoutResult;
  history: HistoryResult;
  undecodable: number;
  linkRetries: number;
}) {
  const header = [
    "case",
    "ciphertexts (prekey)",
    "message stanza B",
    "ciphertexts B",
    "server→devices B",
    "send→✓ ms",
    "send→all recipient devices ms",
    "send→all devices ms",
    "send→✓✓ ms",
  ];
  const firstRow = (f: FanoutResult) => {
    const s: MessageSample = f.first;
    return [
      `${f.label}: first message`,
      `${s.ciphertexts} (${s.preKeyMessages})`,
      fmtInt(s.stanzaBytes),
      fmtInt(s.ciphertextBytes),
      fmtInt(s.deliveryBytes),
      one(s.tickMs),
      one(s.recipientsMs),
      one(s.allDevicesMs),
      one(s.receiptMs),
    ];
  };
  const steadyRow = (f: FanoutResult) => {
    const s = f.steady;
    return [
      `${f.label}: steady, p50 / p95 of ${s.messages}`,
      `${s.ciphertexts} (${s.preKeyMessages})`,
      fmtInt(s.stanzaBytes.median),
      fmtInt(s.ciphertextBytes.median),
      fmtInt(s.deliveryBytes.median),
      latency(s.tickMs),
      latency(s.recipientsMs),
      latency(s.allDevicesMs),
      latency(s.receiptMs),
    ];
  };
  console.log(
    `\n## Parley multi-device fan-out: real SDK clients, real server (${workers} workers), WebSocket transport`,
  );
  console.log(renderTable(header, [firstRow(r.single), steadyRow(r.single), firstRow(r.multi), steadyRow(r.multi)]));
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(1)}×` : "-");
  const notes = [
    `Text of ${r.single.textBytes} bytes. "5 + 5": the sender's primary (with 4 companions) writes to a user with ` +
      "5 devices: 5 ciphertexts for the recipient + 4 sent-message-sync copies for its own devices, in one stanza.",
    `Steady state: after the first message every device of both accounts sent once (${r.multi.warmupMessages} ` +
      "warm-up messages for 5 + 5), so every session is acknowledged; (prekey) = PreKeySignalMessages among them.",
    `5 + 5 vs 1 + 1, steady: stanza ${ratio(r.multi.steady.stanzaBytes.median, r.single.steady.stanzaBytes.median)}, ` +
      `send→✓ ${ratio(r.multi.steady.tickMs.median, r.single.steady.tickMs.median)}, ` +
      `send→all devices ${ratio(r.multi.steady.allDevicesMs.median, r.single.steady.allDevicesMs.median)}.`,
    "Bytes are encoded stanzas as given to / received from the connection (before Noise framing: +16 B tag " +
      "and a length prefix per record, + the WebSocket frame header). server→devices = all `delivery` stanzas " +
      "of that message to every target device.",
    "All clients run in this one process (one event loop): the times to all devices include every target " +
      "device's decryption and store write, one after the other. Messages are sent one at a time (unloaded latency).",
  ];
  const overtaken = r.single.steady.receiptBeforeAck + r.multi.steady.receiptBeforeAck;
  if (overtaken > 0) {
    notes.push(
      `In ${overtaken} of ${r.single.steady.messages + r.multi.steady.messages} steady-state messages the ✓✓ receipt ` +
        'reached the sender before the server\'s ack (✓): the client then never emits a "sent" status event.',
    );
  }
  for (const n of notes) console.log(`- ${n}`);

  const h = r.history;
  const rate = (n: number, ms: number) => fmtInt((n / ms) * 1000);
  console.log(
    `\n## History transfer to a newly linked device: ${fmtInt(h.messages)} messages in one chat ` +
      `(bundle ${fmtInt(h.bundleBytes)} B, ${(h.bundleBytes / h.messages).toFixed(0)} B/message)`,
  );
  console.log(
    renderTable(
      ["phase", "time ms", "messages/s", "messages"],
      [
        [
          "sendHistory: export + encrypt + upload + send (until ✓)",
          fmtMs(h.sendMs),
          rate(h.exported, h.sendMs),
          fmtInt(h.exported),
        ],
        [
          "import: download + decrypt + insert (history event → history-imported)",
          fmtMs(h.importMs),
          rate(h.imported, h.importMs),
          fmtInt(h.imported),
        ],
        [
          "total: sendHistory start → history-imported",
          fmtMs(h.totalMs),
          rate(h.imported, h.totalMs),
          fmtInt(h.countOnNewDevice),
        ],
      ],
    ),
  );
  const checks = [
    h.exported === h.messages ? "" : `exported ${h.exported} of ${h.messages}`,
    h.imported === h.messages ? "" : `imported ${h.imported} of ${h.messages}`,
    h.countOnNewDevice === h.messages ? "" : `new device holds ${h.countOnNewDevice} of ${h.messages}`,
    r.undecodable === 0 ? "" : `${r.undecodable} stanzas the meter could not decode`,
    r.multi.steady.preKeyMessages === 0
      ? ""
      : `${r.multi.steady.preKeyMessages} PreKeySignalMessages in 5 + 5 steady state`,
  ].filter((c) => c !== "");
  console.log(
    `- Seeding the primary's store: ${fmtMs(h.seedMs)} ms (not part of the transfer); linking the device ${fmtMs(h.linkMs)} ms; ` +
      `the key reached the new device ${fmtMs(h.keyArrivalMs)} ms after sendHistory resolved.`,
  );
  console.log(
    `- Check: ${checks.length === 0 ? "ok (every message exported and imported exactly once)" : checks.join("; ")}`,
  );
  const wallS = (performance.now() - started) / 1000;
  console.log(
    `- Setup: 4 accounts / 12 devices in ${(r.setupMs / 1000).toFixed(1)} s; whole run ${wallS.toFixed(0)} s.`,
  );

  const json = {
    date: new Date().toISOString(),
    node: process.version,
    transport: "ws",
    serverWorkers: workers,
    setupMs: r.setupMs,
    fanout: { single: r.single, multi: r.multi },
    history: h,
    meterUndecodable: r.undecodable,
    linkRetries: r.linkRetries,
    checks,
    wallSeconds: wallS,
  };
  const dir = fileURLToPath(new URL("../results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}multidevice.json`, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\n${JSON.stringify(json)}`);
  if (checks.length > 0) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
  // A client whose link failed half-way can keep its registering connection open: do not wait for it.
  process.exit();
}
