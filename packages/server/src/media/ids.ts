// Media ids are the download capability: 32 random bytes, base64url without padding
// (43 characters). They are validated strictly before any filesystem path is built
// from them, so "..", "/", "%2e", NUL or an over-long id can never reach fs calls.
import { randomBytes } from "node:crypto";

export const MEDIA_ID_BYTES = 32;
export const MEDIA_ID_LENGTH = 43;
// 32 bytes = 256 bits; 43 base64url characters carry 258, so the last character
// must leave its two low bits zero: only the canonical encoding is accepted.
const MEDIA_ID = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export function newMediaId(): string {
  return randomBytes(MEDIA_ID_BYTES).toString("base64url");
}

export function isValidMediaId(id: string): boolean {
  return id.length === MEDIA_ID_LENGTH && MEDIA_ID.test(id);
}
