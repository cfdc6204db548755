// One error class for the whole Signal package, narrowed by `code` (as libsignal
// does), so callers can `switch (e.code)` without importing many classes.

export type SignalErrorCode =
  /** A key has the wrong length, type byte or is otherwise unusable. */
  | "INVALID_KEY"
  /** An XEdDSA / account signature does not verify. */
  | "INVALID_SIGNATURE"
  /** A message is malformed: truncated, oversized, bad protobuf, missing fields. */
  | "INVALID_MESSAGE"
  /** Message version byte unknown or not supported. */
  | "UNSUPPORTED_VERSION"
  /** MAC check failed (tampered message, or wrong session). */
  | "BAD_MAC"
  /** A message whose key was already used or dropped: replay or very late duplicate. */
  | "DUPLICATE_MESSAGE"
  /** The counter jumps further ahead than the protocol allows (25,000). */
  | "TOO_FAR_AHEAD"
  /** No session (or no usable session state) with that address. */
  | "NO_SESSION"
  /** The remote identity key differs from the trusted one: never silently accepted. */
  | "UNTRUSTED_IDENTITY"
  /** A prekey / signed prekey / KEM prekey id the store does not have. */
  | "INVALID_PREKEY_ID"
  /** No sender key state for that (group, sender, distribution id). */
  | "NO_SENDER_KEY"
  /** Decryption produced invalid padding. */
  | "BAD_PADDING"
  /** A stored record (session, sender key) cannot be parsed. */
  | "INVALID_RECORD";

export class SignalError extends Error {
  override readonly name = "SignalError";
  constructor(
    readonly code: SignalErrorCode,
    message: string,
    /** Extra, code-specific data (e.g. the untrusted identity key). */
    readonly details?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
  }
}

export function isSignalError(e: unknown, code?: SignalErrorCode): e is SignalError {
  return e instanceof SignalError && (code === undefined || e.code === code);
}
