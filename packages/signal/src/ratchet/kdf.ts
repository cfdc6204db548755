// The Double Ratchet's key derivations, byte-for-byte as libsignal does them
// (rust/protocol/src/ratchet/keys.rs):
//   KDF_RK: HKDF-SHA256(salt = root key, ikm = DH output, info "WhisperRatchet") -> root 32 ‖ chain 32
//   KDF_CK: message-key seed = HMAC(ck, 0x01), next ck = HMAC(ck, 0x02)
//   message keys: HKDF-SHA256(ikm = seed, no salt, info "WhisperMessageKeys") -> cipher 32 ‖ mac 32 ‖ iv 16

import { getCrypto } from "../crypto/index.ts";

const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const CHAIN_KEY_SEED = Uint8Array.of(0x02);
const RATCHET_INFO = new TextEncoder().encode("WhisperRatchet");
const MESSAGE_KEYS_INFO = new TextEncoder().encode("WhisperMessageKeys");

export interface ChainKey {
  /** 32-byte chain key. */
  key: Uint8Array;
  /** Index of the next message key this chain yields. */
  index: number;
}

export interface MessageKeys {
  cipherKey: Uint8Array;
  macKey: Uint8Array;
  iv: Uint8Array;
  counter: number;
}

export function nextChainKey(chain: ChainKey): ChainKey {
  return { key: getCrypto().hmacSha256(chain.key, CHAIN_KEY_SEED), index: chain.index + 1 };
}

/** The 32-byte seed from which this chain step's message keys are derived. */
export function messageKeySeed(chain: ChainKey): Uint8Array {
  return getCrypto().hmacSha256(chain.key, MESSAGE_KEY_SEED);
}

export function deriveMessageKeys(seed: Uint8Array, counter: number): MessageKeys {
  const okm = getCrypto().hkdfSha256(seed, undefined, MESSAGE_KEYS_INFO, 80);
  return {
    cipherKey: okm.subarray(0, 32),
    macKey: okm.subarray(32, 64),
    iv: okm.subarray(64, 80),
    counter,
  };
}

export function chainMessageKeys(chain: ChainKey): MessageKeys {
  return deriveMessageKeys(messageKeySeed(chain), chain.index);
}

/**
 * KDF_RK: one DH ratchet step. `theirRatchetKey` is the raw 32-byte X25519
 * public key, `ourRatchetPrivate` the raw 32-byte private key.
 */
export function createChain(
  rootKey: Uint8Array,
  theirRatchetKey: Uint8Array,
  ourRatchetPrivate: Uint8Array,
): { rootKey: Uint8Array; chainKey: ChainKey } {
  const crypto = getCrypto();
  const shared = crypto.x25519(ourRatchetPrivate, theirRatchetKey);
  const okm = crypto.hkdfSha256(shared, rootKey, RATCHET_INFO, 64);
  return { rootKey: okm.slice(0, 32), chainKey: { key: okm.slice(32, 64), index: 0 } };
}
