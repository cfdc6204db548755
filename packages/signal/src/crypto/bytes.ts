// Byte helpers shared by the whole Signal package. Pure JS (browser-safe).

const textEncoder = new TextEncoder();

/** UTF-8 encode a string. */
export function utf8(text: string): Uint8Array {
  return textEncoder.encode(text);
}

/** Concatenate byte arrays into one new array. */
export function concatBytes(...arrays: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const a of arrays) length += a.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/**
 * Equality whose running time depends only on the lengths, not on where the
 * first difference is: use it for MACs and anything secret-derived.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** Plain (early-exit) equality, for public data only. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const HEX = "0123456789abcdef";

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

/** Decode lower- or upper-case hex; throws TypeError on odd length or non-hex characters. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0) throw new TypeError("hex string has odd length");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const byte = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    if (!/^[0-9a-fA-F]{2}$/.test(hex.slice(2 * i, 2 * i + 2)) || Number.isNaN(byte)) {
      throw new TypeError("invalid hex character");
    }
    out[i] = byte;
  }
  return out;
}
