// The media construction on whole buffers (browsers, small files, test vectors): the same
// bytes as the streaming Node path (./encrypt-stream.node.ts), through the selected crypto
// provider (node:crypto in Node, @noble/* in browsers).
import { getCrypto } from "@parley/signal";
import { MediaError } from "./errors.ts";
import { deriveMediaKeys, MEDIA_MAC_LENGTH, type MediaType } from "./keys.ts";

export interface EncryptedMedia {
  /** ciphertext ‖ first 10 bytes of HMAC-SHA256(macKey, IV ‖ ciphertext). */
  blob: Uint8Array;
  fileSha256: Uint8Array;
  fileEncSha256: Uint8Array;
}

/** Compares in time independent of where the first difference is. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function encryptMediaBytes(plaintext: Uint8Array, mediaKey: Uint8Array, type: MediaType): EncryptedMedia {
  const c = getCrypto();
  const { iv, cipherKey, macKey } = deriveMediaKeys(mediaKey, type);
  const ciphertext = c.aes256CbcEncrypt(cipherKey, iv, plaintext);
  const mac = c.hmacSha256(macKey, iv, ciphertext).subarray(0, MEDIA_MAC_LENGTH);
  const blob = new Uint8Array(ciphertext.length + MEDIA_MAC_LENGTH);
  blob.set(ciphertext);
  blob.set(mac, ciphertext.length);
  return { blob, fileSha256: c.sha256(plaintext), fileEncSha256: c.sha256(blob) };
}

/** Verifies the blob hash (if given) and the MAC before decrypting; then the plaintext hash (if given). */
export function decryptMediaBytes(
  blob: Uint8Array,
  mediaKey: Uint8Array,
  type: MediaType,
  expected: { fileEncSha256?: Uint8Array; fileSha256?: Uint8Array } = {},
): Uint8Array {
  const c = getCrypto();
  if (blob.length < 16 + MEDIA_MAC_LENGTH || (blob.length - MEDIA_MAC_LENGTH) % 16 !== 0) {
    throw new MediaError("SIZE_MISMATCH", "a media blob is whole AES blocks plus a 10-byte MAC");
  }
  if (expected.fileEncSha256 && !constantTimeEqual(c.sha256(blob), expected.fileEncSha256)) {
    throw new MediaError("BLOB_HASH_MISMATCH", "the blob's SHA-256 differs from the descriptor's");
  }
  const { iv, cipherKey, macKey } = deriveMediaKeys(mediaKey, type);
  const ciphertext = blob.subarray(0, blob.length - MEDIA_MAC_LENGTH);
  const mac = c.hmacSha256(macKey, iv, ciphertext).subarray(0, MEDIA_MAC_LENGTH);
  if (!constantTimeEqual(mac, blob.subarray(blob.length - MEDIA_MAC_LENGTH))) {
    throw new MediaError("MAC_MISMATCH", "the blob's MAC does not verify (tampered, or a wrong key)");
  }
  let plaintext: Uint8Array;
  try {
    plaintext = c.aes256CbcDecrypt(cipherKey, iv, ciphertext);
  } catch (err) {
    throw new MediaError("DECRYPT_FAILED", "bad padding after a valid MAC", { cause: err });
  }
  if (expected.fileSha256 && !constantTimeEqual(c.sha256(plaintext), expected.fileSha256)) {
    throw new MediaError("DECRYPT_FAILED", "the plaintext's SHA-256 differs from the descriptor's");
  }
  return plaintext;
}
