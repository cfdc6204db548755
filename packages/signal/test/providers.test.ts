// The node and noble providers must give byte-identical protocol results.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromHex } from "../src/crypto/bytes.ts";
import { getCrypto, nobleCrypto, setCrypto } from "../src/crypto/index.ts";
import { nodeCrypto } from "../src/crypto/node.node.ts";
import { decodePublicKey, encodePublicKey } from "../src/curve/index.ts";
import { chainMessageKeys, createChain, nextChainKey } from "../src/ratchet/kdf.ts";
import { serializeState } from "../src/session/serialize.ts";
import { initializeAliceSession, initializeBobSession } from "../src/x3dh/index.ts";

function run(provider: typeof nodeCrypto) {
  const saved = getCrypto();
  setCrypto(provider);
  try {
    const alice = {
      privateKey: fromHex("9040f0d4e09cf38f6dc7c13779c908c015a1da4fa78737a080eb0a6f4f5f8f58"),
      publicKey: new Uint8Array(32) as Uint8Array,
    };
    alice.publicKey = provider.x25519PublicKey(alice.privateKey);
    const bob = {
      privateKey: fromHex("4875cc69ddf8ea0719ec947d61081135868d5fd801f02c0225e516df2156605e"),
      publicKey: new Uint8Array(32) as Uint8Array,
    };
    bob.publicKey = provider.x25519PublicKey(bob.privateKey);
    const signed = {
      privateKey: fromHex("583900131fb727998b7803fe6ac22cc591f342e4e42a8c8d5d78194209b8d253"),
      publicKey: new Uint8Array(32) as Uint8Array,
    };
    signed.publicKey = provider.x25519PublicKey(signed.privateKey);
    const fixedRatchet = {
      privateKey: fromHex("11ae7c64d1e61cd596b76a0db5012673391cae66edbfcf073b4da80516a47449"),
      publicKey: new Uint8Array(32) as Uint8Array,
    };
    fixedRatchet.publicKey = provider.x25519PublicKey(fixedRatchet.privateKey);
    const a = initializeAliceSession({
      ourIdentity: alice,
      ourBaseKey: fixedRatchet,
      theirIdentityKey: encodePublicKey(bob.publicKey),
      theirSignedPreKey: signed.publicKey,
      theirRatchetKey: signed.publicKey,
      ourSendingRatchetKey: fixedRatchet,
    });
    const b = initializeBobSession({
      ourIdentity: bob,
      ourSignedPreKey: signed,
      ourRatchetKey: signed,
      theirIdentityKey: encodePublicKey(alice.publicKey),
      theirBaseKey: decodePublicKey(encodePublicKey(fixedRatchet.publicKey)),
    });
    let chain = a.state.senderChain!.chainKey;
    const keys = [];
    for (let i = 0; i < 3; i++) {
      keys.push(chainMessageKeys(chain));
      chain = nextChainKey(chain);
    }
    const step = createChain(a.state.rootKey, signed.publicKey, fixedRatchet.privateKey);
    const ct = provider.aes256CbcEncrypt(keys[0]!.cipherKey, keys[0]!.iv, new Uint8Array(100).fill(7));
    return { alice: serializeState(a.state), bob: serializeState(b), keys, step, ct };
  } finally {
    setCrypto(saved);
  }
}

describe("providers agree", () => {
  it("X3DH, chain steps, message keys and ciphertexts are identical on node and noble", () => {
    assert.deepEqual(run(nodeCrypto), run(nobleCrypto));
  });
});
