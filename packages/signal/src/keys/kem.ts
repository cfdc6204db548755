// The KEM prekeys of PQXDH, under the two type bytes in use:
//   0x0a  ML-KEM-1024 (FIPS 203): what Parley publishes by default.
//   0x08  Kyber1024 (round-3 "pre-standard" Kyber): what libsignal 0.103 publishes
//         and the only type it accepts (it rejects 0x0a keys: "bad KEM key type").
//
// Kyber1024 and ML-KEM-1024 share the same K-PKE scheme, key format and sizes
// (pk 1568, sk 3168, ct 1568, ss 32); they differ only in the hashing around it:
//   keygen   Kyber (ρ,σ) = G(d)        ML-KEM (ρ,σ) = G(d ‖ k)   -> any key pair is valid for both
//   encaps   Kyber m = H(random)        ML-KEM m = random
//            Kyber K = KDF(K̄ ‖ H(c))   ML-KEM K = K̄            (K̄ from (K̄, r) = G(m ‖ H(pk)) in both)
//   decaps   same re-encryption check; Kyber rejects with KDF(z ‖ H(c)), ML-KEM with J(z ‖ c)
// with H = SHA3-256, KDF = SHAKE-256 (pq-crystals round-3 spec §1.3). So Kyber1024
// is computed here with noble's audited ML-KEM-1024 plus those two outer steps:
// encapsulate to ML-KEM with m = H(random), then K = SHAKE-256(K̄ ‖ SHA3-256(c)).
// The one divergence: on an INVALID ciphertext our implicit-rejection value is
// KDF(J(z‖c) ‖ H(c)) instead of KDF(z ‖ H(c)); both are pseudorandom secrets
// unknown to the sender, so the session's first MAC check fails either way.

import { sha3_256, shake256 } from "@noble/hashes/sha3.js";
import { ml_kem1024 } from "@noble/post-quantum/ml-kem.js";
import { concatBytes } from "../crypto/bytes.ts";
import { getCrypto } from "../crypto/index.ts";
import { SignalError } from "../errors.ts";
import { KEM_TYPE_KYBER1024, KEM_TYPE_MLKEM1024 } from "../kem/index.ts";

export { KEM_TYPE_KYBER1024, KEM_TYPE_MLKEM1024 };

export type KemType = typeof KEM_TYPE_KYBER1024 | typeof KEM_TYPE_MLKEM1024;

const KEM_PUBLIC_KEY_LENGTH = 1568;
const KEM_CIPHERTEXT_LENGTH = 1568;

export interface KemPreKeyPair {
  type: KemType;
  /** Raw public key (no type byte). */
  publicKey: Uint8Array;
  /** Raw secret key (no type byte). */
  secretKey: Uint8Array;
}

function checkType(type: number): KemType {
  if (type !== KEM_TYPE_KYBER1024 && type !== KEM_TYPE_MLKEM1024) {
    throw new SignalError("INVALID_KEY", `unknown KEM key type 0x${type.toString(16)}`);
  }
  return type;
}

export function generateKemPreKeyPair(type: KemType = KEM_TYPE_MLKEM1024): KemPreKeyPair {
  // 64 bytes of seed (d ‖ z); for Kyber the result is an equally valid K-PKE key pair (see above).
  const { publicKey, secretKey } = ml_kem1024.keygen(getCrypto().randomBytes(64));
  return { type: checkType(type), publicKey, secretKey };
}

/** type byte ‖ raw public key: the form that is signed and published. */
export function serializeKemPublicKey(type: KemType, raw: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + raw.length);
  out[0] = type;
  out.set(raw, 1);
  return out;
}

export function deserializeKemPublicKey(serialized: Uint8Array): { type: KemType; publicKey: Uint8Array } {
  if (!(serialized instanceof Uint8Array) || serialized.length === 0) {
    throw new SignalError("INVALID_KEY", "empty KEM public key");
  }
  const type = checkType(serialized[0] as number);
  if (serialized.length !== 1 + KEM_PUBLIC_KEY_LENGTH) {
    throw new SignalError("INVALID_KEY", `KEM public key must be ${1 + KEM_PUBLIC_KEY_LENGTH} bytes`);
  }
  return { type, publicKey: serialized.slice(1) };
}

/** Encapsulate to a serialized public key; the ciphertext comes back serialized (type byte ‖ ct). */
export function kemPreKeyEncapsulate(serializedPublicKey: Uint8Array): {
  ciphertext: Uint8Array;
  sharedSecret: Uint8Array;
} {
  const { type, publicKey } = deserializeKemPublicKey(serializedPublicKey);
  let result: { cipherText: Uint8Array; sharedSecret: Uint8Array };
  try {
    if (type === KEM_TYPE_MLKEM1024) {
      result = ml_kem1024.encapsulate(publicKey, getCrypto().randomBytes(32));
    } else {
      const m = sha3_256(getCrypto().randomBytes(32));
      const inner = ml_kem1024.encapsulate(publicKey, m);
      const sharedSecret = shake256(concatBytes(inner.sharedSecret, sha3_256(inner.cipherText)), { dkLen: 32 });
      result = { cipherText: inner.cipherText, sharedSecret };
    }
  } catch (e) {
    if (e instanceof SignalError) throw e;
    throw new SignalError("INVALID_KEY", "KEM public key rejected");
  }
  const ciphertext = new Uint8Array(1 + result.cipherText.length);
  ciphertext[0] = type;
  ciphertext.set(result.cipherText, 1);
  return { ciphertext, sharedSecret: result.sharedSecret };
}

/** Decapsulate a serialized ciphertext; its type byte must match the key pair's. */
export function kemPreKeyDecapsulate(keyPair: KemPreKeyPair, serializedCiphertext: Uint8Array): Uint8Array {
  if (!(serializedCiphertext instanceof Uint8Array) || serializedCiphertext.length !== 1 + KEM_CIPHERTEXT_LENGTH) {
    throw new SignalError("INVALID_MESSAGE", `KEM ciphertext must be ${1 + KEM_CIPHERTEXT_LENGTH} bytes`);
  }
  if (serializedCiphertext[0] !== keyPair.type) {
    throw new SignalError("INVALID_MESSAGE", "KEM ciphertext type does not match the prekey's type");
  }
  const ct = serializedCiphertext.subarray(1);
  let inner: Uint8Array;
  try {
    inner = ml_kem1024.decapsulate(ct, keyPair.secretKey);
  } catch {
    throw new SignalError("INVALID_KEY", "KEM secret key rejected");
  }
  if (keyPair.type === KEM_TYPE_MLKEM1024) return inner;
  return shake256(concatBytes(inner, sha3_256(ct)), { dkLen: 32 });
}
