import assert from "node:assert/strict";
import { it } from "node:test";
import { fromHex, toHex } from "../src/crypto/index.ts";
import { isSignalError } from "../src/errors.ts";
import {
  decodeKemCiphertext,
  decodeKemPublicKey,
  decodeKemSecretKey,
  encodeKemCiphertext,
  encodeKemPublicKey,
  encodeKemSecretKey,
  KEM_TYPE_MLKEM1024,
  kemDecapsulate,
  kemEncapsulate,
  kemGenerateKeyPair,
} from "../src/kem/index.ts";
import { describeEachProvider, loadWycheproof, type WycheproofFile } from "./fixtures/primitives/helpers.ts";

type MlKemTest = {
  tcId: number;
  seed: string;
  ek?: string;
  c: string;
  K: string;
  result: "valid" | "invalid";
  comment?: string;
};
const vectors = loadWycheproof<WycheproofFile<MlKemTest>>("mlkem_1024_test.json");
const allTests = vectors.testGroups.flatMap((g) => g.tests);

describeEachProvider("ML-KEM-1024", () => {
  it("Wycheproof: keygen from seed, decapsulation (incl. implicit rejection) and size errors", () => {
    let valid = 0;
    let invalid = 0;
    for (const t of allTests) {
      const run = () => {
        const kp = kemGenerateKeyPair(fromHex(t.seed));
        if (t.ek !== undefined) assert.equal(toHex(kp.publicKey), t.ek, `tcId ${t.tcId} ek`);
        return kemDecapsulate(kp.secretKey, fromHex(t.c));
      };
      if (t.result === "valid") {
        assert.equal(toHex(run()), t.K, `tcId ${t.tcId}`);
        valid++;
      } else {
        assert.throws(
          run,
          (e) => isSignalError(e, "INVALID_KEY") || isSignalError(e, "INVALID_MESSAGE"),
          `tcId ${t.tcId}`,
        );
        invalid++;
      }
    }
    assert.equal(valid, 153);
    assert.equal(invalid, 40);
  });

  it("encapsulate/decapsulate round trip; decapsulation leaves the secret key intact", () => {
    const kp = kemGenerateKeyPair();
    const secretCopy = kp.secretKey.slice();
    const { ciphertext, sharedSecret } = kemEncapsulate(kp.publicKey);
    assert.equal(ciphertext.length, 1568);
    assert.equal(sharedSecret.length, 32);
    assert.deepEqual(kemDecapsulate(kp.secretKey, ciphertext), sharedSecret);
    assert.deepEqual(kp.secretKey, secretCopy);
  });

  it("serialization with libsignal's type byte: keys and ciphertexts", () => {
    const kp = kemGenerateKeyPair();
    const pk = encodeKemPublicKey(kp.publicKey);
    assert.equal(pk.length, 1569);
    assert.equal(pk[0], KEM_TYPE_MLKEM1024);
    assert.deepEqual(decodeKemPublicKey(pk), kp.publicKey);
    assert.deepEqual(decodeKemSecretKey(encodeKemSecretKey(kp.secretKey)), kp.secretKey);
    const { ciphertext } = kemEncapsulate(kp.publicKey);
    const ct = encodeKemCiphertext(ciphertext);
    assert.equal(ct[0], 0x0a);
    assert.deepEqual(decodeKemCiphertext(ct), ciphertext);

    const kyber = pk.slice();
    kyber[0] = 0x08;
    assert.throws(
      () => decodeKemPublicKey(kyber),
      (e) => isSignalError(e, "INVALID_KEY") && /Kyber1024/.test(e.message),
    );
    assert.throws(
      () => decodeKemPublicKey(pk.subarray(0, 1568)),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
    assert.throws(
      () => decodeKemPublicKey(new Uint8Array(0)),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
    assert.throws(
      () => decodeKemCiphertext(ct.subarray(1)),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
    assert.throws(
      () => kemEncapsulate(new Uint8Array(1567)),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
  });

  it("an encapsulation key failing the FIPS 203 modulus check is refused", () => {
    const bad = new Uint8Array(1568).fill(0xff); // 12-bit coefficients of 4095 >= q
    assert.throws(
      () => kemEncapsulate(bad),
      (e) => isSignalError(e, "INVALID_KEY"),
    );
  });
});
