/**
 * Record layer: the plaintext of every transport message is `type (u8) ‖ body`.
 *   STANZAS  body = (varint length ‖ stanza bytes)+     many stanzas per record: one AEAD call per batch
 *   LOGIN    body = status (u8: 0 accepted, 1 rejected) ‖ login result bytes | UTF-8 reason
 *   CLOSE    body = code (u16 BE) ‖ UTF-8 reason (≤ 123 bytes)
 *   REKEY    empty: the sender rekeys its sending CipherState right after this record
 *   PING     empty: keep-alive, ignored by the receiver
 * Varints are unsigned LEB128, at most 3 bytes (stanzas are < 2^21 bytes).
 */
import { WireError } from "../errors.ts";

export const RecordType = {
  STANZAS: 0,
  LOGIN: 1,
  CLOSE: 2,
  REKEY: 3,
  PING: 4,
} as const;

export const LoginStatus = { ACCEPTED: 0, REJECTED: 1 } as const;

export const MAX_CLOSE_REASON_BYTES = 123;
/** Bytes of the largest varint a record may contain. */
export const MAX_VARINT_BYTES = 3;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

export function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : 3;
}

export function writeVarint(out: Uint8Array, offset: number, value: number): number {
  if (value < 0x80) {
    out[offset] = value;
    return offset + 1;
  }
  if (value < 0x4000) {
    out[offset] = (value & 0x7f) | 0x80;
    out[offset + 1] = value >>> 7;
    return offset + 2;
  }
  out[offset] = (value & 0x7f) | 0x80;
  out[offset + 1] = ((value >>> 7) & 0x7f) | 0x80;
  out[offset + 2] = value >>> 14;
  return offset + 3;
}

/** Calls `onStanza` with a view of each stanza of a STANZAS record body (starting at `offset`). */
export function readStanzas(plaintext: Uint8Array, offset: number, onStanza: (stanza: Uint8Array) => void): void {
  const end = plaintext.length;
  if (offset >= end) throw new WireError("PROTOCOL_VIOLATION", "empty stanza record");
  while (offset < end) {
    let length = 0;
    let shift = 0;
    for (let i = 0; ; i++) {
      if (offset >= end) throw new WireError("TRUNCATED", "stanza length cut off");
      if (i === MAX_VARINT_BYTES) throw new WireError("BAD_VARINT", "stanza length varint too long");
      const byte = plaintext[offset++]!;
      length |= (byte & 0x7f) << shift;
      shift += 7;
      if ((byte & 0x80) === 0) {
        // non-minimal encodings (a trailing 0x00 continuation) would give one stanza two encodings
        if (i > 0 && byte === 0) throw new WireError("BAD_VARINT", "non-minimal varint");
        break;
      }
    }
    if (end - offset < length) throw new WireError("TRUNCATED", "stanza longer than its record");
    onStanza(plaintext.subarray(offset, offset + length));
    offset += length;
  }
}

export function encodeClose(code: number, reason: string): Uint8Array {
  let reasonBytes = encoder.encode(reason);
  if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
    // cut on a character boundary so the peer decodes valid UTF-8
    let cut = MAX_CLOSE_REASON_BYTES;
    while (cut > 0 && (reasonBytes[cut]! & 0xc0) === 0x80) cut--;
    reasonBytes = reasonBytes.subarray(0, cut);
  }
  const out = new Uint8Array(3 + reasonBytes.length);
  out[0] = RecordType.CLOSE;
  out[1] = (code >>> 8) & 0xff;
  out[2] = code & 0xff;
  out.set(reasonBytes, 3);
  return out;
}

export function decodeClose(plaintext: Uint8Array): { code: number; reason: string } {
  if (plaintext.length < 3) throw new WireError("TRUNCATED", "close record too short");
  if (plaintext.length > 3 + MAX_CLOSE_REASON_BYTES) throw new WireError("PROTOCOL_VIOLATION", "close reason too long");
  return { code: (plaintext[1]! << 8) | plaintext[2]!, reason: decoder.decode(plaintext.subarray(3)) };
}

export type LoginResponse =
  | { readonly accepted: true; readonly loginResult: Uint8Array }
  | { readonly accepted: false; readonly reason: string };

/** The login response as carried in IK message 2's payload or in a LOGIN record body. */
export function encodeLoginResponse(response: LoginResponse): Uint8Array {
  const body = response.accepted ? response.loginResult : encoder.encode(response.reason).subarray(0, 1024);
  const out = new Uint8Array(1 + body.length);
  out[0] = response.accepted ? LoginStatus.ACCEPTED : LoginStatus.REJECTED;
  out.set(body, 1);
  return out;
}

export function decodeLoginResponse(bytes: Uint8Array): LoginResponse {
  const status = bytes[0];
  if (status === LoginStatus.ACCEPTED) return { accepted: true, loginResult: bytes.slice(1) };
  if (status === LoginStatus.REJECTED) return { accepted: false, reason: decoder.decode(bytes.subarray(1)) };
  throw new WireError("PROTOCOL_VIOLATION", "bad login response status");
}
