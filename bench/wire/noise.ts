// Noise transport benchmark: record-layer throughput vs the raw AEAD, handshakes/s, and the bytes of a
// full connect + login over real TCP. `runNoiseBench()` is called by bench/wire/run.ts; run alone with
//   node --conditions=source --import tsx bench/wire/noise.ts
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { HandshakeState } from "../../packages/wire/src/noise/index.ts";
import { nodeSuite } from "../../packages/wire/src/noise/suite.node.ts";
import {
  createTcpServer,
  FrameDecoder,
  type FrameLink,
  type FrameLinkHandlers,
  generateStaticKeyPair,
  PARLEY_NOISE_CIPHER,
  parleyPrologue,
  resolveLimits,
  runClientHandshake,
  SecureConnection,
  TcpFrameLink,
} from "../../packages/wire/src/transport/index.node.ts";
import type { Row } from "./row.ts";

const BENCH_MS = Number(process.env.BENCH_MS ?? 400);
const STANZA = 1024;

/** Runs `op` repeatedly for about `ms` milliseconds; returns operations per second. */
function rate(op: () => void, ms = BENCH_MS): number {
  for (let i = 0; i < 200; i++) op(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 50; i++) op();
    n += 50;
    now = process.hrtime.bigint();
  }
  return (n * 1e9) / Number(now - start);
}

const mbps = (opsPerSecond: number, bytesPerOp: number) => (opsPerSecond * bytesPerOp) / 1e6;

/** The baseline: one createCipheriv + one createDecipheriv per 1 KiB buffer, cached KeyObject. */
function rawCipherRate(algorithm: "aes-256-gcm" | "chacha20-poly1305"): number {
  const key = createSecretKey(randomBytes(32));
  const nonce = Buffer.alloc(12);
  const data = randomBytes(STANZA);
  return rate(() => {
    nonce.writeUInt32BE((nonce.readUInt32BE(8) + 1) >>> 0, 8);
    const c =
      algorithm === "aes-256-gcm"
        ? createCipheriv(algorithm, key, nonce, { authTagLength: 16 })
        : createCipheriv(algorithm, key, nonce, { authTagLength: 16 });
    const ct = c.update(data);
    c.final();
    const tag = c.getAuthTag();
    const d =
      algorithm === "aes-256-gcm"
        ? createDecipheriv(algorithm, key, nonce, { authTagLength: 16 })
        : createDecipheriv(algorithm, key, nonce, { authTagLength: 16 });
    d.setAuthTag(tag);
    d.update(ct);
    d.final();
  });
}

/** A synchronous in-memory TCP-like link: frames get the 2-byte prefix and go through the FrameDecoder. */
class LoopbackLink implements FrameLink {
  readonly frameHeaderSize = 2;
  peer!: LoopbackLink;
  handlers!: FrameLinkHandlers;
  private readonly decoder = new FrameDecoder(65535);
  private readonly deliver = (frame: Uint8Array) => this.handlers.frameReceived(frame);
  get bufferedAmount() {
    return 0;
  }
  setMaxFrameSize(bytes: number) {
    this.decoder.maxFrameSize = bytes;
  }
  setHandlers(handlers: FrameLinkHandlers) {
    this.handlers = handlers;
  }
  writeFrames(frames: readonly Uint8Array[]) {
    for (const frame of frames) {
      frame[0] = (frame.length - 2) >>> 8;
      frame[1] = (frame.length - 2) & 0xff;
      this.peer.decoder.push(frame, this.peer.deliver);
    }
  }
  end() {}
  destroy() {}
}

/** Two SecureConnections keyed by a real XX handshake, over a synchronous loopback. */
function sessionPair(): { sender: SecureConnection; received: () => number } {
  const prologue = parleyPrologue();
  const common = { suite: nodeSuite, pattern: "XX" as const, cipher: PARLEY_NOISE_CIPHER, prologue };
  const i = new HandshakeState({ ...common, initiator: true, s: nodeSuite.generateKeyPair() });
  const r = new HandshakeState({ ...common, initiator: false, s: nodeSuite.generateKeyPair() });
  r.readMessage(i.writeMessage());
  i.readMessage(r.writeMessage());
  r.readMessage(i.writeMessage());
  const a = new LoopbackLink();
  const b = new LoopbackLink();
  a.peer = b;
  b.peer = a;
  const limits = resolveLimits({});
  const ci = i.split();
  const cr = r.split();
  const base = { pattern: "XX" as const, limits, scheduler: () => {} };
  const sender = new SecureConnection({ ...base, link: a, ...ci, remoteStaticPublicKey: r.handshakeHash });
  const receiver = new SecureConnection({ ...base, link: b, ...cr, remoteStaticPublicKey: i.handshakeHash });
  let count = 0;
  receiver.onStanza(() => {
    count++;
  });
  return { sender, received: () => count };
}

function transportRate(stanzasPerRecord: number): number {
  const { sender, received } = sessionPair();
  const stanza = randomBytes(STANZA);
  const perSecond = rate(() => {
    for (let k = 0; k < stanzasPerRecord; k++) sender.send(stanza);
    sender.flush();
  }, BENCH_MS);
  if (received() === 0) throw new Error("nothing was delivered");
  return perSecond * stanzasPerRecord;
}

function handshakeRate(pattern: "XX" | "IK"): number {
  const prologue = parleyPrologue();
  const serverKey = nodeSuite.generateKeyPair();
  const clientKey = nodeSuite.generateKeyPair();
  const common = { suite: nodeSuite, pattern, cipher: PARLEY_NOISE_CIPHER, prologue };
  const login = new Uint8Array(60);
  const result = new Uint8Array(21);
  return rate(() => {
    const c = new HandshakeState({
      ...common,
      initiator: true,
      s: clientKey,
      ...(pattern === "IK" ? { rs: serverKey.publicKey } : {}),
    });
    const s = new HandshakeState({ ...common, initiator: false, s: serverKey });
    if (pattern === "IK") {
      s.readMessage(c.writeMessage(login));
      c.readMessage(s.writeMessage(result));
    } else {
      s.readMessage(c.writeMessage());
      c.readMessage(s.writeMessage());
      s.readMessage(c.writeMessage(login));
    }
    c.split();
    s.split();
  }, BENCH_MS);
}

/** Bytes on a real TCP connection for connect + login (both directions, payload sizes as given). */
async function loginBytes(
  pattern: "XX" | "IK",
  loginSize: number,
  resultSize: number,
): Promise<{ up: number; down: number }> {
  const staticKeyPair = generateStaticKeyPair();
  const server = createTcpServer({
    staticKeyPair,
    authenticate: async () => new Uint8Array(resultSize),
    onConnection: () => {},
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const socket: Socket = await new Promise((resolve) => {
    const s = netConnect({ host: "127.0.0.1", port }, () => resolve(s));
  });
  const result = await runClientHandshake({
    link: new TcpFrameLink(socket, 65535),
    suite: nodeSuite,
    clientStaticKeyPair: generateStaticKeyPair(),
    ...(pattern === "IK" ? { serverStaticPublicKey: staticKeyPair.publicKey } : {}),
    loginPayload: new Uint8Array(loginSize),
    limits: resolveLimits({}),
    handshakeTimeoutMs: 5000,
  });
  const bytes = { up: socket.bytesWritten, down: socket.bytesRead };
  result.connection.close(1000, "");
  socket.destroy();
  // server.close waits for every accepted socket; do not let a straggler hold the benchmark
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    setTimeout(resolve, 1000).unref();
  });
  return bytes;
}

export async function runNoiseBench(): Promise<Row[]> {
  const rows: Row[] = [];
  const rawAes = rawCipherRate("aes-256-gcm");
  const rawChacha = rawCipherRate("chacha20-poly1305");
  rows.push({
    benchmark: "raw AES-256-GCM, 1 KiB (encrypt+decrypt)",
    "ops/s": Math.round(rawAes),
    "MB/s": Number(mbps(rawAes, STANZA).toFixed(1)),
    "% of raw": 100,
  });
  rows.push({
    benchmark: "raw ChaCha20-Poly1305, 1 KiB (encrypt+decrypt)",
    "ops/s": Math.round(rawChacha),
    "MB/s": Number(mbps(rawChacha, STANZA).toFixed(1)),
    "% of raw": Number(((100 * rawChacha) / rawAes).toFixed(1)),
  });
  for (const perRecord of [1, 16, 64]) {
    const r = transportRate(perRecord);
    rows.push({
      benchmark: `Noise transport, 1 KiB stanzas, ${perRecord} per record (send+frame+encrypt+decrypt+deliver)`,
      "ops/s": Math.round(r),
      "MB/s": Number(mbps(r, STANZA).toFixed(1)),
      "% of raw": Number(((100 * r) / rawAes).toFixed(1)),
    });
  }
  for (const pattern of ["XX", "IK"] as const) {
    const r = handshakeRate(pattern);
    rows.push({ benchmark: `${pattern} handshakes/s (both sides, one core)`, "ops/s": Math.round(r) });
  }
  for (const pattern of ["XX", "IK"] as const) {
    const { up, down } = await loginBytes(pattern, 60, 20);
    rows.push({
      benchmark: `connect + login bytes over TCP, ${pattern} (60 B login, 20 B result)`,
      "up B": up,
      "down B": down,
      "total B": up + down,
      "goal B": 532,
      "% of XMPP 2,131 B": Number(((100 * (up + down)) / 2131).toFixed(1)),
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runNoiseBench();
  console.table(rows);
  const result = { rows, node: process.version, date: new Date().toISOString() };
  console.log(JSON.stringify(result));
  const dir = fileURLToPath(new URL("../results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}noise.json`, `${JSON.stringify(result, null, 2)}\n`);
}
