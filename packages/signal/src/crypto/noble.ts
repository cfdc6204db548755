// Pure-JS CryptoProvider on @noble/* (audited, constant-time where it matters).
// This is the browser path and the default; node.node.ts is the fast Node path.
// Both must give identical bytes (the test suite runs on both).

import { cbc } from "@noble/ciphers/aes.js";
import { x25519 as nobleX25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { SignalError } from "../errors.ts";
import type { CryptoProvider, X25519KeyPair } from "./provider.ts";

const ZERO_SALT = new Uint8Array(32);

function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

function requireLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new SignalError("INVALID_KEY", `${what} must be ${length} bytes`);
  }
}

function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  requireLength(privateKey, 32, "X25519 private key");
  return nobleX25519.getPublicKey(privateKey);
}

export const nobleCrypto: CryptoProvider = {
  name: "noble",
  randomBytes: (length) => randomBytes(length),
  sha256: (data) => sha256(data),
  sha512(...parts) {
    const h = sha512.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },
  hmacSha256(key, ...parts) {
    const h = hmac.create(sha256, key);
    for (const p of parts) h.update(p);
    return h.digest();
  },
  hkdfSha256(ikm, salt, info, length) {
    return hkdf(sha256, ikm, salt === undefined || salt.length === 0 ? ZERO_SALT : salt, info, length);
  },
  aes256CbcEncrypt(key, iv, plaintext) {
    requireLength(key, 32, "AES-256 key");
    requireLength(iv, 16, "AES-CBC IV");
    return cbc(key, iv).encrypt(plaintext);
  },
  aes256CbcDecrypt(key, iv, ciphertext) {
    requireLength(key, 32, "AES-256 key");
    requireLength(iv, 16, "AES-CBC IV");
    if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) {
      throw new SignalError("BAD_PADDING", "AES-CBC ciphertext length is not a positive multiple of 16");
    }
    try {
      return cbc(key, iv).decrypt(ciphertext);
    } catch {
      throw new SignalError("BAD_PADDING", "AES-CBC padding is invalid");
    }
  },
  x25519GenerateKeyPair(): X25519KeyPair {
    const privateKey = randomBytes(32);
    return { privateKey, publicKey: x25519PublicKey(privateKey) };
  },
  x25519PublicKey,
  x25519(privateKey, publicKey) {
    requireLength(privateKey, 32, "X25519 private key");
    requireLength(publicKey, 32, "X25519 public key");
    let shared: Uint8Array;
    try {
      shared = nobleX25519.getSharedSecret(privateKey, publicKey);
    } catch {
      // noble throws on an all-zero result (low-order input point).
      throw new SignalError("INVALID_KEY", "X25519 produced the all-zero shared secret (low-order public key)");
    }
    if (isAllZero(shared)) throw new SignalError("INVALID_KEY", "X25519 produced the all-zero shared secret");
    return shared;
  },
};
