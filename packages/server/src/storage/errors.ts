/**
 * Every failure of the storage layer is a StorageError narrowed by `code`, so the gateway can map
 * it to a protocol answer (CONFLICT → "name taken", NOT_FOUND → "unknown device", ...) without
 * parsing messages or knowing which database is behind the interface.
 */
export type StorageErrorCode =
  /** The account / device / entry the call is about does not exist. */
  | "NOT_FOUND"
  /** A uniqueness rule or version order was violated (name taken, noise key registered, stale device list). */
  | "CONFLICT"
  /** A malformed argument: wrong key length, bad name, negative limit, ... */
  | "INVALID_ARGUMENT"
  /** A configured cap was reached (devices per account, one-time prekeys per device). */
  | "LIMIT_EXCEEDED"
  /** The database stayed locked by another process longer than the busy timeout. */
  | "BUSY"
  /** The store was closed. */
  | "CLOSED"
  /** Anything else the database reported (I/O error, corruption). */
  | "INTERNAL";

export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StorageError";
    this.code = code;
  }
}

export function isStorageError(value: unknown, code?: StorageErrorCode): value is StorageError {
  return value instanceof StorageError && (code === undefined || value.code === code);
}
