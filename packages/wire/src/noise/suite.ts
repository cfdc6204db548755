/**
 * The primitives Noise needs (DH 25519, SHA-256, HMAC-SHA-256, an AEAD), behind one interface so the
 * same handshake and record code runs on node:crypto in Node (suite.node.ts) and on @noble/* in
 * browsers (suite-noble.ts) without the browser build ever loading node:crypto.
 */

/** Noise cipher names, as they appear in protocol names. */
export type NoiseCipherName = "AESGCM" | "ChaChaPoly";

/** A raw X25519 key pair. */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/**
 * An AEAD bound to one 32-byte key. The 64-bit Noise nonce is passed as two u32 halves so it stays
 * exact without BigInt on the hot path; each cipher builds its own 96-bit nonce layout.
 */
export interface BoundAead {
  /** Returns ciphertext ‖ 16-byte tag, preceded by `headroom` unwritten bytes (default 0). */
  seal(nonceHigh: number, nonceLow: number, ad: Uint8Array, plaintext: Uint8Array, headroom?: number): Uint8Array;
  /** Returns the plaintext, or null when authentication fails. */
  open(nonceHigh: number, nonceLow: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | null;
  /** The key (a copy), to move the cipher state to another process (connection handoff). */
  exportKey(): Uint8Array;
}

export interface NoiseCryptoSuite {
  /** "node" or "noble": for diagnostics and benchmarks. */
  readonly name: string;
  generateKeyPair(): KeyPair;
  /** Public key of a raw private key. */
  publicKeyOf(privateKey: Uint8Array): Uint8Array;
  /** X25519(privateKey, publicKey); throws on an all-zero (low-order) result. */
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array;
  sha256(data: Uint8Array): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * Noise's HKDF(chainingKey, ikm, 2): two 32-byte outputs. It is RFC 5869 HKDF-SHA-256 with salt =
   * chaining key and empty info, so suites may use a native HKDF.
   */
  hkdf2(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array): [Uint8Array, Uint8Array];
  aead(cipher: NoiseCipherName, key: Uint8Array): BoundAead;
  randomBytes(length: number): Uint8Array;
}

export const DH_LEN = 32;
export const HASH_LEN = 32;
export const TAG_LEN = 16;
export const KEY_LEN = 32;
/** Noise messages (handshake and transport) are at most this long. */
export const MAX_NOISE_MESSAGE = 65_535;

/** Writes the 96-bit AEAD nonce for Noise nonce n = high·2^32 + low into `out` (12 bytes). */
export function writeNonce(cipher: NoiseCipherName, out: Uint8Array, high: number, low: number): void {
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  if (cipher === "AESGCM") {
    // big-endian u64
    out[4] = high >>> 24;
    out[5] = (high >>> 16) & 0xff;
    out[6] = (high >>> 8) & 0xff;
    out[7] = high & 0xff;
    out[8] = low >>> 24;
    out[9] = (low >>> 16) & 0xff;
    out[10] = (low >>> 8) & 0xff;
    out[11] = low & 0xff;
  } else {
    // little-endian u64
    out[4] = low & 0xff;
    out[5] = (low >>> 8) & 0xff;
    out[6] = (low >>> 16) & 0xff;
    out[7] = low >>> 24;
    out[8] = high & 0xff;
    out[9] = (high >>> 8) & 0xff;
    out[10] = (high >>> 16) & 0xff;
    out[11] = high >>> 24;
  }
}

export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
