/** The browser-safe crypto suite: pure-JS @noble/* primitives (identical results to node:crypto, slower). */
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import {
  type BoundAead,
  isAllZero,
  type KeyPair,
  type NoiseCipherName,
  type NoiseCryptoSuite,
  writeNonce,
} from "./suite.ts";

class NobleAead implements BoundAead {
  private readonly nonce = new Uint8Array(12);
  private readonly key: Uint8Array;
  private readonly cipher: NoiseCipherName;

  constructor(cipher: NoiseCipherName, key: Uint8Array) {
    this.cipher = cipher;
    this.key = key.slice();
  }

  exportKey(): Uint8Array {
    return this.key.slice();
  }

  private instance(ad: Uint8Array) {
    const aad = ad.length > 0 ? ad : undefined;
    return this.cipher === "AESGCM" ? gcm(this.key, this.nonce, aad) : chacha20poly1305(this.key, this.nonce, aad);
  }

  seal(nonceHigh: number, nonceLow: number, ad: Uint8Array, plaintext: Uint8Array, headroom = 0): Uint8Array {
    writeNonce(this.cipher, this.nonce, nonceHigh, nonceLow);
    const sealed = this.instance(ad).encrypt(plaintext);
    if (headroom === 0) return sealed;
    const out = new Uint8Array(headroom + sealed.length);
    out.set(sealed, headroom);
    return out;
  }

  open(nonceHigh: number, nonceLow: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
    writeNonce(this.cipher, this.nonce, nonceHigh, nonceLow);
    try {
      return this.instance(ad).decrypt(ciphertext);
    } catch {
      return null;
    }
  }
}

export const nobleSuite: NoiseCryptoSuite = {
  name: "noble",
  generateKeyPair(): KeyPair {
    const { secretKey, publicKey } = x25519.keygen();
    return { privateKey: secretKey, publicKey };
  },
  publicKeyOf(privateKey: Uint8Array): Uint8Array {
    return x25519.getPublicKey(privateKey);
  },
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    const shared = x25519.getSharedSecret(keyPair.privateKey, publicKey);
    if (isAllZero(shared)) throw new Error("X25519 produced the all-zero output (low-order public key)");
    return shared;
  },
  sha256: (data) => sha256(data),
  hmacSha256: (key, data) => hmac(sha256, key, data),
  hkdf2(chainingKey, inputKeyMaterial) {
    const okm = hkdf(sha256, inputKeyMaterial, chainingKey, new Uint8Array(0), 64);
    return [okm.slice(0, 32), okm.slice(32, 64)];
  },
  aead: (cipher, key) => new NobleAead(cipher, key),
  randomBytes: (length) => randomBytes(length),
};
