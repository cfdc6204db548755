// Sender-key chain derivation (libsignal rust/protocol/src/sender_keys.rs):
//   message-key seed = HMAC-SHA256(chainKey, 0x01)
//   next chain key   = HMAC-SHA256(chainKey, 0x02)
//   HKDF-SHA256(ikm = seed, no salt, info "WhisperGroup") -> 48 bytes: IV [0:16], AES key [16:48]

import { getCrypto, utf8 } from "../crypto/index.ts";

const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const CHAIN_KEY_SEED = Uint8Array.of(0x02);
const WHISPER_GROUP = utf8("WhisperGroup");

export type SenderMessageKey = { iteration: number; iv: Uint8Array; cipherKey: Uint8Array; seed: Uint8Array };

export function messageKeySeed(chainKey: Uint8Array): Uint8Array {
  return getCrypto().hmacSha256(chainKey, MESSAGE_KEY_SEED);
}

export function nextChainKey(chainKey: Uint8Array): Uint8Array {
  return getCrypto().hmacSha256(chainKey, CHAIN_KEY_SEED);
}

export function senderMessageKeyFromSeed(iteration: number, seed: Uint8Array): SenderMessageKey {
  const derived = getCrypto().hkdfSha256(seed, undefined, WHISPER_GROUP, 48);
  return { iteration, seed, iv: derived.slice(0, 16), cipherKey: derived.slice(16, 48) };
}
