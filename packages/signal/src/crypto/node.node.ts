// Node-only CryptoProvider on node:crypto (OpenSSL): 10-30x faster curve ops
// than pure JS. Raw X25519 keys are imported as JWK, never DER/PKCS8 (which
// measured ~10x slower to import), and the resulting KeyObjects are cached
// in small bounded maps keyed by the key bytes: a ratchet reuses the same
// identity / signed-prekey / ratchet private key many times in a row.

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
  randomBytes,
  verify,
} from "node:crypto";
import { SignalError } from "../errors.ts";
import type { CryptoProvider, X25519KeyPair } from "./provider.ts";

/** Entries per cache; small enough to bound memory, large enough for a busy client's active keys. */
const KEY_CACHE_LIMIT = 256;
const ZERO_SALT = new Uint8Array(32);
const HASH_LENGTH = 32;
const MAX_HKDF_LENGTH = 255 * HASH_LENGTH;
const HKDF_COUNTERS = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));
// Node requires an `x` member in a private OKP JWK but derives the public key
// from `d` alone (checked by a test), so a placeholder avoids computing it twice.
const PLACEHOLDER_X = Buffer.alloc(32).toString("base64url");

/** Copy a Buffer into a plain Uint8Array so callers never see pooled memory or Buffer semantics. */
function plain(buffer: Buffer | ArrayBuffer): Uint8Array {
  return buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer);
}

function requireLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new SignalError("INVALID_KEY", `${what} must be ${length} bytes`);
  }
}

class BoundedKeyCache {
  private readonly entries = new Map<string, KeyObject>();
  constructor(private readonly limit: number) {}

  getOrCreate(bytes: Uint8Array, create: (b64: string) => KeyObject): KeyObject {
    const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64url");
    const hit = this.entries.get(b64);
    if (hit !== undefined) {
      // Refresh recency: Map iteration order is insertion order, so re-insert.
      this.entries.delete(b64);
      this.entries.set(b64, hit);
      return hit;
    }
    const key = create(b64);
    if (this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(b64, key);
    return key;
  }
}

const privateKeys = new BoundedKeyCache(KEY_CACHE_LIMIT);
const publicKeys = new BoundedKeyCache(KEY_CACHE_LIMIT);
const ed25519PublicKeys = new BoundedKeyCache(KEY_CACHE_LIMIT);

function importPrivate(privateKey: Uint8Array): KeyObject {
  requireLength(privateKey, 32, "X25519 private key");
  return privateKeys.getOrCreate(privateKey, (d) =>
    createPrivateKey({ key: { kty: "OKP", crv: "X25519", d, x: PLACEHOLDER_X }, format: "jwk" }),
  );
}

function importPublic(publicKey: Uint8Array): KeyObject {
  requireLength(publicKey, 32, "X25519 public key");
  return publicKeys.getOrCreate(publicKey, (x) =>
    createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" }),
  );
}

function importEd25519Public(publicKey: Uint8Array): KeyObject {
  return ed25519PublicKeys.getOrCreate(publicKey, (x) =>
    createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" }),
  );
}

function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  const jwk = createPublicKey(importPrivate(privateKey)).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new SignalError("INVALID_KEY", "cannot derive X25519 public key");
  return plain(Buffer.from(jwk.x, "base64url"));
}

export const nodeCrypto: CryptoProvider = {
  name: "node",
  randomBytes: (length) => plain(randomBytes(length)),
  sha256: (data) => plain(createHash("sha256").update(data).digest()),
  sha512(...parts) {
    const h = createHash("sha512");
    for (const p of parts) h.update(p);
    return plain(h.digest());
  },
  hmacSha256(key, ...parts) {
    const h = createHmac("sha256", key);
    for (const p of parts) h.update(p);
    return plain(h.digest());
  },
  hkdfSha256(ikm, salt, info, length) {
    if (!Number.isInteger(length) || length < 0 || length > MAX_HKDF_LENGTH) {
      throw new SignalError("INVALID_KEY", `HKDF output length must be 0..${MAX_HKDF_LENGTH}`);
    }
    const saltOrZero = salt === undefined || salt.length === 0 ? ZERO_SALT : salt;
    // hkdfSync has a fixed cost of ~4 HMAC calls (it builds a secret KeyObject
    // and a crypto job per call). For outputs of up to 2 blocks (the ratchet's
    // 64-byte root-key step) RFC 5869 as 3 plain HMAC calls is ~30% cheaper;
    // from 3 blocks on (the 80-byte message keys) they cost the same.
    if (length > 2 * HASH_LENGTH) return plain(hkdfSync("sha256", ikm, saltOrZero, info, length));
    const prk = createHmac("sha256", saltOrZero).update(ikm).digest();
    const blocks = Math.ceil(length / HASH_LENGTH);
    const okm = new Uint8Array(blocks * HASH_LENGTH);
    let previous: Buffer | undefined;
    for (let i = 1; i <= blocks; i++) {
      const h = createHmac("sha256", prk);
      if (previous !== undefined) h.update(previous);
      previous = h
        .update(info)
        .update(HKDF_COUNTERS[i] as Uint8Array)
        .digest();
      okm.set(previous, (i - 1) * HASH_LENGTH);
    }
    prk.fill(0);
    return blocks * HASH_LENGTH === length ? okm : okm.slice(0, length);
  },
  aes256CbcEncrypt(key, iv, plaintext) {
    requireLength(key, 32, "AES-256 key");
    requireLength(iv, 16, "AES-CBC IV");
    const cipher = createCipheriv("aes-256-cbc", key, iv);
    return plain(Buffer.concat([cipher.update(plaintext), cipher.final()]));
  },
  aes256CbcDecrypt(key, iv, ciphertext) {
    requireLength(key, 32, "AES-256 key");
    requireLength(iv, 16, "AES-CBC IV");
    if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) {
      throw new SignalError("BAD_PADDING", "AES-CBC ciphertext length is not a positive multiple of 16");
    }
    try {
      const decipher = createDecipheriv("aes-256-cbc", key, iv);
      return plain(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
    } catch {
      throw new SignalError("BAD_PADDING", "AES-CBC padding is invalid");
    }
  },
  x25519GenerateKeyPair(): X25519KeyPair {
    const privateKey = plain(randomBytes(32));
    return { privateKey, publicKey: x25519PublicKey(privateKey) };
  },
  x25519PublicKey,
  x25519(privateKey, publicKey) {
    const priv = importPrivate(privateKey);
    const pub = importPublic(publicKey);
    try {
      // OpenSSL refuses an all-zero result (low-order public key) by throwing.
      return plain(diffieHellman({ privateKey: priv, publicKey: pub }));
    } catch {
      throw new SignalError("INVALID_KEY", "X25519 produced the all-zero shared secret (low-order public key)");
    }
  },
  ed25519Verify(publicKey, message, signature) {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
    if (!(message instanceof Uint8Array)) return false;
    try {
      // OpenSSL: rejects s >= q and undecodable A, then compares encode([s]B - [h]A) with R byte for byte.
      return verify(null, message, importEd25519Public(publicKey), signature);
    } catch {
      return false;
    }
  },
};
