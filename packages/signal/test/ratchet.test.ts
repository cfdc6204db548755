// Double Ratchet KDFs against libsignal's chain-key vector, and the
// skipped-key / receiver-chain bounds.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { fromHex, toHex } from "../src/crypto/bytes.ts";
import { getCrypto } from "../src/crypto/index.ts";
import { generateKeyPair } from "../src/curve/index.ts";
import { chainMessageKeys, createChain, nextChainKey } from "../src/ratchet/kdf.ts";
import { decryptMessage, encryptMessage, processPreKeyBundle } from "../src/session/cipher.ts";
import { SessionRecord } from "../src/session/record.ts";
import { MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS } from "../src/session/state.ts";
import { describeEachProvider, makeDevice, str, text } from "./fixtures/sessions/helpers.ts";

const vectors = JSON.parse(
  readFileSync(new URL("./fixtures/sessions/libsignal-vectors.json", import.meta.url), "utf8"),
);
const ck = vectors.chainKey as Record<string, string>;

describeEachProvider("Double Ratchet KDFs", () => {
  it("chain key derivation matches libsignal keys.rs test_chain_key_derivation", () => {
    const chain = { key: fromHex(ck.seed!), index: 0 };
    const keys = chainMessageKeys(chain);
    assert.equal(toHex(keys.cipherKey), ck.messageCipherKey);
    assert.equal(toHex(keys.macKey), ck.messageMacKey);
    assert.equal(keys.counter, 0);
    const next = nextChainKey(chain);
    assert.equal(toHex(next.key), ck.nextChainKey);
    assert.equal(next.index, 1);
    assert.equal(chainMessageKeys(next).counter, 1);
  });

  it("KDF_RK is HKDF(salt = root, ikm = DH, info WhisperRatchet) split 32/32, symmetric in the DH", () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const root = getCrypto().randomBytes(32);
    const one = createChain(root, b.publicKey, a.privateKey);
    const two = createChain(root, a.publicKey, b.privateKey);
    assert.deepEqual(one, two);
    const okm = getCrypto().hkdfSha256(
      getCrypto().x25519(a.privateKey, b.publicKey),
      root,
      new TextEncoder().encode("WhisperRatchet"),
      64,
    );
    assert.deepEqual(one.rootKey, okm.slice(0, 32));
    assert.deepEqual(one.chainKey.key, okm.slice(32));
  });
});

describeEachProvider("ratchet bounds", () => {
  it("keeps at most 2,000 skipped keys per chain, dropping the oldest", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    const messages = [];
    for (let i = 0; i < MAX_MESSAGE_KEYS + 3; i++)
      messages.push(await encryptMessage(bob.address, text(`${i}`), alice.stores));
    const last = messages[messages.length - 1]!;
    assert.equal(str(await decryptMessage(alice.address, last.type, last.body, bob.stores)), `${MAX_MESSAGE_KEYS + 2}`);
    const record = SessionRecord.deserialize((await bob.stores.sessions.loadSession(alice.address))!);
    assert.equal(record.current!.receiverChains[0]!.skipped.length, MAX_MESSAGE_KEYS);
    // The two oldest keys are gone: those messages now count as duplicates.
    for (const i of [0, 1]) {
      const m = messages[i]!;
      await assert.rejects(decryptMessage(alice.address, m.type, m.body, bob.stores), { code: "DUPLICATE_MESSAGE" });
    }
    const m2 = messages[2]!;
    assert.equal(str(await decryptMessage(alice.address, m2.type, m2.body, bob.stores)), "2");
  });

  it("keeps at most 5 receiver chains", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    let [from, to] = [alice, bob];
    for (let i = 0; i < 14; i++) {
      const m = await encryptMessage(to.address, text(`t${i}`), from.stores);
      await decryptMessage(from.address, m.type, m.body, to.stores);
      [from, to] = [to, from];
    }
    const record = SessionRecord.deserialize((await bob.stores.sessions.loadSession(alice.address))!);
    assert.equal(record.current!.receiverChains.length, MAX_RECEIVER_CHAINS);
  });
});
