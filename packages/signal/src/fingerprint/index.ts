// Safety numbers as libsignal computes them (rust/protocol/src/fingerprint.rs):
// per party, SHA-512 iterated 5,200 times, first over
// 0x0000 ‖ identityKey(33) ‖ stableId ‖ identityKey, then over prev ‖ identityKey.
// Displayable: for each party the first 30 bytes as six 5-byte big-endian
// numbers mod 100000, 5 digits each; the two 30-digit halves are concatenated
// in lexicographic order, so both parties see the same 60 digits.
// Scannable: protobuf CombinedFingerprints { 1 version, 2 local {1 content: 32 B},
// 3 remote {1 content: 32 B} } (what the QR code carries).

import { constantTimeEqual, getCrypto } from "../crypto/index.ts";
import { decodePublicKey } from "../curve/index.ts";
import { SignalError } from "../errors.ts";
import { decodeProto, encodeProto } from "../proto/protobuf.ts";

export const FINGERPRINT_ITERATIONS = 5200;
/** Scannable format version the Signal apps use today (1 was the older one; digits are the same). */
export const SCANNABLE_FINGERPRINT_VERSION = 2;
const MAX_SCANNABLE_SIZE = 1024;
const FINGERPRINT_VERSION_PREFIX = new Uint8Array(2);

const COMBINED_SCHEMA = {
  version: { field: 1, type: "uint32" },
  local: { field: 2, type: "bytes" },
  remote: { field: 3, type: "bytes" },
} as const;
const LOGICAL_SCHEMA = { content: { field: 1, type: "bytes" } } as const;

export type Fingerprint = { displayable: string; scannable: Uint8Array };

function iteratedHash(iterations: number, stableId: Uint8Array, identityKey33: Uint8Array): Uint8Array {
  const crypto = getCrypto();
  let buffer = crypto.sha512(FINGERPRINT_VERSION_PREFIX, identityKey33, stableId, identityKey33);
  for (let i = 1; i < iterations; i++) buffer = crypto.sha512(buffer, identityKey33);
  return buffer;
}

function displayHalf(hash: Uint8Array): string {
  let out = "";
  for (let chunk = 0; chunk < 6; chunk++) {
    let value = 0;
    // 5 bytes = 40 bits, exact in a double.
    for (let i = 0; i < 5; i++) value = value * 256 + hash[chunk * 5 + i]!;
    out += String(value % 100_000).padStart(5, "0");
  }
  return out;
}

function encodeScannable(version: number, local: Uint8Array, remote: Uint8Array): Uint8Array {
  return encodeProto(COMBINED_SCHEMA, {
    version,
    local: encodeProto(LOGICAL_SCHEMA, { content: local }),
    remote: encodeProto(LOGICAL_SCHEMA, { content: remote }),
  });
}

/**
 * Both parties' safety number. Identity keys are the 33-byte serialized form;
 * stable ids are whatever the application uses consistently (libsignal's
 * tests use the phone number's UTF-8 bytes; Signal now uses service ids).
 */
export function createFingerprint(
  localStableId: Uint8Array,
  localIdentityKey33: Uint8Array,
  remoteStableId: Uint8Array,
  remoteIdentityKey33: Uint8Array,
  options: { version?: number; iterations?: number } = {},
): Fingerprint {
  decodePublicKey(localIdentityKey33);
  decodePublicKey(remoteIdentityKey33);
  const iterations = options.iterations ?? FINGERPRINT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations <= 1 || iterations > 1_000_000) {
    throw new RangeError("fingerprint iterations must be in (1, 1000000]");
  }
  const local = iteratedHash(iterations, localStableId, localIdentityKey33);
  const remote = iteratedHash(iterations, remoteStableId, remoteIdentityKey33);
  const localDigits = displayHalf(local);
  const remoteDigits = displayHalf(remote);
  return {
    displayable: localDigits < remoteDigits ? localDigits + remoteDigits : remoteDigits + localDigits,
    scannable: encodeScannable(
      options.version ?? SCANNABLE_FINGERPRINT_VERSION,
      local.slice(0, 32),
      remote.slice(0, 32),
    ),
  };
}

type ParsedScannable = { version: number; local: Uint8Array; remote: Uint8Array };

function parseScannable(bytes: Uint8Array, requireVersion: boolean): ParsedScannable {
  const combined = decodeProto(bytes, COMBINED_SCHEMA, MAX_SCANNABLE_SIZE);
  if (requireVersion && combined.version === undefined) {
    throw new SignalError("INVALID_MESSAGE", "scannable fingerprint has no version");
  }
  if (combined.local === undefined || combined.remote === undefined) {
    throw new SignalError("INVALID_MESSAGE", "scannable fingerprint lacks a half");
  }
  const local = decodeProto(combined.local, LOGICAL_SCHEMA).content;
  const remote = decodeProto(combined.remote, LOGICAL_SCHEMA).content;
  if (local === undefined || remote === undefined) {
    throw new SignalError("INVALID_MESSAGE", "scannable fingerprint half has no content");
  }
  return { version: combined.version ?? 0, local, remote };
}

/**
 * Compare our scannable fingerprint (`ours`) with the one scanned from the
 * other device (`theirs`): true iff their local half is our remote half and
 * vice versa. Throws SignalError UNSUPPORTED_VERSION (details {ours, theirs})
 * when the versions differ, INVALID_MESSAGE when either is malformed.
 */
export function compareScannable(ours: Uint8Array, theirs: Uint8Array): boolean {
  const mine = parseScannable(ours, true);
  const other = parseScannable(theirs, false);
  if (other.version !== mine.version) {
    throw new SignalError("UNSUPPORTED_VERSION", "scannable fingerprint versions differ", {
      ours: mine.version,
      theirs: other.version,
    });
  }
  const same1 = constantTimeEqual(other.local, mine.remote);
  const same2 = constantTimeEqual(other.remote, mine.local);
  return same1 && same2;
}
