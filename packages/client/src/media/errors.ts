/** Every failure of the media module is a MediaError narrowed by `code`. */
export type MediaErrorCode =
  /** A descriptor that does not decode or validate. */
  | "BAD_DESCRIPTOR"
  /** Bad arguments or an unreadable input file. */
  | "BAD_INPUT"
  /** The downloaded blob's SHA-256 is not the one in the descriptor (tampered, or another blob). */
  | "BLOB_HASH_MISMATCH"
  /** The blob's MAC does not verify (tampered, or a wrong media key). */
  | "MAC_MISMATCH"
  /** The blob is shorter or longer than the descriptor's size implies. */
  | "SIZE_MISMATCH"
  /** Decryption failed (bad padding) or the plaintext's SHA-256 differs. */
  | "DECRYPT_FAILED"
  /** The server refused the upload's credentials (401). */
  | "UNAUTHORIZED"
  /** The file is larger than the server accepts (413). */
  | "TOO_LARGE"
  /** The blob is not on the server (never uploaded, or expired). */
  | "NOT_FOUND"
  /** Any other HTTP answer, or the network failed more often than the retry budget. */
  | "NETWORK"
  /** The caller aborted. */
  | "ABORTED"
  /** Reading or writing a local file failed. */
  | "IO";

export class MediaError extends Error {
  override readonly name = "MediaError";

  constructor(
    readonly code: MediaErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isMediaError(value: unknown, code?: MediaErrorCode): value is MediaError {
  return value instanceof MediaError && (code === undefined || value.code === code);
}
