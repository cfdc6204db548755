// Argument checks shared by store implementations: a bad argument is a typed error,
// never a silently stored surprise (NaN timestamps, empty ids, fractional device ids).
import { StoreError } from "./errors.ts";
import type { Address } from "./types.ts";

export const MAX_ID_CHARS = 256;

export function checkId(value: string, what: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_ID_CHARS) {
    throw new StoreError("INVALID_ARGUMENT", `${what} must be a string of 1..${MAX_ID_CHARS} characters`);
  }
  return value;
}

export function checkInt(value: number, what: string, min = 0): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new StoreError("INVALID_ARGUMENT", `${what} must be an integer >= ${min}`);
  }
  return value;
}

/** Timestamps: integer milliseconds (may be 0, never negative or fractional). */
export function checkTime(value: number, what: string): number {
  return checkInt(value, what, 0);
}

export function checkAddress(address: Address): Address {
  if (typeof address !== "object" || address === null) throw new StoreError("INVALID_ARGUMENT", "address expected");
  checkId(address.name, "address name");
  checkInt(address.deviceId, "address deviceId", 0);
  return address;
}

export function checkBytes(value: Uint8Array, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new StoreError("INVALID_ARGUMENT", `${what} must be a Uint8Array`);
  return value;
}

export function checkLimit(value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new StoreError("INVALID_ARGUMENT", `limit must be an integer in 1..${max}`);
  }
  return value;
}
