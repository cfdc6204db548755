import assert from "node:assert/strict";
import { it } from "node:test";
import fc from "fast-check";
import { fromHex, getCrypto, toHex, utf8 } from "../src/crypto/index.ts";
import { generateKeyPair } from "../src/curve/index.ts";
import { isSignalError } from "../src/errors.ts";
import {
  createSenderKeyDistributionMessage,
  groupDecrypt,
  groupEncrypt,
  InMemorySenderKeyStore,
  messageKeySeed,
  nextChainKey,
  processSenderKeyDistributionMessage,
  SenderKeyRecord,
  uuidFromBytes,
  uuidToBytes,
} from "../src/groups/index.ts";
import { describeEachProvider } from "./fixtures/primitives/helpers.ts";
import { CHAIN_KEY } from "./fixtures/primitives/libsignal-vectors.ts";

const alice = { name: "alice", deviceId: 1 };
const DIST = "d1d1d1d1-7000-11eb-b32a-33b8a8a487a6";

async function setup() {
  const aliceStore = new InMemorySenderKeyStore();
  const bobStore = new InMemorySenderKeyStore();
  const skdm = await createSenderKeyDistributionMessage(aliceStore, alice, DIST);
  await processSenderKeyDistributionMessage(bobStore, alice, skdm);
  return { aliceStore, bobStore, skdm };
}

describeEachProvider("sender keys", () => {
  it("chain derivation matches libsignal's chain-key vector (ratchet/keys.rs)", () => {
    const ck = fromHex(CHAIN_KEY.chainKey);
    const seed = messageKeySeed(ck);
    const keys = getCrypto().hkdfSha256(seed, undefined, utf8("WhisperMessageKeys"), 80);
    assert.equal(toHex(keys.subarray(0, 32)), CHAIN_KEY.cipherKey);
    assert.equal(toHex(keys.subarray(32, 64)), CHAIN_KEY.macKey);
    assert.equal(toHex(nextChainKey(ck)), CHAIN_KEY.nextChainKey);
  });

  it("uuid helpers round trip and reject junk", () => {
    assert.equal(uuidFromBytes(uuidToBytes(DIST.toUpperCase())), DIST);
    assert.throws(
      () => uuidToBytes("not-a-uuid"),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
  });

  it("encrypts and decrypts in order; the distribution message is stable until used", async () => {
    const { aliceStore, bobStore, skdm } = await setup();
    assert.deepEqual(await createSenderKeyDistributionMessage(aliceStore, alice, DIST), skdm);
    for (let i = 0; i < 5; i++) {
      const ct = await groupEncrypt(aliceStore, alice, DIST, utf8(`hello ${i}`));
      assert.deepEqual(await groupDecrypt(bobStore, alice, ct), utf8(`hello ${i}`));
    }
  });

  it("duplicates are DUPLICATE_MESSAGE; missing state NO_SENDER_KEY; far jumps TOO_FAR_AHEAD", async () => {
    const { aliceStore, bobStore } = await setup();
    const ct = await groupEncrypt(aliceStore, alice, DIST, utf8("x"));
    await groupDecrypt(bobStore, alice, ct);
    await assert.rejects(groupDecrypt(bobStore, alice, ct), (e) => isSignalError(e, "DUPLICATE_MESSAGE"));
    await assert.rejects(groupDecrypt(new InMemorySenderKeyStore(), alice, ct), (e) =>
      isSignalError(e, "NO_SENDER_KEY"),
    );
    await assert.rejects(groupEncrypt(bobStore, alice, DIST, utf8("x")), (e) => isSignalError(e, "NO_SENDER_KEY"));
    await assert.rejects(groupEncrypt(new InMemorySenderKeyStore(), alice, DIST, utf8("x")), (e) =>
      isSignalError(e, "NO_SENDER_KEY"),
    );

    // Jump the sender's chain 25,001 steps ahead by editing its record directly.
    const record = (await aliceStore.loadSenderKey(alice, DIST))!;
    const state = record.currentState()!;
    for (let i = 0; i < 25_001; i++) state.chainKey = nextChainKey(state.chainKey);
    state.iteration += 25_001;
    await aliceStore.storeSenderKey(alice, DIST, record);
    const far = await groupEncrypt(aliceStore, alice, DIST, utf8("far"));
    await assert.rejects(groupDecrypt(bobStore, alice, far), (e) => isSignalError(e, "TOO_FAR_AHEAD"));
  });

  it("every flipped bit in a SenderKeyMessage is rejected with a SignalError", async () => {
    const { aliceStore, bobStore } = await setup();
    const ct = await groupEncrypt(aliceStore, alice, DIST, utf8("flip me"));
    for (let bit = 0; bit < ct.length * 8; bit++) {
      const copy = ct.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      await assert.rejects(groupDecrypt(bobStore, alice, copy), (e) => isSignalError(e), `bit ${bit}`);
    }
    // The untouched message still decrypts: failed attempts consumed nothing.
    assert.deepEqual(await groupDecrypt(bobStore, alice, ct), utf8("flip me"));
  });

  it("any order, loss and duplication within bounds decrypts each surviving message exactly once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        fc.func(fc.boolean()),
        async (count, order, dropped) => {
          const { aliceStore, bobStore } = await setup();
          const messages: Uint8Array[] = [];
          for (let i = 0; i < count; i++) messages.push(await groupEncrypt(aliceStore, alice, DIST, utf8(`m${i}`)));
          const delivered = order.map((n) => n % count).filter((i) => !dropped(i));
          const seen = new Set<number>();
          for (const i of delivered) {
            if (seen.has(i)) {
              await assert.rejects(groupDecrypt(bobStore, alice, messages[i]!), (e) =>
                isSignalError(e, "DUPLICATE_MESSAGE"),
              );
            } else {
              assert.deepEqual(await groupDecrypt(bobStore, alice, messages[i]!), utf8(`m${i}`));
              seen.add(i);
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("keeps at most 2,000 skipped keys: older skipped iterations become DUPLICATE_MESSAGE", async () => {
    const { aliceStore, bobStore } = await setup();
    const first = await groupEncrypt(aliceStore, alice, DIST, utf8("first"));
    const record = (await aliceStore.loadSenderKey(alice, DIST))!;
    const state = record.currentState()!;
    for (let i = 0; i < 2001; i++) state.chainKey = nextChainKey(state.chainKey);
    state.iteration += 2001;
    await aliceStore.storeSenderKey(alice, DIST, record);
    const later = await groupEncrypt(aliceStore, alice, DIST, utf8("later"));
    assert.deepEqual(await groupDecrypt(bobStore, alice, later), utf8("later"));
    await assert.rejects(groupDecrypt(bobStore, alice, first), (e) => isSignalError(e, "DUPLICATE_MESSAGE"));
    const bobRecord = (await bobStore.loadSenderKey(alice, DIST))!;
    assert.equal(bobRecord.currentState()!.messageKeys.length, 2000);
  });

  it("records keep at most 5 states, newest first, and re-adding a known chain keeps its progress", async () => {
    const record = new SenderKeyRecord();
    const states = Array.from({ length: 6 }, (_, i) => ({
      messageVersion: 3,
      chainId: i + 1,
      iteration: 0,
      chainKey: new Uint8Array(32).fill(i),
      signingPublicKey: generateKeyPair().publicKey,
      messageKeys: [],
    }));
    for (const s of states) record.addState({ ...s });
    assert.deepEqual(
      record.states.map((s) => s.chainId),
      [6, 5, 4, 3, 2],
    );
    record.states[0]!.iteration = 42;
    record.addState({ ...states[5]!, iteration: 0 });
    assert.equal(record.currentState()!.iteration, 42);
    record.addState({ ...states[5]!, signingPublicKey: generateKeyPair().publicKey });
    assert.equal(record.states.filter((s) => s.chainId === 6).length, 1);
    assert.equal(record.currentState()!.iteration, 0);
  });

  it("record serialization round trips; corrupt records are INVALID_RECORD", async () => {
    const { aliceStore } = await setup();
    await groupEncrypt(aliceStore, alice, DIST, utf8("x"));
    const record = (await aliceStore.loadSenderKey(alice, DIST))!;
    record.currentState()!.messageKeys.push({ iteration: 0, seed: new Uint8Array(32).fill(7) });
    const bytes = record.serialize();
    assert.deepEqual(SenderKeyRecord.deserialize(bytes).serialize(), bytes);
    for (let cut = 0; cut < bytes.length; cut += 7) {
      assert.throws(
        () => SenderKeyRecord.deserialize(bytes.subarray(0, cut)),
        (e) => isSignalError(e, "INVALID_RECORD"),
      );
    }
    assert.throws(
      () => SenderKeyRecord.deserialize(Uint8Array.of(...bytes, 0)),
      (e) => isSignalError(e, "INVALID_RECORD"),
    );
    assert.throws(
      () => SenderKeyRecord.deserialize(Uint8Array.of(2, 0)),
      (e) => isSignalError(e, "INVALID_RECORD"),
    );
    assert.throws(
      () => SenderKeyRecord.deserialize(Uint8Array.of(1, 6)),
      (e) => isSignalError(e, "INVALID_RECORD"),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        try {
          SenderKeyRecord.deserialize(junk);
        } catch (e) {
          assert.ok(isSignalError(e, "INVALID_RECORD"));
        }
      }),
    );
  });
});
