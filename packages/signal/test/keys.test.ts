import assert from "node:assert/strict";
import { it } from "node:test";
import { encodePublicKey, xeddsaVerify } from "../src/curve/index.ts";
import {
  decodePreKeyBundle,
  decodePreKeyUpload,
  encodePreKeyBundle,
  encodePreKeyUpload,
  publicKyberPreKey,
  publicPreKey,
  publicSignedPreKey,
} from "../src/keys/bundle.ts";
import { generateIdentityKeyPair, generateRegistrationId, identityPublicKey } from "../src/keys/identity.ts";
import {
  KEM_TYPE_KYBER1024,
  kemPreKeyDecapsulate,
  kemPreKeyEncapsulate,
  serializeKemPublicKey,
} from "../src/keys/kem.ts";
import {
  generateKyberPreKey,
  generateKyberPreKeys,
  generatePreKeys,
  generateSignedPreKey,
} from "../src/keys/prekeys.ts";
import {
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSignedPreKeyRecord,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSignedPreKeyRecord,
} from "../src/keys/records.ts";
import { describeEachProvider } from "./fixtures/sessions/helpers.ts";

describeEachProvider("keys", () => {
  it("registration ids are in 1..16380", () => {
    for (let i = 0; i < 200; i++) {
      const id = generateRegistrationId();
      assert.ok(id >= 1 && id <= 16380);
    }
  });

  it("signed prekeys sign the 33-byte key; KEM prekeys sign type byte ‖ key", () => {
    const identity = generateIdentityKeyPair();
    const signed = generateSignedPreKey(identity, 7);
    assert.ok(xeddsaVerify(identity.publicKey, encodePublicKey(signed.keyPair.publicKey), signed.signature));
    const kem = generateKyberPreKey(identity, 8, { lastResort: true });
    assert.equal(kem.keyPair.type, 0x0a);
    assert.ok(
      xeddsaVerify(identity.publicKey, serializeKemPublicKey(kem.keyPair.type, kem.keyPair.publicKey), kem.signature),
    );
    assert.equal(kem.lastResort, true);
  });

  it("prekey batches have consecutive ids wrapping within 24 bits", () => {
    const batch = generatePreKeys(0xfffffe, 4);
    assert.deepEqual(
      batch.map((k) => k.id),
      [0xfffffe, 0xffffff, 1, 2],
    );
    assert.equal(new Set(batch.map((k) => encodePublicKey(k.keyPair.publicKey).join())).size, 4);
  });

  it("KEM encapsulation round-trips for both key types", () => {
    const identity = generateIdentityKeyPair();
    for (const record of [
      generateKyberPreKey(identity, 1),
      generateKyberPreKey(identity, 2, { type: KEM_TYPE_KYBER1024 }),
    ]) {
      const { ciphertext, sharedSecret } = kemPreKeyEncapsulate(
        serializeKemPublicKey(record.keyPair.type, record.keyPair.publicKey),
      );
      assert.equal(ciphertext.length, 1569);
      assert.equal(ciphertext[0], record.keyPair.type);
      assert.deepEqual(kemPreKeyDecapsulate(record.keyPair, ciphertext), sharedSecret);
      const wrongType = ciphertext.slice();
      wrongType[0] = record.keyPair.type === 0x0a ? 0x08 : 0x0a;
      assert.throws(() => kemPreKeyDecapsulate(record.keyPair, wrongType), { code: "INVALID_MESSAGE" });
    }
  });

  it("bundles and uploads round-trip through their byte encodings; garbage is typed", () => {
    const identity = generateIdentityKeyPair();
    const signed = generateSignedPreKey(identity, 3);
    const [pre] = generatePreKeys(10, 1);
    const kem = generateKyberPreKey(identity, 11);
    const bundle = {
      registrationId: 1234,
      deviceId: 2,
      identityKey: identityPublicKey(identity),
      signedPreKey: publicSignedPreKey(signed),
      preKey: publicPreKey(pre!),
      kyberPreKey: publicKyberPreKey(kem),
    };
    assert.deepEqual(decodePreKeyBundle(encodePreKeyBundle(bundle)), bundle);
    const minimal = { ...bundle, preKey: undefined, kyberPreKey: undefined };
    assert.deepEqual(decodePreKeyBundle(encodePreKeyBundle(minimal)), minimal);
    const upload = {
      registrationId: 99,
      identityKey: identityPublicKey(identity),
      signedPreKey: publicSignedPreKey(signed),
      lastResortKyberPreKey: publicKyberPreKey(generateKyberPreKey(identity, 50, { lastResort: true })),
      preKeys: generatePreKeys(1, 5).map(publicPreKey),
      kyberPreKeys: generateKyberPreKeys(identity, 1, 2).map(publicKyberPreKey),
    };
    assert.deepEqual(decodePreKeyUpload(encodePreKeyUpload(upload)), upload);
    const bytes = encodePreKeyBundle(bundle);
    for (const bad of [bytes.subarray(0, 50), new Uint8Array([2]), Uint8Array.from([...bytes, 0])]) {
      assert.throws(() => decodePreKeyBundle(bad), { code: "INVALID_MESSAGE" });
    }
    assert.throws(() => decodePreKeyUpload(new Uint8Array([1, 0, 0])), { code: "INVALID_MESSAGE" });
  });

  it("private prekey records round-trip; corrupt ones are INVALID_RECORD", () => {
    const identity = generateIdentityKeyPair();
    const [pre] = generatePreKeys(5, 1);
    assert.deepEqual(deserializePreKeyRecord(serializePreKeyRecord(pre!)), pre);
    const signed = generateSignedPreKey(identity, 6, 1_700_000_000_000);
    assert.deepEqual(deserializeSignedPreKeyRecord(serializeSignedPreKeyRecord(signed)), signed);
    const kem = generateKyberPreKey(identity, 7, { lastResort: true, type: KEM_TYPE_KYBER1024 });
    assert.deepEqual(deserializeKyberPreKeyRecord(serializeKyberPreKeyRecord(kem)), kem);
    assert.throws(() => deserializeKyberPreKeyRecord(serializeKyberPreKeyRecord(kem).subarray(0, 100)), {
      code: "INVALID_RECORD",
    });
  });
});
