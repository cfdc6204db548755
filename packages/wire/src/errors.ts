/**
 * Every failure of the wire layer (stanza codec and Noise transport) is a WireError with a
 * machine-readable code, so callers can tell hostile/malformed input apart from bugs and react
 * (drop the frame, close the connection, report) without parsing messages.
 */
export type WireErrorCode =
  // codec
  | "FRAME_TOO_LARGE"
  | "TRUNCATED"
  | "BAD_TOKEN"
  | "LIMIT_EXCEEDED"
  | "BAD_VARINT"
  | "BAD_UTF8"
  | "UNKNOWN_TYPE"
  | "INVALID_STANZA"
  // transport
  | "HANDSHAKE_FAILED"
  | "DECRYPT_FAILED"
  | "PROTOCOL_VIOLATION"
  | "AUTH_REJECTED"
  | "CLOSED";

export const WIRE_ERROR_CODES: readonly WireErrorCode[] = [
  "FRAME_TOO_LARGE",
  "TRUNCATED",
  "BAD_TOKEN",
  "LIMIT_EXCEEDED",
  "BAD_VARINT",
  "BAD_UTF8",
  "UNKNOWN_TYPE",
  "INVALID_STANZA",
  "HANDSHAKE_FAILED",
  "DECRYPT_FAILED",
  "PROTOCOL_VIOLATION",
  "AUTH_REJECTED",
  "CLOSED",
];

export class WireError extends Error {
  readonly code: WireErrorCode;

  constructor(code: WireErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = "WireError";
    this.code = code;
  }
}

export function isWireError(err: unknown, code?: WireErrorCode): err is WireError {
  return err instanceof WireError && (code === undefined || err.code === code);
}
