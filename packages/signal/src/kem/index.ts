// ML-KEM-1024 (FIPS 203) for PQXDH, on @noble/post-quantum (pure JS, so the
// same code runs in browsers and Node; node:crypto in Node 20 has no ML-KEM).
//
// Serialization follows libsignal's rust/protocol/src/kem.rs: public keys,
// secret keys AND ciphertexts are all serialized as one key-type byte followed
// by the raw bytes (`Key::serialize`, `Ciphertext::serialize`), and
// deserialization rejects an unknown type byte or a length other than
// 1 + the raw length for that type. libsignal's type bytes: 0x08 Kyber1024
// (pre-standard, libsignal's default), 0x0A ML-KEM-1024 (feature-gated).
// Parley implements only 0x0A: the pre-standard Kyber round-3 KEM has no
// maintained JS implementation, and mixing the two silently would be unsafe.

import { ml_kem1024 } from "@noble/post-quantum/ml-kem.js";
import { getCrypto } from "../crypto/index.ts";
import { SignalError } from "../errors.ts";

export const KEM_TYPE_MLKEM1024 = 0x0a;
/** libsignal's pre-standard Kyber1024 type byte: recognised only to give a precise error. */
export const KEM_TYPE_KYBER1024 = 0x08;
export const MLKEM1024_PUBLIC_KEY_LENGTH = 1568;
export const MLKEM1024_SECRET_KEY_LENGTH = 3168;
export const MLKEM1024_CIPHERTEXT_LENGTH = 1568;
export const MLKEM1024_SHARED_SECRET_LENGTH = 32;
/** FIPS 203 key-generation seed d ‖ z. */
export const MLKEM1024_SEED_LENGTH = 64;

export type KemKeyPair = {
  /** 1568-byte raw ML-KEM-1024 encapsulation key. */
  publicKey: Uint8Array;
  /** 3168-byte raw ML-KEM-1024 decapsulation key. */
  secretKey: Uint8Array;
};

function requireBytes(value: Uint8Array, length: number, what: string, code: "INVALID_KEY" | "INVALID_MESSAGE") {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new SignalError(code, `${what} must be ${length} bytes`);
  }
}

function withType(raw: Uint8Array): Uint8Array {
  const out = new Uint8Array(raw.length + 1);
  out[0] = KEM_TYPE_MLKEM1024;
  out.set(raw, 1);
  return out;
}

function withoutType(
  serialized: Uint8Array,
  rawLength: number,
  what: string,
  code: "INVALID_KEY" | "INVALID_MESSAGE",
): Uint8Array {
  if (!(serialized instanceof Uint8Array) || serialized.length === 0) {
    throw new SignalError(code, `${what}: missing KEM type byte`);
  }
  const type = serialized[0]!;
  if (type !== KEM_TYPE_MLKEM1024) {
    const hint = type === KEM_TYPE_KYBER1024 ? " (pre-standard Kyber1024 is not supported)" : "";
    throw new SignalError(code, `${what}: unsupported KEM type 0x${type.toString(16)}${hint}`);
  }
  if (serialized.length !== rawLength + 1) {
    throw new SignalError(code, `${what}: expected ${rawLength + 1} bytes, got ${serialized.length}`);
  }
  return serialized.slice(1);
}

/** A fresh ML-KEM-1024 key pair; a 64-byte seed makes it deterministic (tests, vectors). */
export function kemGenerateKeyPair(seed?: Uint8Array): KemKeyPair {
  const keySeed = seed ?? getCrypto().randomBytes(MLKEM1024_SEED_LENGTH);
  requireBytes(keySeed, MLKEM1024_SEED_LENGTH, "ML-KEM seed", "INVALID_KEY");
  const { publicKey, secretKey } = ml_kem1024.keygen(keySeed);
  return { publicKey, secretKey };
}

export function encodeKemPublicKey(raw: Uint8Array): Uint8Array {
  requireBytes(raw, MLKEM1024_PUBLIC_KEY_LENGTH, "ML-KEM-1024 public key", "INVALID_KEY");
  return withType(raw);
}

export function decodeKemPublicKey(serialized: Uint8Array): Uint8Array {
  return withoutType(serialized, MLKEM1024_PUBLIC_KEY_LENGTH, "KEM public key", "INVALID_KEY");
}

export function encodeKemSecretKey(raw: Uint8Array): Uint8Array {
  requireBytes(raw, MLKEM1024_SECRET_KEY_LENGTH, "ML-KEM-1024 secret key", "INVALID_KEY");
  return withType(raw);
}

export function decodeKemSecretKey(serialized: Uint8Array): Uint8Array {
  return withoutType(serialized, MLKEM1024_SECRET_KEY_LENGTH, "KEM secret key", "INVALID_KEY");
}

export function encodeKemCiphertext(raw: Uint8Array): Uint8Array {
  requireBytes(raw, MLKEM1024_CIPHERTEXT_LENGTH, "ML-KEM-1024 ciphertext", "INVALID_MESSAGE");
  return withType(raw);
}

export function decodeKemCiphertext(serialized: Uint8Array): Uint8Array {
  return withoutType(serialized, MLKEM1024_CIPHERTEXT_LENGTH, "KEM ciphertext", "INVALID_MESSAGE");
}

/**
 * Encapsulate to a raw public key. FIPS 203's encapsulation-key check
 * (coefficients < q) failing throws INVALID_KEY.
 */
export function kemEncapsulate(publicKeyRaw: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
  requireBytes(publicKeyRaw, MLKEM1024_PUBLIC_KEY_LENGTH, "ML-KEM-1024 public key", "INVALID_KEY");
  try {
    const { cipherText, sharedSecret } = ml_kem1024.encapsulate(
      publicKeyRaw,
      getCrypto().randomBytes(MLKEM1024_SHARED_SECRET_LENGTH),
    );
    return { ciphertext: cipherText, sharedSecret };
  } catch {
    throw new SignalError("INVALID_KEY", "ML-KEM-1024 public key failed the FIPS 203 modulus check");
  }
}

/**
 * Decapsulate a raw ciphertext. ML-KEM decapsulation never fails on a
 * well-sized ciphertext (implicit rejection returns a pseudo-random secret);
 * only wrong sizes or a malformed secret key throw.
 */
export function kemDecapsulate(secretKey: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  requireBytes(secretKey, MLKEM1024_SECRET_KEY_LENGTH, "ML-KEM-1024 secret key", "INVALID_KEY");
  requireBytes(ciphertext, MLKEM1024_CIPHERTEXT_LENGTH, "ML-KEM-1024 ciphertext", "INVALID_MESSAGE");
  try {
    return ml_kem1024.decapsulate(ciphertext, secretKey);
  } catch {
    throw new SignalError("INVALID_KEY", "ML-KEM-1024 secret key is malformed (FIPS 203 hash check)");
  }
}
