// Distribution ids are UUIDs: strings in the API, 16 raw bytes on the wire.

import { SignalError } from "../errors.ts";

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function uuidToBytes(uuid: string): Uint8Array {
  if (typeof uuid !== "string" || !UUID_PATTERN.test(uuid)) {
    throw new SignalError("INVALID_MESSAGE", "distribution id must be a UUID string");
  }
  const hex = uuid.replaceAll("-", "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lower-case canonical text form, as libsignal's Uuid prints it. */
export function uuidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new SignalError("INVALID_MESSAGE", "a UUID is 16 bytes");
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
