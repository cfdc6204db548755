// The primitives the Signal protocol needs, behind one synchronous interface.
//
// Two implementations: `node.node.ts` (node:crypto, fast, Node only) and
// `noble.ts` (@noble/*, pure JS, runs in browsers). Synchronous on purpose:
// WebCrypto is async-only, and an async ratchet would cost a promise per step
// and make session-state updates interleave; both chosen backends are sync.
//
// All keys are raw bytes: X25519 keys are the 32-byte little-endian
// u-coordinate / clamped-or-not scalar as RFC 7748 defines them.

export interface X25519KeyPair {
  /** 32-byte raw private scalar (RFC 7748 encoding; clamped on use). */
  privateKey: Uint8Array;
  /** 32-byte raw public u-coordinate. */
  publicKey: Uint8Array;
}

export interface CryptoProvider {
  /** "node" or "noble": lets tests run the same suite on every backend. */
  readonly name: string;
  randomBytes(length: number): Uint8Array;
  sha256(data: Uint8Array): Uint8Array;
  /** SHA-512 over the concatenation of all parts. */
  sha512(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-SHA256 over the concatenation of all parts. */
  hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  /** RFC 5869 HKDF-SHA256 (extract + expand). An undefined or empty salt means 32 zero bytes. */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array | undefined, info: Uint8Array, length: number): Uint8Array;
  /** AES-256-CBC with PKCS#7 padding. */
  aes256CbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** AES-256-CBC with PKCS#7 padding; throws SignalError("BAD_PADDING") on bad padding or length. */
  aes256CbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array;
  x25519GenerateKeyPair(): X25519KeyPair;
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /** X25519(privateKey, publicKey); throws SignalError("INVALID_KEY") when the result is all zero (low-order point). */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /**
   * Optional native fast path: RFC 8032 Ed25519 verification (cofactorless,
   * SHA-512(R ‖ A ‖ M), s must be < q) of a 64-byte signature under a 32-byte
   * encoded Edwards public key. XEdDSA verification (curve/) maps its inputs
   * onto this when present and uses its pure-JS path otherwise. Never throws:
   * any malformed input is `false`.
   */
  ed25519Verify?(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}
