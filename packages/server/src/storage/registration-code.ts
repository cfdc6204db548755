import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Verification codes are stored only as HMAC-SHA256(salt, code) with a random salt per pending
 * registration, so a copy of the database does not reveal codes still waiting to be entered.
 * (A 6-digit code is guessable offline anyway; the attempt counter is the real defence.)
 */
export interface HashedCode {
  salt: Uint8Array;
  hash: Uint8Array;
}

export function hashRegistrationCode(code: string, salt: Uint8Array = randomBytes(16)): HashedCode {
  return { salt, hash: createHmac("sha256", salt).update(code, "utf8").digest() };
}

export function registrationCodeMatches(code: string, stored: HashedCode): boolean {
  const candidate = hashRegistrationCode(code, stored.salt).hash;
  return candidate.length === stored.hash.length && timingSafeEqual(candidate, stored.hash);
}
