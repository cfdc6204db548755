// Curve25519 keys as libsignal uses them: X25519 for agreement (through the
// active CryptoProvider) and XEdDSA signatures made with the same X25519 key.
//
// XEdDSA follows libsignal's rust/core/src/curve/curve25519.rs, which differs
// from the XEdDSA paper in one way: instead of forcing the Edwards public key's
// sign bit to 0 by negating the private scalar, it stores that sign bit in the
// (otherwise always zero) top bit of the signature's last byte. Signatures made
// here therefore verify in libsignal and vice versa (checked by the interop tests).

import { ed25519 } from "@noble/curves/ed25519.js";
import { type CryptoProvider, getCrypto } from "../crypto/index.ts";
import { SignalError } from "../errors.ts";

export type KeyPair = {
  /** 32-byte raw X25519 public key (u-coordinate). */
  publicKey: Uint8Array;
  /** 32-byte raw X25519 private key. */
  privateKey: Uint8Array;
};

/** libsignal's "DJB" key type byte that prefixes every serialized public key. */
export const DJB_KEY_TYPE = 0x05;
export const PUBLIC_KEY_LENGTH = 32;
export const SERIALIZED_PUBLIC_KEY_LENGTH = 33;
export const PRIVATE_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

const Point = ed25519.Point;
const P = Point.Fp.ORDER; // 2^255 - 19
const L = Point.Fn.ORDER; // group order q
const SIGN_BIT = 0x80;

function requireBytes(value: Uint8Array, length: number, what: string): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new SignalError("INVALID_KEY", `${what} must be ${length} bytes`);
  }
}

/**
 * RFC 7748 clamping, as libsignal applies it to every private key
 * (`scalar::clamp_integer`) before both agreement and signing.
 */
export function clampPrivateKey(privateKey: Uint8Array): Uint8Array {
  const clamped = Uint8Array.from(privateKey);
  clamped[0]! &= 248;
  clamped[31]! &= 127;
  clamped[31]! |= 64;
  return clamped;
}

/** A fresh key pair; the private key is stored clamped, as libsignal does. */
export function generateKeyPair(): KeyPair {
  const privateKey = clampPrivateKey(getCrypto().randomBytes(PRIVATE_KEY_LENGTH));
  return { privateKey, publicKey: getCrypto().x25519PublicKey(privateKey) };
}

export function publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array {
  requireBytes(privateKey, PRIVATE_KEY_LENGTH, "private key");
  return getCrypto().x25519PublicKey(privateKey);
}

/** 0x05 ‖ raw: libsignal's 33-byte serialized public key. */
export function encodePublicKey(raw: Uint8Array): Uint8Array {
  requireBytes(raw, PUBLIC_KEY_LENGTH, "raw public key");
  const out = new Uint8Array(SERIALIZED_PUBLIC_KEY_LENGTH);
  out[0] = DJB_KEY_TYPE;
  out.set(raw, 1);
  return out;
}

/**
 * Inverse of encodePublicKey. Strict: exactly 33 bytes with type 0x05
 * (libsignal tolerates trailing bytes after the key for legacy reasons; we do not).
 */
export function decodePublicKey(serialized: Uint8Array): Uint8Array {
  if (!(serialized instanceof Uint8Array) || serialized.length !== SERIALIZED_PUBLIC_KEY_LENGTH) {
    throw new SignalError("INVALID_KEY", `serialized public key must be ${SERIALIZED_PUBLIC_KEY_LENGTH} bytes`);
  }
  if (serialized[0] !== DJB_KEY_TYPE) {
    throw new SignalError("INVALID_KEY", `unknown public key type 0x${serialized[0]!.toString(16)}`);
  }
  return serialized.slice(1);
}

/** X25519 agreement; throws INVALID_KEY when the result is all zero (low-order peer key). */
export function agree(privateKey: Uint8Array, publicKeyRaw: Uint8Array): Uint8Array {
  requireBytes(privateKey, PRIVATE_KEY_LENGTH, "private key");
  requireBytes(publicKeyRaw, PUBLIC_KEY_LENGTH, "public key");
  return getCrypto().x25519(privateKey, publicKeyRaw);
}

function bytesToNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

function numberToBytesLE(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function modPow(base: bigint, exponent: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/** SHA-512 output read as a little-endian integer, reduced mod q (dalek's from_bytes_mod_order_wide). */
function hashToScalar(...parts: Uint8Array[]): bigint {
  return mod(bytesToNumberLE(getCrypto().sha512(...parts)), L);
}

type EdwardsPoint = InstanceType<typeof Point>;

function multiplyBase(scalar: bigint): EdwardsPoint {
  // multiply() is constant time but refuses 0; 0 only arises with negligible probability.
  return scalar === 0n ? Point.ZERO : Point.BASE.multiply(scalar);
}

/**
 * Birational map from a Montgomery u-coordinate to the Edwards point with the
 * given sign bit, as curve25519-dalek's MontgomeryPoint::to_edwards does:
 * the top bit of u is ignored, u is reduced mod p, u = -1 has no image, and
 * y = (u - 1) / (u + 1). Returns undefined when there is no such point.
 */
export function montgomeryToEdwards(u: Uint8Array, signBit: number): EdwardsPoint | undefined {
  const masked = Uint8Array.from(u);
  masked[31]! &= 0x7f;
  const uValue = mod(bytesToNumberLE(masked), P);
  if (uValue === P - 1n) return undefined;
  const y = mod((uValue - 1n) * modPow(uValue + 1n, P - 2n, P), P);
  const compressed = numberToBytesLE(y, 32);
  compressed[31]! |= signBit ? SIGN_BIT : 0;
  try {
    // zip215 = true: dalek's decompression accepts x = 0 with the sign bit set; y is canonical here anyway.
    return Point.fromBytes(compressed, true);
  } catch {
    return undefined;
  }
}

/**
 * XEdDSA signature (64 bytes) over `message` with an X25519 private key.
 * `random64` is the 64-byte nonce randomness Z (fresh random bytes unless a
 * test passes fixed ones for known answers).
 */
export function xeddsaSign(privateKey: Uint8Array, message: Uint8Array, random64?: Uint8Array): Uint8Array {
  requireBytes(privateKey, PRIVATE_KEY_LENGTH, "private key");
  const random = random64 ?? getCrypto().randomBytes(64);
  if (random.length !== 64) throw new SignalError("INVALID_KEY", "XEdDSA randomness must be 64 bytes");
  const keyData = clampPrivateKey(privateKey);
  const a = mod(bytesToNumberLE(keyData), L);
  const publicEdwards = multiplyBase(a).toBytes();
  const signBit = publicEdwards[31]! & SIGN_BIT;

  const prefix = new Uint8Array(32).fill(0xff);
  prefix[0] = 0xfe;
  const r = hashToScalar(prefix, keyData, message, random);
  const capitalR = multiplyBase(r).toBytes();
  const h = hashToScalar(capitalR, publicEdwards, message);
  const s = mod(h * a + r, L);

  const signature = new Uint8Array(SIGNATURE_LENGTH);
  signature.set(capitalR, 0);
  signature.set(numberToBytesLE(s, 32), 32);
  signature[63]! &= 0x7f;
  signature[63]! |= signBit;
  return signature;
}

/**
 * The Edwards verification equation shared by XEdDSA and the Ed25519 vector
 * tests: accepts iff encode(s·B − h·A) equals the R bytes exactly, where
 * h = SHA-512(R ‖ A ‖ M) mod q. Comparing encodings (not points) rejects
 * non-canonical R, as dalek's `compress() == R` check does.
 */
export function edwardsVerifyCore(
  publicPoint: EdwardsPoint,
  publicBytes: Uint8Array,
  rBytes: Uint8Array,
  s: bigint,
  message: Uint8Array,
): boolean {
  const h = hashToScalar(rBytes, publicBytes, message);
  const check = Point.BASE.multiplyUnsafe(mod(s, L)).subtract(publicPoint.multiplyUnsafe(h));
  return constantTimeBytesEqual(check.toBytes(), rBytes);
}

function constantTimeBytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Verify an XEdDSA signature made by libsignal (or xeddsaSign). Never throws
 * for bad input of the right types: wrong lengths, a public key with no
 * Edwards image, or s with any of its top 3 bits set (after removing the sign
 * bit) all return false, as libsignal's verify_signature does. Like libsignal,
 * s is reduced mod q rather than required to be < q.
 *
 * When the active provider has a native Ed25519 verifier (node:crypto), the
 * check runs there (~15x faster than the pure-JS path): XEdDSA verification is
 * Ed25519 verification under A = the Edwards image of the Montgomery key with
 * the sign bit taken from sig[63]. Both paths give the same answer for every
 * input (property-tested against each other in test/xeddsa-native.test.ts).
 */
export function xeddsaVerify(publicKeyRaw: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKeyRaw instanceof Uint8Array) || publicKeyRaw.length !== PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false;
  if (!(message instanceof Uint8Array)) return false;
  const provider = getCrypto();
  if (provider.ed25519Verify !== undefined) {
    const verdict = xeddsaVerifyNative(provider, publicKeyRaw, message, signature);
    if (verdict !== undefined) return verdict;
  }
  return xeddsaVerifyPure(publicKeyRaw, message, signature);
}

/**
 * The encoding of the Edwards point `montgomeryToEdwards(u, signBit)` without
 * decompressing it: y = (u - 1) / (u + 1) with the sign bit set. Returns null
 * when u = -1 (no image) and undefined for u = 0 (the image has x = 0, where
 * dalek drops the requested sign bit; left to the pure path). Whether y is on
 * the curve at all is decided by the verifier's own decoding, as in dalek.
 */
function edwardsEncodingOfMontgomery(u: Uint8Array, signBit: number): Uint8Array | null | undefined {
  const masked = Uint8Array.from(u);
  masked[31]! &= 0x7f;
  const uValue = mod(bytesToNumberLE(masked), P);
  if (uValue === P - 1n) return null;
  if (uValue === 0n) return undefined;
  const y = mod((uValue - 1n) * Point.Fp.inv(uValue + 1n), P);
  const encoded = numberToBytesLE(y, 32);
  encoded[31]! |= signBit ? SIGN_BIT : 0;
  return encoded;
}

/**
 * XEdDSA through the provider's Ed25519 verifier: same R and message, A as
 * above, and s with the sign bit removed, range-checked exactly as libsignal
 * does (top 3 bits clear) and then reduced mod q, because libsignal accepts
 * any s < 2^253 as s mod q while RFC 8032 verifiers require s < q.
 * undefined = not decidable here (caller uses the pure path).
 */
function xeddsaVerifyNative(
  provider: CryptoProvider,
  publicKeyRaw: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean | undefined {
  const signBit = (signature[63]! & SIGN_BIT) >> 7;
  const sBytes = signature.slice(32, 64);
  sBytes[31]! &= 0x7f;
  if ((sBytes[31]! & 0xe0) !== 0) return false;
  const encodedA = edwardsEncodingOfMontgomery(publicKeyRaw, signBit);
  if (encodedA === null) return false;
  if (encodedA === undefined || provider.ed25519Verify === undefined) return undefined;
  const s = bytesToNumberLE(sBytes);
  const edSignature = new Uint8Array(SIGNATURE_LENGTH);
  edSignature.set(signature.subarray(0, 32), 0);
  edSignature.set(s < L ? sBytes : numberToBytesLE(s % L, 32), 32);
  return provider.ed25519Verify(encodedA, message, edSignature);
}

/** The pure-JS XEdDSA verification (noble's Edwards arithmetic): the browser path and the reference for the native one. */
export function xeddsaVerifyPure(publicKeyRaw: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKeyRaw instanceof Uint8Array) || publicKeyRaw.length !== PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false;
  if (!(message instanceof Uint8Array)) return false;
  const signBit = (signature[63]! & SIGN_BIT) >> 7;
  const publicPoint = montgomeryToEdwards(publicKeyRaw, signBit);
  if (publicPoint === undefined) return false;
  const sBytes = signature.slice(32, 64);
  sBytes[31]! &= 0x7f;
  if ((sBytes[31]! & 0xe0) !== 0) return false;
  return edwardsVerifyCore(
    publicPoint,
    publicPoint.toBytes(),
    signature.subarray(0, 32),
    bytesToNumberLE(sBytes),
    message,
  );
}
