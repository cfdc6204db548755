// XEdDSA verification through node:crypto's Ed25519 (the node provider's
// ed25519Verify) must agree with the pure-JS path on every input: valid
// signatures, every kind of tampering, s in [q, 2^253) (accepted mod q, as
// libsignal does), s >= 2^253, unmappable and non-canonical public keys.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { fromHex, getCrypto, nobleCrypto, setCrypto } from "../src/crypto/index.ts";
import { nodeCrypto } from "../src/crypto/node.node.ts";
import { generateKeyPair, xeddsaSign, xeddsaVerify, xeddsaVerifyPure } from "../src/curve/index.ts";
import { loadWycheproof, type WycheproofFile } from "./fixtures/primitives/helpers.ts";
import { XEDDSA } from "./fixtures/primitives/libsignal-vectors.ts";

const P = 2n ** 255n - 19n;
const L = ed25519.Point.Fn.ORDER;

function toLE(n: bigint, length = 32): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

function fromLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

/** xeddsaVerify with the node provider active (native path) vs the pure path; asserts they agree. */
function bothPaths(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  const saved = getCrypto();
  setCrypto(nodeCrypto);
  let native: boolean;
  try {
    native = xeddsaVerify(pub, msg, sig);
  } finally {
    setCrypto(saved);
  }
  const pure = xeddsaVerifyPure(pub, msg, sig);
  assert.equal(native, pure, `native ${native} vs pure ${pure}`);
  return pure;
}

/** Replace s (keeping the sign bit in sig[63]) by an arbitrary 255-bit value. */
function withS(sig: Uint8Array, s: bigint): Uint8Array {
  const out = sig.slice();
  out.set(toLE(s), 32);
  out[63] = (out[63]! & 0x7f) | (sig[63]! & 0x80);
  return out;
}

function sOf(sig: Uint8Array): bigint {
  return fromLE(sig.subarray(32)) & ((1n << 255n) - 1n);
}

describe("XEdDSA native (node:crypto Ed25519) verification", () => {
  it("the provider advertises the fast path only on node", () => {
    assert.equal(typeof nodeCrypto.ed25519Verify, "function");
    assert.equal(nobleCrypto.ed25519Verify, undefined);
  });

  it("libsignal's XEdDSA vector and all its single-bit flips agree", () => {
    const pub = fromHex(XEDDSA.identityPublic);
    const msg = fromHex(XEDDSA.message);
    const sig = fromHex(XEDDSA.signature);
    assert.equal(bothPaths(pub, msg, sig), true);
    for (let bit = 0; bit < 512; bit += 3) {
      const copy = sig.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(bothPaths(pub, msg, copy), false, `bit ${bit}`);
    }
  });

  it("random keys and messages: valid signatures, tampering, s + k·q, wrong sign bit", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.nat({ max: 511 }),
        fc.integer({ min: 1, max: 15 }),
        (msg, bit, k) => {
          const kp = generateKeyPair();
          const sig = xeddsaSign(kp.privateKey, msg);
          assert.equal(bothPaths(kp.publicKey, msg, sig), true);
          const flipped = sig.slice();
          flipped[bit >> 3]! ^= 1 << (bit & 7);
          bothPaths(kp.publicKey, msg, flipped);
          // s + k·q: still < 2^253 for small k (accepted mod q by libsignal), rejected at >= 2^253.
          const bigS = sOf(sig) + BigInt(k) * L;
          assert.equal(bothPaths(kp.publicKey, msg, withS(sig, bigS)), bigS < 2n ** 253n);
          const otherSign = sig.slice();
          otherSign[63]! ^= 0x80;
          assert.equal(bothPaths(kp.publicKey, msg, otherSign), false);
          assert.equal(bothPaths(generateKeyPair().publicKey, msg, sig), false);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("arbitrary public keys (curve, twist, non-canonical u >= p, u = 0, u = -1) and signatures agree", () => {
    const special = [0n, 1n, P - 1n, P, P + 1n, P + 5n, 2n ** 255n - 1n, 9n].map((u) => toLE(u));
    const kp = generateKeyPair();
    const msg = Uint8Array.of(1, 2, 3);
    const sig = xeddsaSign(kp.privateKey, msg);
    for (const pub of special) {
      bothPaths(pub, msg, sig);
      bothPaths(pub, msg, new Uint8Array(64));
      const withSign = sig.slice();
      withSign[63]! ^= 0x80;
      bothPaths(pub, msg, withSign);
    }
    // The top bit of u is ignored: the same key with bit 255 set still verifies.
    const high = kp.publicKey.slice();
    high[31]! |= 0x80;
    assert.equal(bothPaths(high, msg, sig), true);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (pub, randomSig) => {
          bothPaths(pub, msg, randomSig);
          bothPaths(pub, msg, sig);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("Wycheproof Ed25519 vectors through the node provider's ed25519Verify", () => {
    type EddsaTest = { tcId: number; msg: string; sig: string; result: "valid" | "invalid" };
    const ed = loadWycheproof<WycheproofFile<EddsaTest> & { testGroups: Array<{ publicKey: { pk: string } }> }>(
      "ed25519_test.json",
    );
    const verify = nodeCrypto.ed25519Verify as NonNullable<typeof nodeCrypto.ed25519Verify>;
    let checked = 0;
    for (const group of ed.testGroups) {
      const pk = fromHex(group.publicKey.pk);
      for (const t of group.tests) {
        assert.equal(verify(pk, fromHex(t.msg), fromHex(t.sig)), t.result === "valid", `tcId ${t.tcId}`);
        checked++;
      }
    }
    assert.equal(checked, 151);
    assert.equal(verify(new Uint8Array(31), new Uint8Array(0), new Uint8Array(64)), false);
    assert.equal(verify(new Uint8Array(32), new Uint8Array(0), new Uint8Array(63)), false);
  });
});
