// Media key schedule, as WhatsApp's (whitepaper; Baileys' getMediaKeys) with Parley's own info
// strings: a random 32-byte media key per attachment, HKDF-SHA256 with a zero salt expanded to
// 112 bytes = IV(16) ‖ AES-256 key(32) ‖ HMAC-SHA256 key(32) ‖ 32 unused bytes.
import { getCrypto } from "@parley/signal";
import { MediaError } from "./errors.ts";

export type MediaType = "image" | "video" | "audio" | "document";
export const MEDIA_TYPES: readonly MediaType[] = ["image", "video", "audio", "document"];

const INFO: Record<MediaType, string> = {
  image: "Parley Image Keys",
  video: "Parley Video Keys",
  audio: "Parley Audio Keys",
  document: "Parley Document Keys",
};

export const MEDIA_KEY_LENGTH = 32;
/** Bytes of HMAC-SHA256 kept at the end of the blob. */
export const MEDIA_MAC_LENGTH = 10;

export interface MediaKeys {
  iv: Uint8Array;
  cipherKey: Uint8Array;
  macKey: Uint8Array;
}

export function generateMediaKey(): Uint8Array {
  return getCrypto().randomBytes(MEDIA_KEY_LENGTH);
}

export function deriveMediaKeys(mediaKey: Uint8Array, type: MediaType): MediaKeys {
  if (!(mediaKey instanceof Uint8Array) || mediaKey.length !== MEDIA_KEY_LENGTH) {
    throw new MediaError("BAD_INPUT", "a media key is 32 bytes");
  }
  const info = INFO[type];
  if (info === undefined) throw new MediaError("BAD_INPUT", `unknown media type ${String(type)}`);
  const expanded = getCrypto().hkdfSha256(mediaKey, undefined, new TextEncoder().encode(info), 112);
  return { iv: expanded.slice(0, 16), cipherKey: expanded.slice(16, 48), macKey: expanded.slice(48, 80) };
}

/** The blob's length for a plaintext of `size` bytes: CBC with PKCS#7 always adds 1..16 bytes, then the MAC. */
export function encryptedSize(size: number): number {
  return (Math.floor(size / 16) + 1) * 16 + MEDIA_MAC_LENGTH;
}

/** The media type (key schedule) for a MIME type: image/*, video/*, audio/*, anything else a document. */
export function mediaTypeForMime(mime: string): MediaType {
  const top = mime.split("/", 1)[0]?.toLowerCase();
  if (top === "image" || top === "video" || top === "audio") return top;
  return "document";
}
