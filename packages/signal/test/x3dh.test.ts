// X3DH / PQXDH against libsignal's fixed-key vectors (classical v3) and
// Alice/Bob agreement (PQXDH v4, both KEM types).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { fromHex, toHex } from "../src/crypto/bytes.ts";
import { decodePublicKey, generateKeyPair, publicKeyFromPrivate } from "../src/curve/index.ts";
import { generateIdentityKeyPair, identityPublicKey } from "../src/keys/identity.ts";
import {
  generateKemPreKeyPair,
  KEM_TYPE_KYBER1024,
  KEM_TYPE_MLKEM1024,
  serializeKemPublicKey,
} from "../src/keys/kem.ts";
import { initializeAliceSession, initializeBobSession } from "../src/x3dh/index.ts";
import { describeEachProvider } from "./fixtures/sessions/helpers.ts";

const vectors = JSON.parse(
  readFileSync(new URL("./fixtures/sessions/libsignal-vectors.json", import.meta.url), "utf8"),
);
const v = vectors.session as Record<string, string>;
const h = (name: string) => fromHex(v[name] as string);

describeEachProvider("X3DH libsignal fixed-key vectors (v3)", () => {
  it("the vector's identity and signed prekey pairs are consistent", () => {
    assert.deepEqual(publicKeyFromPrivate(h("bobIdentityPrivate")), decodePublicKey(h("bobIdentityPublic")));
    assert.deepEqual(publicKeyFromPrivate(h("aliceIdentityPrivate")), decodePublicKey(h("aliceIdentityPublic")));
    assert.deepEqual(publicKeyFromPrivate(h("bobSignedPreKeyPrivate")), decodePublicKey(h("bobSignedPreKeyPublic")));
    // libsignal's KeyPair::from_public_and_private does not check, and in this vector the
    // base and ephemeral private keys do not match their public halves; each side's
    // expected value was computed from exactly the halves it uses, as here.
    assert.notDeepEqual(publicKeyFromPrivate(h("aliceBasePrivate")), decodePublicKey(h("aliceBasePublic")));
  });

  it("Bob's initial sending chain key matches test_ratcheting_session_as_bob", () => {
    const state = initializeBobSession({
      ourIdentity: { publicKey: decodePublicKey(h("bobIdentityPublic")), privateKey: h("bobIdentityPrivate") },
      ourSignedPreKey: {
        publicKey: decodePublicKey(h("bobSignedPreKeyPublic")),
        privateKey: h("bobSignedPreKeyPrivate"),
      },
      ourRatchetKey: { publicKey: decodePublicKey(h("bobEphemeralPublic")), privateKey: h("bobEphemeralPrivate") },
      theirIdentityKey: h("aliceIdentityPublic"),
      theirBaseKey: decodePublicKey(h("aliceBasePublic")),
    });
    assert.equal(state.version, 3);
    assert.equal(toHex(state.senderChain!.chainKey.key), v.expectedBobSenderChain);
    assert.equal(state.senderChain!.chainKey.index, 0);
    assert.deepEqual(state.localIdentityKey, h("bobIdentityPublic"));
    assert.deepEqual(state.remoteIdentityKey, h("aliceIdentityPublic"));
  });

  it("Alice's receiving chain key matches test_ratcheting_session_as_alice", () => {
    const { state, kyberCiphertext } = initializeAliceSession({
      ourIdentity: { publicKey: decodePublicKey(h("aliceIdentityPublic")), privateKey: h("aliceIdentityPrivate") },
      ourBaseKey: { publicKey: decodePublicKey(h("aliceBasePublic")), privateKey: h("aliceBasePrivate") },
      theirIdentityKey: h("bobIdentityPublic"),
      theirSignedPreKey: decodePublicKey(h("bobSignedPreKeyPublic")),
      theirRatchetKey: decodePublicKey(h("bobEphemeralPublic")),
    });
    assert.equal(kyberCiphertext, undefined);
    assert.equal(state.version, 3);
    const chain = state.receiverChains.find((c) => toHex(c.ratchetKey) === v.bobEphemeralPublic!.slice(2));
    assert.ok(chain);
    assert.equal(toHex(chain.chainKey.key), v.expectedAliceReceiverChain);
    // Bob's sending chain (from the other vector) equals Alice's receiving one in this same run.
    assert.equal(v.expectedAliceReceiverChain, "ab9be50e5cb22a925446ab90ee5670545f4fd32902459ec274b6ad0ae5d6031a");
  });

  for (const withOneTime of [false, true]) {
    for (const kemType of [undefined, KEM_TYPE_MLKEM1024, KEM_TYPE_KYBER1024] as const) {
      it(`Alice and Bob agree (one-time prekey: ${withOneTime}, KEM: ${kemType ?? "none"})`, () => {
        const aliceIdentity = generateIdentityKeyPair();
        const bobIdentity = generateIdentityKeyPair();
        const base = generateKeyPair();
        const signed = generateKeyPair();
        const oneTime = withOneTime ? generateKeyPair() : undefined;
        const kem = kemType === undefined ? undefined : generateKemPreKeyPair(kemType);
        const alice = initializeAliceSession({
          ourIdentity: aliceIdentity,
          ourBaseKey: base,
          theirIdentityKey: identityPublicKey(bobIdentity),
          theirSignedPreKey: signed.publicKey,
          theirOneTimePreKey: oneTime?.publicKey,
          theirRatchetKey: signed.publicKey,
          theirKyberPreKey: kem && serializeKemPublicKey(kem.type, kem.publicKey),
        });
        const bob = initializeBobSession({
          ourIdentity: bobIdentity,
          ourSignedPreKey: signed,
          ourOneTimePreKey: oneTime,
          ourRatchetKey: signed,
          ourKyberPreKey: kem,
          theirIdentityKey: identityPublicKey(aliceIdentity),
          theirBaseKey: base.publicKey,
          theirKyberCiphertext: alice.kyberCiphertext,
        });
        assert.equal(alice.state.version, kem ? 4 : 3);
        assert.equal(bob.version, alice.state.version);
        if (kem) assert.equal(alice.kyberCiphertext?.[0], kem.type);
        assert.deepEqual(alice.state.receiverChains[0]!.chainKey.key, bob.senderChain!.chainKey.key);
      });
    }
  }

  it("a wrong one-time prekey or KEM secret gives different keys", () => {
    const aliceIdentity = generateIdentityKeyPair();
    const bobIdentity = generateIdentityKeyPair();
    const base = generateKeyPair();
    const signed = generateKeyPair();
    const kem = generateKemPreKeyPair();
    const alice = initializeAliceSession({
      ourIdentity: aliceIdentity,
      ourBaseKey: base,
      theirIdentityKey: identityPublicKey(bobIdentity),
      theirSignedPreKey: signed.publicKey,
      theirRatchetKey: signed.publicKey,
      theirKyberPreKey: serializeKemPublicKey(kem.type, kem.publicKey),
    });
    const bob = initializeBobSession({
      ourIdentity: bobIdentity,
      ourSignedPreKey: signed,
      ourRatchetKey: signed,
      ourKyberPreKey: generateKemPreKeyPair(),
      theirIdentityKey: identityPublicKey(aliceIdentity),
      theirBaseKey: base.publicKey,
      theirKyberCiphertext: alice.kyberCiphertext,
    });
    assert.notDeepEqual(alice.state.receiverChains[0]!.chainKey.key, bob.senderChain!.chainKey.key);
  });
});
