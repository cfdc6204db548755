/**
 * Parley's Noise profile: the protocol name's cipher and the prologue. The prologue is hashed into
 * every handshake (never sent), so a peer speaking another framing or dictionary version fails the
 * handshake instead of misparsing stanzas.
 */
import type { NoiseCipherName } from "../noise/suite.ts";
import { DICTIONARY_VERSION, PROTOCOL_VERSION } from "../version.ts";

/**
 * ChaCha20-Poly1305. In Node, libsodium (sodium-native) seals a 250-byte record in ~1.1 µs into a
 * buffer we pass, against ~3.3 µs for node:crypto's AES-256-GCM, which also leaves a native cipher
 * object per record for V8 to finalize inside a scavenge pause. In browsers @noble/ciphers' ChaCha
 * is ~2× faster than its GCM. AESGCM stays implemented and vector-tested (docs/protocol.md).
 */
export const PARLEY_NOISE_CIPHER: NoiseCipherName = "ChaChaPoly";

/** "PARLEY" ‖ u16 PROTOCOL_VERSION ‖ u16 DICTIONARY_VERSION (big-endian). */
export function parleyPrologue(
  protocolVersion: number = PROTOCOL_VERSION,
  dictionaryVersion: number = DICTIONARY_VERSION,
): Uint8Array {
  const out = new Uint8Array(10);
  out.set(new TextEncoder().encode("PARLEY"), 0);
  out[6] = (protocolVersion >>> 8) & 0xff;
  out[7] = protocolVersion & 0xff;
  out[8] = (dictionaryVersion >>> 8) & 0xff;
  out[9] = dictionaryVersion & 0xff;
  return out;
}

/** First byte of every handshake frame: which handshake message follows. */
export const HandshakeFrameType = {
  /** client → server: XX message 1 (-> e). */
  XX_INIT: 1,
  /** client → server: IK message 1 (-> e, es, s, ss + login payload). */
  IK_INIT: 2,
  /** server → client: XX message 2 (<- e, ee, s, es). */
  XX_RESPONSE: 3,
  /** server → client: IK message 2 (<- e, ee, se + login response). */
  IK_RESPONSE: 4,
  /** server → client: XXfallback message 1 (e, ee, s, se), sent when the IK message did not decrypt. */
  FALLBACK_RESPONSE: 5,
  /** client → server: XX message 3 or XXfallback message 2 (s + login payload). */
  CLIENT_FINISH: 6,
} as const;
