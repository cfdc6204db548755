// npm run bench:groups: group fan-out on a real server (`parley serve --dev --workers 2`).
//
// A group of 1,024 members with 2 devices each (2,048 devices, all connected as lean protocol
// clients in this process). One member sends group messages one at a time: a real Sender Key
// message (groupEncrypt of a 100-byte text padded as the SDK pads it; receivers do not decrypt,
// they acknowledge the queue entry as a device does, which sends the delivered receipts back).
// Measured:
//   - fan-out time: send → the last of the 2,047 other devices has the message (p50 / p99),
//     and send → server ack (first tick);
//   - server CPU per group message (all server processes, from /proc), and this generator's CPU;
//   - bytes the server stores per group message while every recipient is offline (database size
//     growth after a WAL checkpoint), next to the ciphertext size.
// Setup shortcut (said in the output): the second device of each account is written straight into
// the server's database (SqliteStorage.addDevice) instead of being linked through the protocol;
// the 1,024 primaries register through the protocol.
//
// Two phases: back to back (each message sent as soon as every device has the previous one, while
// that one's 2,047 acks and delivered receipts are still in flight: a saturated group), then one
// message per --paced-interval-ms (default 1 s: a busy group at a steady rate).
// Options: --members 1024 --devices 2 --messages 60 --warmup 5 --offline-messages 20 --workers 2
//   --server-cpu-prof DIR (V8 CPU profiles of every server process, written when they exit)
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SqliteStorage } from "@parley/server";
import {
  createSenderKeyDistributionMessage,
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPreKeyPair,
  generateRegistrationId,
  generateSignedPreKey,
  groupEncrypt,
  InMemorySenderKeyStore,
  KEM_TYPE_MLKEM1024,
  serializeKemPublicKey,
  xeddsaSign,
} from "@parley/signal";
import {
  encodeGroupChange,
  encodeSignedGroupChange,
  generateStaticKeyPair,
  groupChangeSignedBytes,
  type Stanza,
  type StaticKeyPair,
} from "@parley/wire";
import Database from "better-sqlite3";
import { startServerProcess } from "../e2e/server-process.ts";
import { type LoadConnection, loopbackAddress, mapLimit, openLoadConnection } from "../load/connection.ts";
import { CpuMeter, processTree } from "../load/cpu.ts";
import { fmtInt, fmtMs, renderTable } from "../load/table.ts";

const { values: args } = parseArgs({
  options: {
    members: { type: "string", default: "1024" },
    devices: { type: "string", default: "2" },
    messages: { type: "string", default: "60" },
    warmup: { type: "string", default: "5" },
    "offline-messages": { type: "string", default: "20" },
    workers: { type: "string", default: "2" },
    "server-cpu-prof": { type: "string" },
    "paced-interval-ms": { type: "string", default: "1000" },
  },
});
const num = (k: keyof typeof args) => {
  const n = Number(args[k]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive integer`);
  return n;
};
const MEMBERS = num("members");
const DEVICES = num("devices");
const MESSAGES = num("messages");
const WARMUP = num("warmup");
const OFFLINE_MESSAGES = num("offline-messages");
const WORKERS = Number(args.workers);
/** Second phase: one message per interval, so each fan-out (and its receipts) finishes before the next. */
const PACED_INTERVAL_MS = Number(args["paced-interval-ms"]);
/** A 100-byte text as the SDK encodes it (JSON content, padded to a multiple of 160 bytes). */
const TEXT = "x".repeat(100);

interface Device {
  user: string;
  device: number;
  noise: StaticKeyPair;
  identity?: ReturnType<typeof generateIdentityKeyPair>;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "parley-bench-groups-"));
  const server = await startServerProcess({
    dataDir,
    workers: WORKERS,
    ...(args["server-cpu-prof"] ? { cpuProfileDir: resolve(args["server-cpu-prof"]) } : {}),
  });
  const url = `tcp://127.0.0.1:${server.tcpPort}`;
  const conns: LoadConnection[] = [];
  try {
    // ---------------------------------------------------------------- accounts
    const kem = generateKemPreKeyPair(KEM_TYPE_MLKEM1024);
    const kemKey = serializeKemPublicKey(kem.type, kem.publicKey);
    const tag = Date.now().toString(36);
    const t0 = performance.now();
    let serverKey: Uint8Array | undefined;
    const register = async (i: number): Promise<Device & { identity: ReturnType<typeof generateIdentityKeyPair> }> => {
      const noise = generateStaticKeyPair();
      const opened = await openLoadConnection({
        url,
        keyPair: noise,
        ...(serverKey ? { serverKey } : {}),
        localAddress: loopbackAddress(2 + (i % 16)),
      });
      serverKey ??= opened.serverKey;
      opened.conn.start(() => {});
      try {
        const account = await opened.conn.iq({ op: "register-account", name: `gb${tag}_${i}`, code: "" });
        if (account.op !== "account") throw new Error("the server must run with --dev");
        const identity = generateIdentityKeyPair();
        const signed = generateSignedPreKey(identity, 1);
        await opened.conn.iq({
          op: "register-device",
          noiseKey: noise.publicKey,
          registrationId: generateRegistrationId(),
          identityKey: encodePublicKey(identity.publicKey),
          signedPreKey: { id: 1, key: encodePublicKey(signed.keyPair.publicKey), signature: signed.signature },
          kyberPreKey: { id: 1, key: kemKey, signature: xeddsaSign(identity.privateKey, kemKey) },
          oneTimePreKeys: [],
          kyberOneTimePreKeys: [],
        });
        return { user: account.user, device: 1, noise, identity };
      } finally {
        await opened.conn.close();
      }
    };
    const first = await register(0);
    const primaries = [
      first,
      ...(await mapLimit(
        Array.from({ length: MEMBERS - 1 }, (_, i) => i + 1),
        32,
        register,
      )),
    ];
    const companions: Device[] = [];
    {
      const storage = new SqliteStorage({ dataDir });
      try {
        for (const p of primaries) {
          const account = (await storage.getAccountByName(p.user))!;
          for (let d = 2; d <= DEVICES; d++) {
            const noise = generateStaticKeyPair();
            const identity = generateIdentityKeyPair();
            const signed = generateSignedPreKey(identity, 1);
            const added = await storage.addDevice(account.id, {
              noiseStaticKey: noise.publicKey,
              registrationId: generateRegistrationId(),
              identityKey: encodePublicKey(identity.publicKey),
              signedPreKey: {
                id: 1,
                publicKey: encodePublicKey(signed.keyPair.publicKey),
                signature: signed.signature,
              },
              lastResortKemPreKey: { id: 1, publicKey: kemKey, signature: xeddsaSign(identity.privateKey, kemKey) },
            });
            companions.push({ user: p.user, device: added.deviceId, noise });
          }
        }
      } finally {
        await storage.close();
      }
    }
    const setupMs = performance.now() - t0;
    const all: Device[] = [...primaries, ...companions];
    const sender = primaries[0]!;

    // ---------------------------------------------------------------- connect
    /** message id (hex) → devices that have it, and when the last one did */
    const arrivals = new Map<string, { count: number; last: number; who: Set<LoadConnection> }>();
    const byConn = new Map<LoadConnection, Device>();
    let senderConn: LoadConnection | undefined;
    const acks = new Map<string, (at: number) => void>();
    let groupReady: (() => void) | undefined;
    let notified = 0;
    let duplicates = 0;
    const onStanza = (conn: LoadConnection) => (s: Stanza) => {
      if (s.kind === "delivery") {
        const id = Buffer.from(s.id).toString("hex");
        const a = arrivals.get(id) ?? { count: 0, last: 0, who: new Set<LoadConnection>() };
        if (a.who.has(conn)) {
          duplicates++;
          conn.devack(s.seq);
          return;
        }
        a.who.add(conn);
        a.count++;
        a.last = performance.now();
        arrivals.set(id, a);
        conn.devack(s.seq);
      } else if (s.kind === "notification") {
        if (s.event.type === "group-change" && ++notified === all.length - 1) groupReady?.();
        if (s.id !== 0) conn.devack(s.id);
      } else if (s.kind === "receipt") {
        if (s.seq !== undefined) conn.devack(s.seq);
      } else if (s.kind === "ack") {
        acks.get(Buffer.from(s.id).toString("hex"))?.(performance.now());
      }
    };
    const connectAll = async (devices: Device[]) =>
      mapLimit(devices, 64, async (d, i) => {
        const opened = await openLoadConnection({
          url,
          keyPair: d.noise,
          ...(serverKey ? { serverKey } : {}),
          user: d.user,
          device: d.device,
          localAddress: loopbackAddress(2 + (i % 16)),
        });
        opened.conn.start(onStanza(opened.conn));
        byConn.set(opened.conn, d);
        conns.push(opened.conn);
        if (d === sender) senderConn = opened.conn;
        return opened.conn;
      });
    await connectAll(all);

    // ---------------------------------------------------------------- group
    const group = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
    const createBytes = encodeGroupChange({
      group,
      version: 1,
      prev: new Uint8Array(32),
      author: { user: sender.user, device: 1 },
      time: Date.now(),
      action: "create",
      users: primaries.slice(1).map((p) => p.user),
      subject: "bench",
    });
    const created = encodeSignedGroupChange(
      createBytes,
      xeddsaSign(sender.identity.privateKey, groupChangeSignedBytes(createBytes)),
    );
    const ready = new Promise<void>((r) => (groupReady = r));
    const tCreate = performance.now();
    await senderConn!.iq({ op: "group-change", change: created });
    await ready;
    const createMs = performance.now() - tCreate;

    // Real sender-key ciphertext of a padded 100-byte text.
    const keys = new InMemorySenderKeyStore();
    const distribution = crypto.randomUUID();
    await createSenderKeyDistributionMessage(keys, { name: sender.user, deviceId: 1 }, distribution);
    const json = new TextEncoder().encode(JSON.stringify({ v: 1, t: TEXT, s: Date.now(), g: group }));
    const padded = new Uint8Array(Math.ceil((json.length + 1) / 160) * 160);
    padded.set(json);
    padded[json.length] = 0x80;

    const expected = all.length - 1;
    let counter = 0;
    /** Sends one group message; resolves with its id, ciphertext size, send time and the ack's time. */
    const send = async () => {
      const idBytes = new Uint8Array(8);
      new DataView(idBytes.buffer).setUint32(4, ++counter);
      new DataView(idBytes.buffer).setUint32(0, process.pid);
      const id = Buffer.from(idBytes).toString("hex");
      const skmsg = await groupEncrypt(keys, { name: sender.user, deviceId: 1 }, distribution, padded);
      const acked = new Promise<number>((r) => acks.set(id, r));
      const start = performance.now();
      senderConn!.send({
        kind: "message",
        id: idBytes,
        group,
        timestamp: Math.floor(Date.now() / 1000),
        enc: [],
        skmsg,
      });
      const ackAt = await acked;
      acks.delete(id);
      return { id, start, ackAt, skmsg };
    };
    const sendOne = async () => {
      const { id, start, ackAt, skmsg } = await send();
      const deadline = Date.now() + 30_000;
      while ((arrivals.get(id)?.count ?? 0) < expected) {
        if (Date.now() > deadline) {
          const who = arrivals.get(id)?.who ?? new Set();
          const missing = conns.filter((c) => c !== senderConn && !who.has(c));
          const list = missing.map(
            (c) => `${byConn.get(c)?.user}.${byConn.get(c)?.device} closed=${c.closed} ${c.closeReason}`,
          );
          throw new Error(
            `message ${counter}: only ${who.size}/${expected} devices (${conns.length} connections); missing ${list.join(", ")}`,
          );
        }
        await new Promise((r) => setImmediate(r));
      }
      const a = arrivals.get(id)!;
      // Let the delivered receipts (2,047 per message, back to the sender's 2 devices) settle too.
      return { fanoutMs: a.last - start, ackMs: ackAt - start, skmsgBytes: skmsg.length };
    };

    for (let i = 0; i < WARMUP; i++) await sendOne();
    const serverCpu = new CpuMeter(() => processTree(server.pid));
    const selfCpu = new CpuMeter(() => [process.pid]);
    const s0 = serverCpu.sample();
    const g0 = selfCpu.sample();
    const samples: { fanoutMs: number; ackMs: number; skmsgBytes: number }[] = [];
    for (let i = 0; i < MESSAGES; i++) samples.push(await sendOne());
    await new Promise((r) => setTimeout(r, 500)); // receipts still in flight are part of the cost
    const serverUse = serverCpu.since(s0);
    const selfUse = selfCpu.since(g0);
    const paced: typeof samples = [];
    for (let i = 0; i < MESSAGES; i++) {
      const t = performance.now();
      paced.push(await sendOne());
      await new Promise((r) => setTimeout(r, Math.max(0, PACED_INTERVAL_MS - (performance.now() - t))));
    }

    // ------------------------------------------------------- storage per message
    // Every receiver goes offline; the sender stays. Then N messages; database growth / N.
    const receivers = conns.filter((c) => c !== senderConn);
    await Promise.all(receivers.map((c) => c.close()));
    await new Promise((r) => setTimeout(r, 500));
    // Queues live in one SQLite file per worker (queue-<i>.db): sum them.
    const shardFiles = () => readdirSync(dataDir).filter((f) => /^queue-\d+\.db$/.test(f));
    const checkpoint = () => {
      const total = { bytes: 0, payloads: { n: 0, b: 0 }, entries: 0 };
      for (const file of shardFiles()) {
        const db = new Database(join(dataDir, file));
        try {
          db.pragma("wal_checkpoint(TRUNCATE)");
          const pages = db.pragma("page_count", { simple: true }) as number;
          const free = db.pragma("freelist_count", { simple: true }) as number;
          const size = db.pragma("page_size", { simple: true }) as number;
          const payloads = db
            .prepare("SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(data)), 0) AS b FROM payloads")
            .get() as { n: number; b: number };
          total.bytes += (pages - free) * size;
          total.payloads.n += payloads.n;
          total.payloads.b += payloads.b;
          total.entries += (db.prepare("SELECT COUNT(*) AS n FROM queue").get() as { n: number }).n;
        } finally {
          db.close();
        }
      }
      return total;
    };
    /** The queues once nothing moves any more (the sender's device is still acking receipts). */
    const settled = async () => {
      let last = checkpoint();
      for (let i = 0; i < 60; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const now = checkpoint();
        if (now.entries === last.entries && now.bytes === last.bytes) return now;
        last = now;
      }
      return last;
    };
    const before = await settled();
    let offlineSkmsg = 0;
    for (let i = 0; i < OFFLINE_MESSAGES; i++) offlineSkmsg = (await send()).skmsg.length;
    const afterStore = await settled();
    const storedPerMessage = (afterStore.bytes - before.bytes) / OFFLINE_MESSAGES;
    const entriesPerMessage = (afterStore.entries - before.entries) / OFFLINE_MESSAGES;
    const payloadBytesPerMessage = (afterStore.payloads.b - before.payloads.b) / OFFLINE_MESSAGES;

    // ---------------------------------------------------------------- report
    const fan = samples.map((s) => s.fanoutMs).sort((a, b) => a - b);
    const ack = samples.map((s) => s.ackMs).sort((a, b) => a - b);
    const pacedFan = paced.map((s) => s.fanoutMs).sort((a, b) => a - b);
    const pacedAck = paced.map((s) => s.ackMs).sort((a, b) => a - b);
    const perDeviceBytes = (storedPerMessage - payloadBytesPerMessage) / Math.max(1, entriesPerMessage);
    const rows: string[][] = [
      ["group", `${MEMBERS} members × ${DEVICES} devices = ${all.length} devices, ${expected} receive each message`],
      [
        "back to back: send → last device has it, p50 / p99",
        `${fmtMs(pct(fan, 50))} / ${fmtMs(pct(fan, 99))} ms (goal p99 < 250 ms)`,
      ],
      ["back to back: first tick (server ack), p50 / p99", `${fmtMs(pct(ack, 50))} / ${fmtMs(pct(ack, 99))} ms`],
      [
        `one message per ${fmtInt(PACED_INTERVAL_MS)} ms: send → last device, p50 / p99`,
        `${fmtMs(pct(pacedFan, 50))} / ${fmtMs(pct(pacedFan, 99))} ms (goal p99 < 250 ms)`,
      ],
      [
        `one message per ${fmtInt(PACED_INTERVAL_MS)} ms: first tick, p50 / p99`,
        `${fmtMs(pct(pacedAck, 50))} / ${fmtMs(pct(pacedAck, 99))} ms`,
      ],
      [
        "server CPU per group message",
        `${fmtMs(serverUse.cpuMs / MESSAGES)} ms (${fmtMs((serverUse.cpuMs / MESSAGES / expected) * 1000)} µs per device delivery, receipts included)`,
      ],
      [
        "generator CPU per group message",
        `${fmtMs(selfUse.cpuMs / MESSAGES)} ms (${selfUse.cpuMs < serverUse.cpuMs ? "less than the server" : "MORE than the server: client-bound"})`,
      ],
      ["sender-key ciphertext", `${fmtInt(offlineSkmsg)} B`],
      [
        "stored per group message (all offline)",
        `${fmtInt(storedPerMessage)} B = ${fmtInt(payloadBytesPerMessage)} B payload (once per queue shard) + ${fmtInt(entriesPerMessage)} entries × ${fmtInt(perDeviceBytes)} B`,
      ],
      ["group create (1 signed change) → all devices notified", `${fmtMs(createMs)} ms`],
      ["duplicate deliveries seen", fmtInt(duplicates)],
      ["setup", `${fmtMs(setupMs)} ms: ${MEMBERS} registrations via the protocol; companions written to the db`],
    ];
    console.log(renderTable(["groups bench", "value"], rows));
    console.log(
      "Payloads: real Sender Key messages (groupEncrypt); receivers acknowledge without decrypting. One message in flight: back to back (the next leaves as soon as the last device has the previous, while its 2,047 acks and receipts are still being processed), then paced. Server with --workers",
      WORKERS,
    );
    const results = {
      members: MEMBERS,
      devices: all.length,
      messages: MESSAGES,
      fanoutMs: { p50: pct(fan, 50), p99: pct(fan, 99), max: fan.at(-1) },
      ackMs: { p50: pct(ack, 50), p99: pct(ack, 99) },
      paced: {
        intervalMs: PACED_INTERVAL_MS,
        fanoutMs: { p50: pct(pacedFan, 50), p99: pct(pacedFan, 99), max: pacedFan.at(-1) },
        ackMs: { p50: pct(pacedAck, 50), p99: pct(pacedAck, 99) },
      },
      serverCpuMsPerMessage: serverUse.cpuMs / MESSAGES,
      generatorCpuMsPerMessage: selfUse.cpuMs / MESSAGES,
      skmsgBytes: offlineSkmsg,
      storedBytesPerMessage: storedPerMessage,
      payloadBytesPerMessage,
      entriesPerMessage,
      perEntryBytes: perDeviceBytes,
      createMs,
    };
    const out = fileURLToPath(new URL("../results/", import.meta.url));
    mkdirSync(out, { recursive: true });
    writeFileSync(resolve(out, "groups.json"), `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
