import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isWireError } from "../src/errors.ts";
import { CipherState, HandshakeState, nobleSuite } from "../src/noise/index.ts";
import { nodeCryptoSuite, nodeSuite, nodeSuiteUsesLibsodium } from "../src/noise/suite.node.ts";

const key = new Uint8Array(32).map((_, i) => i);
const empty = new Uint8Array(0);
const msg = new TextEncoder().encode("hello");

for (const suite of [nodeSuite, nodeCryptoSuite, nobleSuite]) {
  for (const cipher of ["AESGCM", "ChaChaPoly"] as const) {
    describe(`CipherState ${cipher} (${suite.name})`, () => {
      it("reserves nonce 2^64-1", () => {
        const c = new CipherState(suite, cipher, key);
        c.setNonce(0xffff_ffff_ffff_fffen);
        c.encryptWithAd(empty, msg);
        assert.equal(c.nonce, 0xffff_ffff_ffff_ffffn);
        assert.throws(
          () => c.encryptWithAd(empty, msg),
          (err) => isWireError(err),
        );
      });

      it("carries the nonce across the 32-bit boundary exactly", () => {
        const a = new CipherState(suite, cipher, key);
        const b = new CipherState(suite, cipher, key);
        a.setNonce(0xffff_ffffn);
        b.setNonce(0xffff_ffffn);
        for (let i = 0; i < 3; i++) assert.deepEqual(b.decryptWithAd(empty, a.encryptWithAd(empty, msg)), msg);
        assert.equal(a.nonce, 0x1_0000_0002n);
      });

      it("a failed decryption does not advance the nonce", () => {
        const a = new CipherState(suite, cipher, key);
        const b = new CipherState(suite, cipher, key);
        const ct = a.encryptWithAd(empty, msg);
        const bad = ct.slice();
        bad[0]! ^= 1;
        assert.throws(
          () => b.decryptWithAd(empty, bad),
          (err) => isWireError(err, "DECRYPT_FAILED"),
        );
        assert.equal(b.nonce, 0n);
        assert.deepEqual(b.decryptWithAd(empty, ct), msg);
        assert.equal(b.nonce, 1n);
      });

      it("rekey changes the key on both sides and keeps n", () => {
        const a = new CipherState(suite, cipher, key);
        const b = new CipherState(suite, cipher, key);
        b.decryptWithAd(empty, a.encryptWithAd(empty, msg));
        a.rekey();
        const afterRekey = a.encryptWithAd(empty, msg);
        const stale = new CipherState(suite, cipher, key);
        stale.setNonce(1n);
        assert.throws(() => stale.decryptWithAd(empty, afterRekey));
        b.rekey();
        assert.deepEqual(b.decryptWithAd(empty, afterRekey), msg);
        assert.equal(b.nonce, 2n);
      });
    });
  }
}

describe("ChaChaPoly records: libsodium, node:crypto and noble agree", () => {
  it("the node suite runs on libsodium on this machine (sodium-native's prebuilt addon loads)", () => {
    assert.equal(nodeSuiteUsesLibsodium, true);
  });

  it("same ciphertext for any key, nonce, associated data and plaintext; a flipped bit fails on all", () => {
    const suites = [nodeSuite, nodeCryptoSuite, nobleSuite];
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_fffen }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 2048 }),
        fc.nat(),
        (k, n, ad, plaintext, flip) => {
          const sealed = suites.map((suite) => {
            const c = new CipherState(suite, "ChaChaPoly", k);
            c.setNonce(n);
            return c.encryptWithAd(ad, plaintext);
          });
          assert.deepEqual(sealed[1], sealed[0]);
          assert.deepEqual(sealed[2], sealed[0]);
          const bad = sealed[0]!.slice();
          bad[flip % bad.length]! ^= 1 << (flip % 8);
          for (const suite of suites) {
            const open = () => {
              const c = new CipherState(suite, "ChaChaPoly", k);
              c.setNonce(n);
              return c.decryptWithAd(ad, bad);
            };
            assert.throws(open, (err) => isWireError(err, "DECRYPT_FAILED"));
            const c = new CipherState(suite, "ChaChaPoly", k);
            c.setNonce(n);
            assert.deepEqual(c.decryptWithAd(ad, sealed[0]!), plaintext);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("node and noble suites agree", () => {
  it("same key pair, DH, and rekeyed ciphertext", () => {
    const a = nodeSuite.generateKeyPair();
    const b = nobleSuite.generateKeyPair();
    assert.deepEqual(nodeSuite.publicKeyOf(b.privateKey), b.publicKey);
    assert.deepEqual(nobleSuite.publicKeyOf(a.privateKey), a.publicKey);
    assert.deepEqual(nodeSuite.dh(a, b.publicKey), nobleSuite.dh(b, a.publicKey));
    for (const cipher of ["AESGCM", "ChaChaPoly"] as const) {
      const x = new CipherState(nodeSuite, cipher, key);
      const y = new CipherState(nobleSuite, cipher, key);
      x.rekey();
      y.rekey();
      assert.deepEqual(x.encryptWithAd(msg, msg), y.encryptWithAd(msg, msg));
    }
  });

  it("rejects a low-order public key with HANDSHAKE_FAILED", () => {
    for (const suite of [nodeSuite, nobleSuite]) {
      const responder = new HandshakeState({
        suite,
        pattern: "XX",
        cipher: "AESGCM",
        initiator: true,
        prologue: empty,
        s: suite.generateKeyPair(),
      });
      responder.writeMessage();
      // an all-zero ephemeral gives an all-zero DH output
      assert.throws(
        () => responder.readMessage(new Uint8Array(32 + 48 + 16)),
        (err) => isWireError(err, "HANDSHAKE_FAILED"),
      );
    }
  });

  it("refuses out-of-turn use", () => {
    const hs = new HandshakeState({
      suite: nodeSuite,
      pattern: "XX",
      cipher: "AESGCM",
      initiator: false,
      prologue: empty,
      s: nodeSuite.generateKeyPair(),
    });
    assert.throws(
      () => hs.writeMessage(),
      (err) => isWireError(err, "HANDSHAKE_FAILED"),
    );
    assert.throws(
      () => hs.split(),
      (err) => isWireError(err, "HANDSHAKE_FAILED"),
    );
  });
});
