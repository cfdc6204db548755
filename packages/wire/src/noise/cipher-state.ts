/**
 * Noise CipherState (spec §5.1): a key k and a 64-bit nonce n. n = 2^64−1 is reserved (REKEY uses
 * it), so encrypting or decrypting at that nonce is an error; a failed decryption does not
 * advance n. The nonce is kept as two u32 halves: exact over the whole 64-bit range, no BigInt
 * on the per-record path.
 */
import { WireError } from "../errors.ts";
import { type BoundAead, KEY_LEN, type NoiseCipherName, type NoiseCryptoSuite } from "./suite.ts";

const U32 = 0x1_0000_0000;
const MAX_HALF = 0xffff_ffff;
const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array(KEY_LEN);

export class CipherState {
  readonly suite: NoiseCryptoSuite;
  readonly cipher: NoiseCipherName;
  private aead: BoundAead | null = null;
  private nonceHigh = 0;
  private nonceLow = 0;

  constructor(suite: NoiseCryptoSuite, cipher: NoiseCipherName, key?: Uint8Array) {
    this.suite = suite;
    this.cipher = cipher;
    if (key !== undefined) this.initializeKey(key);
  }

  /** InitializeKey(k): sets the key and resets n to 0. */
  initializeKey(key: Uint8Array): void {
    if (key.length !== KEY_LEN) throw new WireError("PROTOCOL_VIOLATION", "cipher key must be 32 bytes");
    this.aead = this.suite.aead(this.cipher, key);
    this.nonceHigh = 0;
    this.nonceLow = 0;
  }

  hasKey(): boolean {
    return this.aead !== null;
  }

  /** The next nonce to be used. */
  get nonce(): bigint {
    return (BigInt(this.nonceHigh) << 32n) | BigInt(this.nonceLow);
  }

  /** SetNonce(n): for tests and for resuming; n must fit in 64 bits. */
  setNonce(n: bigint): void {
    if (n < 0n || n > 0xffff_ffff_ffff_ffffn) throw new RangeError("nonce out of range");
    this.nonceHigh = Number(n >> 32n);
    this.nonceLow = Number(n & 0xffff_ffffn);
  }

  private checkNonce(): void {
    if (this.nonceHigh === MAX_HALF && this.nonceLow === MAX_HALF) {
      throw new WireError("PROTOCOL_VIOLATION", "nonce space exhausted (n = 2^64-1 is reserved)");
    }
  }

  private advance(): void {
    this.nonceLow++;
    if (this.nonceLow === U32) {
      this.nonceLow = 0;
      this.nonceHigh++;
    }
  }

  /**
   * EncryptWithAd: ciphertext ‖ tag, or the plaintext itself when no key is set. `headroom` bytes are
   * left free at the start of the result (for a frame header) so framing needs no extra copy.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array, headroom = 0): Uint8Array {
    if (this.aead === null) {
      if (headroom === 0) return plaintext;
      const out = new Uint8Array(headroom + plaintext.length);
      out.set(plaintext, headroom);
      return out;
    }
    this.checkNonce();
    const out = this.aead.seal(this.nonceHigh, this.nonceLow, ad, plaintext, headroom);
    this.advance();
    return out;
  }

  /** DecryptWithAd: throws WireError "DECRYPT_FAILED" on a bad tag (n is left unchanged). */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.aead === null) return ciphertext;
    this.checkNonce();
    const out = this.aead.open(this.nonceHigh, this.nonceLow, ad, ciphertext);
    if (out === null) throw new WireError("DECRYPT_FAILED", "message authentication failed");
    this.advance();
    return out;
  }

  /** Key and nonce, to continue this cipher state in another process (connection handoff). */
  exportState(): { key: Uint8Array; nonce: bigint } {
    if (this.aead === null) throw new WireError("PROTOCOL_VIOLATION", "no key to export");
    return { key: this.aead.exportKey(), nonce: this.nonce };
  }

  /** A cipher state continuing an exported one. */
  static fromState(suite: NoiseCryptoSuite, cipher: NoiseCipherName, state: { key: Uint8Array; nonce: bigint }) {
    const c = new CipherState(suite, cipher, state.key);
    c.setNonce(state.nonce);
    return c;
  }

  /** Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64−1, ε, 32 zero bytes); n is unchanged. */
  rekey(): void {
    if (this.aead === null) throw new WireError("PROTOCOL_VIOLATION", "rekey without a key");
    const next = this.aead.seal(MAX_HALF, MAX_HALF, EMPTY, ZERO_KEY).subarray(0, KEY_LEN);
    const high = this.nonceHigh;
    const low = this.nonceLow;
    this.aead = this.suite.aead(this.cipher, next);
    this.nonceHigh = high;
    this.nonceLow = low;
  }
}
