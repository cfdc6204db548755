// Parley's Signal sessions (node:crypto provider) vs @signalapp/libsignal-client
// 0.103 in one run. Both sides keep session records serialized in their stores
// and parse/serialize them on every message. Run: npm run bench:signal
//
// Note the protocols are not identical: libsignal v4 also runs SPQR (its sparse
// post-quantum ratchet) on every message, which Parley does not implement.

import { mkdirSync, writeFileSync } from "node:fs";
import * as S from "@signalapp/libsignal-client";
import {
  decryptMessage,
  encryptMessage,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  getCrypto,
  InMemorySignalStores,
  identityPublicKey,
  type PreKeyBundle,
  processPreKeyBundle,
  publicKyberPreKey,
  publicPreKey,
  publicSignedPreKey,
} from "../../packages/signal/src/index.node.ts";
import { LibsignalDevice } from "../../packages/signal/test/fixtures/sessions/libsignal-device.ts";

const MESSAGE = new Uint8Array(100).fill(0x61);
const quick = process.argv.includes("--quick");
const MESSAGES = quick ? 1000 : 6000;
const SETUPS = quick ? 30 : 150;

async function timeLoop(count: number, step: (i: number) => Promise<void>): Promise<number> {
  const warmUp = Math.min(500, Math.ceil(count / 4));
  for (let i = 0; i < warmUp; i++) await step(count + i); // JIT warm-up (indices past the timed ones)
  const start = performance.now();
  for (let i = 0; i < count; i++) await step(i);
  return count / ((performance.now() - start) / 1000);
}

// ---------- Parley ----------

function parleyDevice(name: string) {
  const identity = generateIdentityKeyPair();
  const stores = new InMemorySignalStores(identity, generateRegistrationId());
  return { identity, stores, address: { name, deviceId: 1 } };
}

async function parleyBundles(device: ReturnType<typeof parleyDevice>, count: number): Promise<PreKeyBundle[]> {
  const signed = generateSignedPreKey(device.identity, 1);
  await device.stores.signedPreKeys.storeSignedPreKey(signed);
  const bundles: PreKeyBundle[] = [];
  for (const [i, pre] of generatePreKeys(1, count).entries()) {
    const kyber = generateKyberPreKey(device.identity, i + 1);
    await device.stores.preKeys.storePreKey(pre);
    await device.stores.kyberPreKeys.storeKyberPreKey(kyber);
    bundles.push({
      registrationId: await device.stores.identity.getLocalRegistrationId(),
      deviceId: 1,
      identityKey: identityPublicKey(device.identity),
      signedPreKey: publicSignedPreKey(signed),
      preKey: publicPreKey(pre),
      kyberPreKey: publicKyberPreKey(kyber),
    });
  }
  return bundles;
}

async function parleyPair() {
  const alice = parleyDevice("alice");
  const bob = parleyDevice("bob");
  const [bundle] = await parleyBundles(bob, 1);
  await processPreKeyBundle(bob.address, bundle!, alice.stores);
  const first = await encryptMessage(bob.address, MESSAGE, alice.stores);
  await decryptMessage(alice.address, first.type, first.body, bob.stores);
  const reply = await encryptMessage(alice.address, MESSAGE, bob.stores);
  await decryptMessage(bob.address, reply.type, reply.body, alice.stores);
  return { alice, bob, firstMessageBytes: first.body.length };
}

async function parleyBench() {
  const { alice, bob, firstMessageBytes } = await parleyPair();
  const oneWay = await timeLoop(MESSAGES, async () => {
    const m = await encryptMessage(bob.address, MESSAGE, alice.stores);
    await decryptMessage(alice.address, m.type, m.body, bob.stores);
  });
  const alternating = await timeLoop(MESSAGES, async (i) => {
    const [from, to] = i % 2 === 0 ? [alice, bob] : [bob, alice];
    const m = await encryptMessage(to.address, MESSAGE, from.stores);
    await decryptMessage(from.address, m.type, m.body, to.stores);
  });
  const setupBob = parleyDevice("bob");
  const bundles = await parleyBundles(setupBob, SETUPS + 100);
  const alices = Array.from({ length: SETUPS + 100 }, (_, i) => parleyDevice(`alice${i}`));
  const setups = await timeLoop(SETUPS, async (i) => {
    const a = alices[i]!;
    await processPreKeyBundle(setupBob.address, bundles[i]!, a.stores);
    const first = await encryptMessage(setupBob.address, MESSAGE, a.stores);
    await decryptMessage(a.address, first.type, first.body, setupBob.stores);
    const reply = await encryptMessage(a.address, MESSAGE, setupBob.stores);
    await decryptMessage(setupBob.address, reply.type, reply.body, a.stores);
  });
  const steady = await encryptMessage(bob.address, MESSAGE, alice.stores);
  return { oneWay, alternating, setups, firstMessageBytes, steadyMessageBytes: steady.body.length };
}

// ---------- libsignal-client ----------

async function libsignalPair(
  alice: LibsignalDevice,
  bob: LibsignalDevice,
  parts: Awaited<ReturnType<LibsignalDevice["newBundle"]>>,
) {
  const u = (x: Uint8Array) => Uint8Array.from(x);
  const bundle = S.PreKeyBundle.new(
    parts.registrationId,
    parts.deviceId,
    parts.preKey.id,
    S.PublicKey.deserialize(u(parts.preKey.publicKey)),
    parts.signedPreKey.id,
    S.PublicKey.deserialize(u(parts.signedPreKey.publicKey)),
    u(parts.signedPreKey.signature),
    S.PublicKey.deserialize(u(parts.identityKey)),
    parts.kyberPreKey.id,
    S.KEMPublicKey.deserialize(u(parts.kyberPreKey.publicKey)),
    u(parts.kyberPreKey.signature),
  );
  await alice.processBundle(bob.address, bundle);
  const first = await alice.encrypt(bob.address, MESSAGE);
  await bob.decrypt(alice.address, first.type, first.body);
  const reply = await bob.encrypt(alice.address, MESSAGE);
  await alice.decrypt(bob.address, reply.type, reply.body);
  return first.body.length;
}

async function libsignalBench() {
  const alice = new LibsignalDevice("alice");
  const bob = new LibsignalDevice("bob");
  const firstMessageBytes = await libsignalPair(alice, bob, await bob.newBundle());
  const oneWay = await timeLoop(MESSAGES, async () => {
    const m = await alice.encrypt(bob.address, MESSAGE);
    await bob.decrypt(alice.address, m.type, m.body);
  });
  const alternating = await timeLoop(MESSAGES, async (i) => {
    const [from, to] = i % 2 === 0 ? [alice, bob] : [bob, alice];
    const m = await from.encrypt(to.address, MESSAGE);
    await to.decrypt(from.address, m.type, m.body);
  });
  const setupBob = new LibsignalDevice("bob");
  const bundles: Awaited<ReturnType<LibsignalDevice["newBundle"]>>[] = [];
  for (let i = 0; i < SETUPS + 100; i++) bundles.push(await setupBob.newBundle());
  const alices = Array.from({ length: SETUPS + 100 }, (_, i) => new LibsignalDevice(`alice${i}`));
  const setups = await timeLoop(SETUPS, async (i) => {
    await libsignalPair(alices[i]!, setupBob, bundles[i]!);
  });
  const steady = await alice.encrypt(bob.address, MESSAGE);
  return { oneWay, alternating, setups, firstMessageBytes, steadyMessageBytes: steady.body.length };
}

const parley = await parleyBench();
const libsignal = await libsignalBench();
const rows = [
  ["round trips/s, one direction (100 B)", parley.oneWay, libsignal.oneWay],
  ["round trips/s, alternating (DH ratchet each msg)", parley.alternating, libsignal.alternating],
  ["sessions set up/s (bundle → first msg → reply)", parley.setups, libsignal.setups],
  ["first (PreKey) message bytes", parley.firstMessageBytes, libsignal.firstMessageBytes],
  ["steady-state message bytes", parley.steadyMessageBytes, libsignal.steadyMessageBytes],
] as const;
const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(0));
console.log(`provider: ${getCrypto().name}; ${MESSAGES} messages, ${SETUPS} setups; records serialized every message`);
console.log("| metric | Parley | libsignal-client 0.103 | ratio |");
console.log("|---|---:|---:|---:|");
for (const [name, p, l] of rows) console.log(`| ${name} | ${fmt(p)} | ${fmt(l)} | ${(p / l).toFixed(2)}× |`);
const json = {
  date: new Date().toISOString(),
  provider: getCrypto().name,
  messages: MESSAGES,
  setups: SETUPS,
  parley,
  libsignal,
};
console.log(JSON.stringify(json));
mkdirSync(new URL("../results/", import.meta.url), { recursive: true });
writeFileSync(new URL("../results/signal.json", import.meta.url), `${JSON.stringify(json, null, 2)}\n`);
