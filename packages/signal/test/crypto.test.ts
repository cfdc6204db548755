import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  bytesEqual,
  concatBytes,
  constantTimeEqual,
  fromHex,
  getCrypto,
  nobleCrypto,
  setCrypto,
  toHex,
  utf8,
} from "../src/crypto/index.ts";
import { nodeCrypto } from "../src/crypto/node.node.ts";
import { isSignalError } from "../src/errors.ts";
import {
  describeEachProvider,
  loadWycheproof,
  type WycheproofFile,
  type WycheproofResult,
} from "./fixtures/primitives/helpers.ts";

type HkdfTest = {
  tcId: number;
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: WycheproofResult;
};
type MacTest = { tcId: number; key: string; msg: string; tag: string; result: WycheproofResult };
type CbcTest = { tcId: number; key: string; iv: string; msg: string; ct: string; result: WycheproofResult };
type XdhTest = {
  tcId: number;
  public: string;
  private: string;
  shared: string;
  result: WycheproofResult;
  flags: string[];
};

const hkdf = loadWycheproof<WycheproofFile<HkdfTest>>("hkdf_sha256_test.json");
const hmac = loadWycheproof<WycheproofFile<MacTest> & { testGroups: Array<{ tagSize: number }> }>(
  "hmac_sha256_test.json",
);
const cbc = loadWycheproof<WycheproofFile<CbcTest> & { testGroups: Array<{ keySize: number }> }>(
  "aes_cbc_pkcs5_test.json",
);
const x25519 = loadWycheproof<WycheproofFile<XdhTest>>("x25519_test.json");

describe("byte helpers", () => {
  it("hex round trip and rejection of bad hex", () => {
    assert.equal(toHex(fromHex("00ff10Ab")), "00ff10ab");
    assert.throws(() => fromHex("abc"), TypeError);
    assert.throws(() => fromHex("zz"), TypeError);
    assert.throws(() => fromHex("+1"), TypeError);
  });
  it("concat, equality, utf8", () => {
    assert.deepEqual(concatBytes(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3)), Uint8Array.of(1, 2, 3));
    assert.equal(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)), true);
    assert.equal(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)), false);
    assert.equal(constantTimeEqual(Uint8Array.of(1), Uint8Array.of(1, 2)), false);
    assert.equal(bytesEqual(Uint8Array.of(), Uint8Array.of()), true);
    assert.deepEqual(utf8("é"), Uint8Array.of(0xc3, 0xa9));
  });
  it("getCrypto defaults to noble and setCrypto switches", () => {
    assert.equal(getCrypto(), nobleCrypto);
    setCrypto(nodeCrypto);
    assert.equal(getCrypto().name, "node");
    setCrypto(nobleCrypto);
  });
});

describeEachProvider("Wycheproof", (provider) => {
  it("HKDF-SHA256", () => {
    let checked = 0;
    for (const group of hkdf.testGroups) {
      for (const t of group.tests) {
        if (t.result === "invalid") {
          // The only invalid cases ask for more than 255 * 32 bytes: both providers must refuse.
          assert.throws(() => provider.hkdfSha256(fromHex(t.ikm), fromHex(t.salt), fromHex(t.info), t.size));
        } else {
          const okm = provider.hkdfSha256(fromHex(t.ikm), fromHex(t.salt), fromHex(t.info), t.size);
          assert.equal(toHex(okm), t.okm, `tcId ${t.tcId}`);
        }
        checked++;
      }
    }
    assert.ok(checked >= 80);
  });

  it("HMAC-SHA256 (full and truncated tags)", () => {
    let checked = 0;
    for (const group of hmac.testGroups) {
      const tagBytes = group.tagSize / 8;
      for (const t of group.tests) {
        const tag = provider.hmacSha256(fromHex(t.key), fromHex(t.msg)).slice(0, tagBytes);
        assert.equal(constantTimeEqual(tag, fromHex(t.tag)), t.result === "valid", `tcId ${t.tcId}`);
        checked++;
      }
    }
    assert.equal(checked, 174);
  });

  it("AES-256-CBC-PKCS5: valid decrypt and encrypt, invalid padding rejected with BAD_PADDING", () => {
    let checked = 0;
    for (const group of cbc.testGroups) {
      if (group.keySize !== 256) continue;
      for (const t of group.tests) {
        const key = fromHex(t.key);
        const iv = fromHex(t.iv);
        if (t.result === "valid") {
          assert.equal(toHex(provider.aes256CbcEncrypt(key, iv, fromHex(t.msg))), t.ct, `tcId ${t.tcId}`);
          assert.equal(toHex(provider.aes256CbcDecrypt(key, iv, fromHex(t.ct))), t.msg, `tcId ${t.tcId}`);
        } else {
          assert.throws(
            () => provider.aes256CbcDecrypt(key, iv, fromHex(t.ct)),
            (e) => isSignalError(e, "BAD_PADDING"),
            `tcId ${t.tcId}`,
          );
        }
        checked++;
      }
    }
    assert.equal(checked, 72);
  });

  it("X25519: valid and acceptable computed exactly; all-zero results refused with INVALID_KEY", () => {
    let zero = 0;
    for (const t of x25519.testGroups[0]!.tests) {
      const compute = () => provider.x25519(fromHex(t.private), fromHex(t.public));
      if (t.shared === "00".repeat(32)) {
        // Low-order public keys: libsignal would return zeros; both our providers refuse instead.
        assert.throws(compute, (e) => isSignalError(e, "INVALID_KEY"), `tcId ${t.tcId}`);
        zero++;
      } else {
        assert.equal(toHex(compute()), t.shared, `tcId ${t.tcId}`);
      }
    }
    assert.ok(zero > 0);
  });
});

describeEachProvider("provider basics", (provider) => {
  it("randomBytes returns plain Uint8Arrays of the right length", () => {
    const r = provider.randomBytes(48);
    assert.equal(r.length, 48);
    assert.equal(Object.getPrototypeOf(r), Uint8Array.prototype);
  });
  it("sha512 and hmac hash the concatenation of their parts", () => {
    const a = utf8("hello ");
    const b = utf8("world");
    assert.deepEqual(provider.sha512(a, b), provider.sha512(concatBytes(a, b)));
    assert.deepEqual(provider.hmacSha256(a, a, b), provider.hmacSha256(a, concatBytes(a, b)));
    assert.equal(
      toHex(provider.sha256(utf8("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });
  it("empty or undefined HKDF salt means 32 zero bytes", () => {
    const ikm = utf8("ikm");
    const expected = provider.hkdfSha256(ikm, new Uint8Array(32), utf8("info"), 40);
    assert.deepEqual(provider.hkdfSha256(ikm, undefined, utf8("info"), 40), expected);
    assert.deepEqual(provider.hkdfSha256(ikm, new Uint8Array(0), utf8("info"), 40), expected);
  });
  it("key pairs agree and public keys derive consistently", () => {
    const a = provider.x25519GenerateKeyPair();
    const b = provider.x25519GenerateKeyPair();
    assert.deepEqual(provider.x25519PublicKey(a.privateKey), a.publicKey);
    assert.deepEqual(provider.x25519(a.privateKey, b.publicKey), provider.x25519(b.privateKey, a.publicKey));
  });
  it("wrong key, IV and ciphertext sizes are typed errors", () => {
    assert.throws(
      () => provider.x25519(new Uint8Array(31), new Uint8Array(32)),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
    assert.throws(
      () => provider.aes256CbcEncrypt(new Uint8Array(16), new Uint8Array(16), new Uint8Array(1)),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
    assert.throws(
      () => provider.aes256CbcDecrypt(new Uint8Array(32), new Uint8Array(16), new Uint8Array(15)),
      (e) => isSignalError(e, "BAD_PADDING"),
    );
    assert.throws(
      () => provider.aes256CbcDecrypt(new Uint8Array(32), new Uint8Array(16), new Uint8Array(0)),
      (e) => isSignalError(e, "BAD_PADDING"),
    );
  });
});

describe("providers agree", () => {
  it("node and noble give identical bytes for every primitive", () => {
    for (let i = 0; i < 20; i++) {
      const key = nobleCrypto.randomBytes(32);
      const data = nobleCrypto.randomBytes(i * 7);
      const iv = nobleCrypto.randomBytes(16);
      assert.deepEqual(nodeCrypto.hmacSha256(key, data), nobleCrypto.hmacSha256(key, data));
      assert.deepEqual(nodeCrypto.sha512(data, key), nobleCrypto.sha512(data, key));
      assert.deepEqual(nodeCrypto.hkdfSha256(data, key, iv, 80), nobleCrypto.hkdfSha256(data, key, iv, 80));
      assert.deepEqual(nodeCrypto.aes256CbcEncrypt(key, iv, data), nobleCrypto.aes256CbcEncrypt(key, iv, data));
      assert.deepEqual(nodeCrypto.x25519PublicKey(key), nobleCrypto.x25519PublicKey(key));
    }
  });
  it("node provider derives the public key from d alone (the JWK x placeholder is ignored)", () => {
    // Guards the PLACEHOLDER_X shortcut in node.node.ts against a Node/OpenSSL behaviour change.
    for (let i = 0; i < 5; i++) {
      const priv = nobleCrypto.randomBytes(32);
      assert.deepEqual(nodeCrypto.x25519PublicKey(priv), nobleCrypto.x25519PublicKey(priv));
    }
  });
  it("node provider's KeyObject cache stays correct past its bound", () => {
    const peer = nobleCrypto.x25519GenerateKeyPair();
    for (let i = 0; i < 300; i++) {
      const mine = nobleCrypto.randomBytes(32);
      assert.deepEqual(nodeCrypto.x25519(mine, peer.publicKey), nobleCrypto.x25519(mine, peer.publicKey));
    }
  });
  it("node provider's HKDF (HMAC-based up to 64 bytes, hkdfSync beyond) equals noble's for every length", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 80 }),
        fc.option(fc.uint8Array({ maxLength: 80 }), { nil: undefined }),
        fc.uint8Array({ maxLength: 40 }),
        fc.nat({ max: 200 }),
        (ikm, salt, info, length) => {
          const okm = nodeCrypto.hkdfSha256(ikm, salt, info, length);
          assert.equal(okm.length, length);
          assert.deepEqual(okm, nobleCrypto.hkdfSha256(ikm, salt, info, length));
        },
      ),
      { numRuns: 200 },
    );
    assert.throws(
      () => nodeCrypto.hkdfSha256(new Uint8Array(32), undefined, new Uint8Array(0), 255 * 32 + 1),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
  });
});
