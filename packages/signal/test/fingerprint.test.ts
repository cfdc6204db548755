import assert from "node:assert/strict";
import { it } from "node:test";
import { fromHex, toHex, utf8 } from "../src/crypto/index.ts";
import { encodePublicKey, generateKeyPair } from "../src/curve/index.ts";
import { isSignalError } from "../src/errors.ts";
import { compareScannable, createFingerprint } from "../src/fingerprint/index.ts";
import { describeEachProvider } from "./fixtures/primitives/helpers.ts";
import { FINGERPRINT as V } from "./fixtures/primitives/libsignal-vectors.ts";

const aliceId = utf8(V.aliceStableId);
const bobId = utf8(V.bobStableId);
const aliceKey = fromHex(V.aliceIdentity);
const bobKey = fromHex(V.bobIdentity);

describeEachProvider("fingerprints", () => {
  it("libsignal vectors, scannable versions 1 and 2 (fingerprint.rs)", () => {
    for (const [version, aliceHex, bobHex] of [
      [1, V.aliceScannableV1, V.bobScannableV1],
      [2, V.aliceScannableV2, V.bobScannableV2],
    ] as const) {
      const a = createFingerprint(aliceId, aliceKey, bobId, bobKey, { version });
      const b = createFingerprint(bobId, bobKey, aliceId, aliceKey, { version });
      assert.equal(a.displayable, V.displayable);
      assert.equal(b.displayable, V.displayable);
      assert.equal(toHex(a.scannable), aliceHex);
      assert.equal(toHex(b.scannable), bobHex);
      assert.equal(compareScannable(a.scannable, b.scannable), true);
      assert.equal(compareScannable(a.scannable, a.scannable), false);
    }
    assert.equal(toHex(createFingerprint(aliceId, aliceKey, bobId, bobKey).scannable), V.aliceScannableV2);
  });

  it("a man in the middle or a wrong id changes both forms", () => {
    const mitm = encodePublicKey(generateKeyPair().publicKey);
    const opts = { iterations: 1024 };
    const a = createFingerprint(aliceId, aliceKey, bobId, mitm, opts);
    const b = createFingerprint(bobId, bobKey, aliceId, aliceKey, opts);
    assert.notEqual(a.displayable, b.displayable);
    assert.equal(compareScannable(a.scannable, b.scannable), false);
    const c = createFingerprint(utf8("+141512222222"), aliceKey, bobId, bobKey, opts);
    assert.equal(compareScannable(c.scannable, b.scannable), false);
  });

  it("version mismatch is UNSUPPORTED_VERSION; malformed input INVALID_MESSAGE", () => {
    const v1 = createFingerprint(aliceId, aliceKey, bobId, bobKey, { version: 1 });
    const v2 = createFingerprint(bobId, bobKey, aliceId, aliceKey, { version: 2 });
    assert.throws(
      () => compareScannable(v1.scannable, v2.scannable),
      (e) => isSignalError(e, "UNSUPPORTED_VERSION"),
    );
    assert.throws(
      () => compareScannable(v1.scannable, Uint8Array.of(0x08, 0x01)),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
    assert.throws(
      () => compareScannable(v1.scannable, Uint8Array.of(0xff)),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
    assert.throws(
      () => createFingerprint(aliceId, aliceKey.subarray(1), bobId, bobKey),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
  });
});
