// The Noise suites' X25519 and SHA-256: libsodium (nodeSuite, when its addon loads), OpenSSL
// (nodeCryptoSuite, the fallback) and noble (browsers) must be interchangeable, since a client on
// one talks to a server on another. Checked against Wycheproof's X25519 vectors (the copy the
// signal package's primitive tests use) and against each other.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { nobleSuite } from "../src/noise/index.ts";
import { nodeCryptoSuite, nodeSuite } from "../src/noise/suite.node.ts";

interface XdhTest {
  tcId: number;
  public: string;
  private: string;
  shared: string;
  result: "valid" | "acceptable" | "invalid";
  flags: string[];
}
const wycheproof = JSON.parse(
  readFileSync(new URL("../../signal/test/fixtures/primitives/wycheproof/x25519_test.json", import.meta.url), "utf8"),
) as { testGroups: { tests: XdhTest[] }[] };
const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const suites = [nodeSuite, nodeCryptoSuite, nobleSuite];

for (const suite of suites) {
  describe(`X25519 on the ${suite.name} suite: Wycheproof`, () => {
    it("every vector: the expected shared secret, or a refusal where it is all zero", () => {
      let checked = 0;
      let refused = 0;
      for (const t of wycheproof.testGroups.flatMap((g) => g.tests)) {
        const keyPair = { privateKey: hex(t.private), publicKey: new Uint8Array(32) };
        if (/^0+$/.test(t.shared)) {
          // A low-order public key: Noise (and Parley) must not go on with a known secret. Each
          // library words its refusal its own way; the handshake maps any of them to one error.
          assert.throws(() => suite.dh(keyPair, hex(t.public)), Error, `tcId ${t.tcId}`);
          refused++;
        } else {
          assert.deepEqual(suite.dh(keyPair, hex(t.public)), hex(t.shared), `tcId ${t.tcId}`);
        }
        checked++;
      }
      assert.equal(checked, 518);
      assert.equal(refused, 31);
    });

    it("rejects keys that are not 32 bytes", () => {
      const keyPair = suite.generateKeyPair();
      assert.throws(() => suite.dh(keyPair, new Uint8Array(31)));
      assert.throws(() => suite.dh(keyPair, new Uint8Array(33)));
    });
  });
}

describe("X25519 and SHA-256: libsodium, node:crypto and noble agree", () => {
  it("same public key and shared secret for any two private keys; same digest for any input", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 300 }),
        (a, b, data) => {
          const publicA = suites.map((s) => s.publicKeyOf(a));
          const publicB = nobleSuite.publicKeyOf(b);
          for (const p of publicA) assert.deepEqual(p, publicA[0]);
          const shared = suites.map((s) => s.dh({ privateKey: a, publicKey: publicA[0]! }, publicB));
          for (const x of shared) assert.deepEqual(x, shared[0]);
          // Diffie-Hellman: both sides reach the same secret.
          assert.deepEqual(nodeSuite.dh({ privateKey: b, publicKey: publicB }, publicA[0]!), shared[0]);
          const digest = new Uint8Array(createHash("sha256").update(data).digest());
          for (const s of suites) assert.deepEqual(s.sha256(data), digest);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("generated key pairs hold together: the public key is the private key's", () => {
    for (const s of suites) {
      const kp = s.generateKeyPair();
      assert.equal(kp.privateKey.length, 32);
      assert.deepEqual(nobleSuite.publicKeyOf(kp.privateKey), kp.publicKey);
    }
  });
});
