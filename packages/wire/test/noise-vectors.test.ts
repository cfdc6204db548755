import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { isWireError } from "../src/errors.ts";
import {
  type CipherState,
  HandshakeState,
  type KeyPair,
  type NoiseCipherName,
  type NoiseCryptoSuite,
  nobleSuite,
  type PatternName,
} from "../src/noise/index.ts";
import { nodeCryptoSuite, nodeSuite } from "../src/noise/suite.node.ts";

interface VectorMessage {
  payload: string;
  ciphertext: string;
}
interface Vector {
  protocol_name?: string;
  name?: string;
  fallback?: boolean;
  init_prologue: string;
  resp_prologue: string;
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_static?: string;
  resp_ephemeral: string;
  handshake_hash?: string;
  messages: VectorMessage[];
}

const file = JSON.parse(
  readFileSync(new URL("./fixtures/noise/noise-25519-sha256.json", import.meta.url), "utf8"),
) as Record<"cacophony" | "snow" | "noise_c_fallback", Vector[]>;

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function keyPair(suite: NoiseCryptoSuite, privateHex: string | undefined): KeyPair | undefined {
  if (privateHex === undefined) return undefined;
  const privateKey = hex(privateHex);
  return { privateKey, publicKey: suite.publicKeyOf(privateKey) };
}

function parseName(name: string): { pattern: PatternName; cipher: NoiseCipherName } | null {
  const m = /^Noise_(NN|XX|IK|XXfallback)_25519_(AESGCM|ChaChaPoly)_SHA256$/.exec(name);
  return m ? { pattern: m[1] as PatternName, cipher: m[2] as NoiseCipherName } : null;
}

/** Runs the transport messages after the handshake: even-indexed messages are sent by `even`, odd by `odd`. */
function runTransport(
  v: Vector,
  start: number,
  even: { send: CipherState; receive: CipherState },
  odd: { send: CipherState; receive: CipherState },
) {
  const empty = new Uint8Array(0);
  for (let i = start; i < v.messages.length; i++) {
    const m = v.messages[i]!;
    const [sender, receiver] = i % 2 === 0 ? [even, odd] : [odd, even];
    const ct = sender.send.encryptWithAd(empty, hex(m.payload));
    assert.equal(toHex(ct), m.ciphertext, `transport message ${i}`);
    assert.equal(toHex(receiver.receive.decryptWithAd(empty, ct)), m.payload);
  }
}

function runStandard(suite: NoiseCryptoSuite, v: Vector) {
  const parsed = parseName(v.protocol_name!)!;
  const init = new HandshakeState({
    suite,
    ...parsed,
    initiator: true,
    prologue: hex(v.init_prologue),
    s: keyPair(suite, v.init_static),
    e: keyPair(suite, v.init_ephemeral),
    rs: v.init_remote_static ? hex(v.init_remote_static) : undefined,
  });
  const resp = new HandshakeState({
    suite,
    ...parsed,
    initiator: false,
    prologue: hex(v.resp_prologue),
    s: keyPair(suite, v.resp_static),
    e: keyPair(suite, v.resp_ephemeral),
  });
  let i = 0;
  for (; !init.isComplete; i++) {
    const m = v.messages[i]!;
    const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
    const ct = writer.writeMessage(hex(m.payload));
    assert.equal(toHex(ct), m.ciphertext, `handshake message ${i}`);
    assert.equal(toHex(reader.readMessage(ct)), m.payload);
  }
  assert.ok(resp.isComplete);
  if (v.handshake_hash) {
    assert.equal(toHex(init.handshakeHash), v.handshake_hash);
    assert.equal(toHex(resp.handshakeHash), v.handshake_hash);
  }
  runTransport(v, i, init.split(), resp.split());
}

/** noise-c fallback vectors: Alice tries IK with a stale key, Bob fails and initiates XXfallback. */
function runFallback(suite: NoiseCryptoSuite, v: Vector) {
  const { cipher } = parseName(v.name!)!;
  const aliceStatic = keyPair(suite, v.init_static)!;
  const aliceEphemeral = keyPair(suite, v.init_ephemeral)!;
  const bobStatic = keyPair(suite, v.resp_static)!;
  const alice = new HandshakeState({
    suite,
    pattern: "IK",
    cipher,
    initiator: true,
    prologue: hex(v.init_prologue),
    s: aliceStatic,
    e: aliceEphemeral,
    rs: hex(v.init_remote_static!),
  });
  const bob = new HandshakeState({
    suite,
    pattern: "IK",
    cipher,
    initiator: false,
    prologue: hex(v.resp_prologue),
    s: bobStatic,
    e: keyPair(suite, v.resp_ephemeral),
  });
  const m0 = v.messages[0]!;
  const first = alice.writeMessage(hex(m0.payload));
  assert.equal(toHex(first), m0.ciphertext);
  assert.throws(
    () => bob.readMessage(first),
    (err) => isWireError(err, "HANDSHAKE_FAILED"),
  );

  const bobFallback = new HandshakeState({
    suite,
    pattern: "XXfallback",
    cipher,
    initiator: true,
    prologue: hex(v.resp_prologue),
    s: bobStatic,
    e: keyPair(suite, v.resp_ephemeral),
    re: first.subarray(0, 32),
  });
  const aliceFallback = new HandshakeState({
    suite,
    pattern: "XXfallback",
    cipher,
    initiator: false,
    prologue: hex(v.init_prologue),
    s: aliceStatic,
    e: aliceEphemeral,
  });
  let i = 1;
  for (; !bobFallback.isComplete; i++) {
    const m = v.messages[i]!;
    const [writer, reader] = i % 2 === 1 ? [bobFallback, aliceFallback] : [aliceFallback, bobFallback];
    const ct = writer.writeMessage(hex(m.payload));
    assert.equal(toHex(ct), m.ciphertext, `fallback message ${i}`);
    assert.equal(toHex(reader.readMessage(ct)), m.payload);
  }
  if (v.handshake_hash) {
    assert.equal(toHex(aliceFallback.handshakeHash), v.handshake_hash);
    assert.equal(toHex(bobFallback.handshakeHash), v.handshake_hash);
  }
  runTransport(v, i, aliceFallback.split(), bobFallback.split());
}

// nodeSuite seals ChaChaPoly with libsodium, nodeCryptoSuite (its fallback) with node:crypto.
for (const suite of [nodeSuite, nodeCryptoSuite, nobleSuite]) {
  describe(`Noise vectors (${suite.name} suite)`, () => {
    for (const source of ["cacophony", "snow"] as const) {
      for (const v of file[source]) {
        it(`${source} ${v.protocol_name}`, () => runStandard(suite, v));
      }
    }
    for (const v of file.noise_c_fallback) {
      // NoisePSK_* are pre-rev-32 PSK handshakes; Parley uses no PSK, so only the plain fallback runs.
      if (parseName(v.name!) === null) continue;
      it(`noise-c ${v.name}`, () => runFallback(suite, v));
    }
  });
}
