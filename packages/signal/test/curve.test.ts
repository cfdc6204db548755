import assert from "node:assert/strict";
import { it } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { fromHex, getCrypto, toHex } from "../src/crypto/index.ts";
import {
  agree,
  decodePublicKey,
  edwardsVerifyCore,
  encodePublicKey,
  generateKeyPair,
  montgomeryToEdwards,
  publicKeyFromPrivate,
  xeddsaSign,
  xeddsaVerify,
} from "../src/curve/index.ts";
import { isSignalError } from "../src/errors.ts";
import { describeEachProvider, loadWycheproof, type WycheproofFile } from "./fixtures/primitives/helpers.ts";
import { AGREEMENT, XEDDSA } from "./fixtures/primitives/libsignal-vectors.ts";

type EddsaTest = { tcId: number; msg: string; sig: string; result: "valid" | "invalid" };
const ed = loadWycheproof<WycheproofFile<EddsaTest> & { testGroups: Array<{ publicKey: { pk: string } }> }>(
  "ed25519_test.json",
);
const L = ed25519.Point.Fn.ORDER;

function bytesToNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

/** RFC 8032 (cofactorless) Ed25519 verification built on the same core XEdDSA uses. */
function ed25519Verify(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (pk.length !== 32 || sig.length !== 64) return false;
  let point: InstanceType<typeof ed25519.Point>;
  try {
    point = ed25519.Point.fromBytes(pk); // strict RFC 8032 decoding
  } catch {
    return false;
  }
  const s = bytesToNumberLE(sig.subarray(32));
  if (s >= L) return false;
  return edwardsVerifyCore(point, pk, sig.subarray(0, 32), s, msg);
}

describeEachProvider("curve25519", () => {
  it("libsignal agreement vector (curve25519.rs test_agreement)", () => {
    assert.equal(toHex(publicKeyFromPrivate(fromHex(AGREEMENT.alicePrivate))), AGREEMENT.alicePublic);
    assert.equal(toHex(publicKeyFromPrivate(fromHex(AGREEMENT.bobPrivate))), AGREEMENT.bobPublic);
    assert.equal(toHex(agree(fromHex(AGREEMENT.alicePrivate), fromHex(AGREEMENT.bobPublic))), AGREEMENT.shared);
    assert.equal(toHex(agree(fromHex(AGREEMENT.bobPrivate), fromHex(AGREEMENT.alicePublic))), AGREEMENT.shared);
  });

  it("libsignal XEdDSA vector verifies; every single-bit flip of it is rejected", () => {
    const pub = fromHex(XEDDSA.identityPublic);
    const msg = fromHex(XEDDSA.message);
    const sig = fromHex(XEDDSA.signature);
    assert.equal(toHex(publicKeyFromPrivate(fromHex(XEDDSA.identityPrivate))), XEDDSA.identityPublic);
    assert.equal(xeddsaVerify(pub, msg, sig), true);
    for (let bit = 0; bit < 512; bit++) {
      const copy = sig.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(xeddsaVerify(pub, msg, copy), false, `bit ${bit}`);
    }
  });

  it("sign/verify round trip, deterministic for fixed randomness, and bound to key and message", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (msg, z) => {
        const kp = generateKeyPair();
        const sig = xeddsaSign(kp.privateKey, msg, z);
        assert.deepEqual(xeddsaSign(kp.privateKey, msg, z), sig);
        assert.equal(xeddsaVerify(kp.publicKey, msg, sig), true);
        assert.equal(xeddsaVerify(generateKeyPair().publicKey, msg, sig), false);
        const other = Uint8Array.from([...msg, 0]);
        assert.equal(xeddsaVerify(kp.publicKey, other, sig), false);
      }),
      { numRuns: 25 },
    );
  });

  it("the signature stores the Edwards sign bit in sig[63] bit 7, and both signs occur", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 24 && seen.size < 2; i++) {
      const kp = generateKeyPair();
      const sig = xeddsaSign(kp.privateKey, Uint8Array.of(1));
      seen.add(sig[63]! >> 7);
      assert.equal(xeddsaVerify(kp.publicKey, Uint8Array.of(1), sig), true);
    }
    assert.equal(seen.size, 2);
  });

  it("rejects s with any of its top 3 bits set, even when valid mod q", () => {
    const kp = generateKeyPair();
    const msg = Uint8Array.of(7, 7);
    const sig = xeddsaSign(kp.privateKey, msg);
    const s = bytesToNumberLE(sig.subarray(32, 64)) & ((1n << 255n) - 1n);
    const sPlusQ = s + 16n * L; // same scalar mod q, but >= 2^253
    const tampered = sig.slice();
    for (let i = 0; i < 32; i++) tampered[32 + i] = Number((sPlusQ >> BigInt(8 * i)) & 0xffn);
    tampered[63]! |= sig[63]! & 0x80;
    assert.equal(xeddsaVerify(kp.publicKey, msg, tampered), false);
  });

  it("never throws on malformed inputs; rejects unmappable public keys", () => {
    const p = 2n ** 255n - 19n - 1n; // u = -1 has no Edwards image
    const minusOne = new Uint8Array(32);
    for (let i = 0; i < 32; i++) minusOne[i] = Number((p >> BigInt(8 * i)) & 0xffn);
    assert.equal(montgomeryToEdwards(minusOne, 0), undefined);
    assert.equal(xeddsaVerify(minusOne, Uint8Array.of(1), new Uint8Array(64)), false);
    assert.equal(xeddsaVerify(new Uint8Array(31), Uint8Array.of(1), new Uint8Array(64)), false);
    assert.equal(xeddsaVerify(new Uint8Array(32), Uint8Array.of(1), new Uint8Array(63)), false);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (pub, sig) => {
          assert.equal(xeddsaVerify(pub, Uint8Array.of(1, 2, 3), sig), false);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("public key encoding: 0x05 ‖ raw, strict decoding with INVALID_KEY", () => {
    const kp = generateKeyPair();
    const encoded = encodePublicKey(kp.publicKey);
    assert.equal(encoded.length, 33);
    assert.equal(encoded[0], 0x05);
    assert.deepEqual(decodePublicKey(encoded), kp.publicKey);
    for (const bad of [new Uint8Array(0), new Uint8Array(32), new Uint8Array(34), Uint8Array.of(6, ...kp.publicKey)]) {
      assert.throws(
        () => decodePublicKey(bad),
        (e) => isSignalError(e, "INVALID_KEY"),
      );
    }
    assert.throws(
      () => encodePublicKey(new Uint8Array(33)),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
  });

  it("generated private keys are clamped, as libsignal stores them", () => {
    const { privateKey } = generateKeyPair();
    assert.equal(privateKey[0]! & 7, 0);
    assert.equal(privateKey[31]! & 0xc0, 0x40);
    assert.equal(getCrypto().x25519PublicKey(privateKey).length, 32);
  });
});

describeEachProvider("Wycheproof Ed25519 through the XEdDSA verification core", () => {
  it("accepts every valid and rejects every invalid signature", () => {
    let checked = 0;
    for (const group of ed.testGroups) {
      const pk = fromHex(group.publicKey.pk);
      for (const t of group.tests) {
        assert.equal(ed25519Verify(pk, fromHex(t.msg), fromHex(t.sig)), t.result === "valid", `tcId ${t.tcId}`);
        checked++;
      }
    }
    assert.equal(checked, 151);
  });
});
