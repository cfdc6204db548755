// One error class for the store, narrowed by `code`, so callers `switch (e.code)`.

export type StoreErrorCode =
  /** The key (passphrase or key file) does not open this database. */
  | "WRONG_KEY"
  /** The file opened but is damaged, or its schema is newer than this code knows. */
  | "CORRUPT"
  /** A record the caller named does not exist (or a required meta value is unset). */
  | "NOT_FOUND"
  /** The write contradicts stored state (e.g. an id reused with other content). */
  | "CONFLICT"
  /** The database was written by a newer client (schema version above what this code knows). */
  | "SCHEMA_TOO_NEW"
  /** The key file is readable or writable by group/others: refuse to trust it. */
  | "INSECURE_KEY_FILE"
  /** A caller passed an argument the store cannot accept (bad cursor, limit, id). */
  | "INVALID_ARGUMENT"
  /** The store was closed. */
  | "CLOSED"
  /** Any other SQLite / file-system failure (the cause is attached). */
  | "IO";

export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
    this.code = code;
  }
}

export function isStoreError(value: unknown, code?: StoreErrorCode): value is StoreError {
  return value instanceof StoreError && (code === undefined || value.code === code);
}
