import { WireError } from "../errors.ts";
import { MAX_PRIMARY_TOKENS, PRIMARY_TOKENS, SECONDARY_TOKENS, TOKEN_INDEX } from "./dictionary.ts";
import type { ByteReader } from "./reader.ts";
import type { ByteWriter } from "./writer.ts";

/**
 * String atoms. First byte:
 *   0x00..0xEB  1-byte token (PRIMARY_TOKENS index)
 *   0xEC..0xEF  2-byte token: secondary dictionary (byte - 0xEC), next byte = index
 *   0xF0        UTF-8: varint byte length, bytes
 *   0xF1        nibble-packed: varint char count, ceil(n/2) bytes (alphabet "0123456789-.+:/", pad 0xF)
 *   0xF2        hex-packed: varint char count, ceil(n/2) bytes (lowercase 0-9a-f, pad 0x0)
 *   0xF3        name-packed (base 40): varint char count, 2 bytes per 3 chars, 1 or 2 for the rest
 * Value atoms (generic node attributes) extend this with 0xF4..0xF7 (see codec/node.ts).
 */
export const ATOM_SECONDARY = 0xec;
export const ATOM_UTF8 = 0xf0;
export const ATOM_NIBBLE = 0xf1;
export const ATOM_HEX = 0xf2;
export const ATOM_NAME = 0xf3;

const NIBBLE_ALPHABET = "0123456789-.+:/";
const HEX_ALPHABET = "0123456789abcdef";
const NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789._-+";

function codeTable(alphabet: string): Int8Array {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i;
  return t;
}
const NIBBLE_CODE = codeTable(NIBBLE_ALPHABET);
const HEX_CODE = codeTable(HEX_ALPHABET);
const NAME_CODE = codeTable(NAME_ALPHABET);

const CLASS_NIBBLE = 1;
const CLASS_HEX = 2;
const CLASS_NAME = 4;

/** Which packed alphabets can hold all of `s` (bit set), 0 if none (or non-ASCII). */
function classify(s: string): number {
  let cls = CLASS_NIBBLE | CLASS_HEX | CLASS_NAME;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128) return 0;
    if (NIBBLE_CODE[c]! < 0) cls &= ~CLASS_NIBBLE;
    if (HEX_CODE[c]! < 0) cls &= ~CLASS_HEX;
    if (NAME_CODE[c]! < 0) cls &= ~CLASS_NAME;
    if (cls === 0) return 0;
  }
  return cls;
}

export function writeStringAtom(w: ByteWriter, s: string): void {
  const token = TOKEN_INDEX.get(s);
  if (token !== undefined) {
    w.u8(token);
    return;
  }
  const cls = s.length >= 2 ? classify(s) : 0;
  if (cls & CLASS_NIBBLE) writeNibbles(w, ATOM_NIBBLE, s, NIBBLE_CODE, 0xf);
  else if (cls & CLASS_HEX) writeNibbles(w, ATOM_HEX, s, HEX_CODE, 0x0);
  else if (cls & CLASS_NAME) writeBase40(w, s);
  else {
    w.u8(ATOM_UTF8);
    writeUtf8(w, s);
  }
}

function writeNibbles(w: ByteWriter, type: number, s: string, codes: Int8Array, pad: number): void {
  const n = s.length;
  w.u8(type);
  w.varint(n);
  w.ensure((n + 1) >> 1);
  const buf = w.buf;
  let pos = w.pos;
  for (let i = 0; i < n; i += 2) {
    const hi = codes[s.charCodeAt(i)]!;
    const lo = i + 1 < n ? codes[s.charCodeAt(i + 1)]! : pad;
    buf[pos++] = (hi << 4) | lo;
  }
  w.pos = pos;
}

function writeBase40(w: ByteWriter, s: string): void {
  const n = s.length;
  w.u8(ATOM_NAME);
  w.varint(n);
  w.ensure(n);
  const buf = w.buf;
  let pos = w.pos;
  let i = 0;
  for (; i + 3 <= n; i += 3) {
    const v =
      NAME_CODE[s.charCodeAt(i)]! * 1600 + NAME_CODE[s.charCodeAt(i + 1)]! * 40 + NAME_CODE[s.charCodeAt(i + 2)]!;
    buf[pos++] = v >> 8;
    buf[pos++] = v & 0xff;
  }
  if (n - i === 1) buf[pos++] = NAME_CODE[s.charCodeAt(i)]!;
  else if (n - i === 2) {
    const v = NAME_CODE[s.charCodeAt(i)]! * 40 + NAME_CODE[s.charCodeAt(i + 1)]!;
    buf[pos++] = v >> 8;
    buf[pos++] = v & 0xff;
  }
  w.pos = pos;
}

const encoder = new TextEncoder();

/** varint byte length + UTF-8. Rejects lone surrogates (they would not round-trip). */
export function writeUtf8(w: ByteWriter, s: string): void {
  const n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    w.varint(n);
    w.ensure(n);
    const buf = w.buf;
    let pos = w.pos;
    for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
    w.pos = pos;
    return;
  }
  const len = utf8Length(s);
  w.varint(len);
  w.ensure(len);
  encoder.encodeInto(s, w.buf.subarray(w.pos, w.pos + len));
  w.pos += len;
}

function utf8Length(s: string): number {
  let len = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) len += 1;
    else if (c < 0x800) len += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new WireError("INVALID_STANZA", "string has a lone surrogate");
      len += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) throw new WireError("INVALID_STANZA", "string has a lone surrogate");
    else len += 3;
  }
  return len;
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function readUtf8(r: ByteReader, maxLength: number): string {
  const n = r.length(maxLength, "string");
  r.need(n);
  const buf = r.buf;
  const start = r.pos;
  const end = start + n;
  r.pos = end;
  if (n <= 32) {
    let s = "";
    let i = start;
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) break;
      s += String.fromCharCode(c);
    }
    if (i === end) return s;
  }
  try {
    return decoder.decode(buf.subarray(start, end));
  } catch (err) {
    throw new WireError("BAD_UTF8", "invalid UTF-8 in string", { cause: err });
  }
}

/** Decode a string atom whose type byte `b` was already read. */
export function readStringAtomAfter(r: ByteReader, b: number, maxLength: number): string {
  if (b < MAX_PRIMARY_TOKENS) {
    const s = PRIMARY_TOKENS[b];
    if (s === undefined) throw new WireError("BAD_TOKEN", `unknown token 0x${b.toString(16)}`);
    return s;
  }
  switch (b) {
    case ATOM_UTF8:
      return readUtf8(r, maxLength);
    case ATOM_NIBBLE:
      return readNibbles(r, NIBBLE_ALPHABET, 0xf, maxLength);
    case ATOM_HEX:
      return readNibbles(r, HEX_ALPHABET, 0x0, maxLength);
    case ATOM_NAME:
      return readBase40(r, maxLength);
  }
  if (b >= ATOM_SECONDARY && b < ATOM_SECONDARY + 4) {
    const index = r.u8();
    const s = SECONDARY_TOKENS[b - ATOM_SECONDARY]![index];
    if (s === undefined) throw new WireError("BAD_TOKEN", `unknown 2-byte token ${b - ATOM_SECONDARY}/${index}`);
    return s;
  }
  throw new WireError("BAD_TOKEN", `0x${b.toString(16)} is not a string atom`);
}

export function readStringAtom(r: ByteReader, maxLength: number): string {
  return readStringAtomAfter(r, r.u8(), maxLength);
}

function readNibbles(r: ByteReader, alphabet: string, pad: number, maxLength: number): string {
  const n = r.length(maxLength, "packed string");
  const bytes = (n + 1) >> 1;
  r.need(bytes);
  const buf = r.buf;
  let pos = r.pos;
  let s = "";
  for (let i = 0; i < n; i += 2) {
    const b = buf[pos++]!;
    const hi = alphabet[b >> 4];
    if (hi === undefined) throw new WireError("BAD_TOKEN", "invalid packed character");
    s += hi;
    if (i + 1 < n) {
      const lo = alphabet[b & 0xf];
      if (lo === undefined) throw new WireError("BAD_TOKEN", "invalid packed character");
      s += lo;
    } else if ((b & 0xf) !== pad) throw new WireError("BAD_TOKEN", "invalid padding nibble");
  }
  r.pos = pos;
  return s;
}

function readBase40(r: ByteReader, maxLength: number): string {
  const n = r.length(maxLength, "packed name");
  const rest = n % 3;
  const bytes = ((n - rest) / 3) * 2 + rest;
  r.need(bytes);
  const buf = r.buf;
  let pos = r.pos;
  let s = "";
  let i = 0;
  for (; i + 3 <= n; i += 3) {
    const v = (buf[pos]! << 8) | buf[pos + 1]!;
    pos += 2;
    if (v >= 64000) throw new WireError("BAD_TOKEN", "invalid packed name group");
    s += NAME_ALPHABET[(v / 1600) | 0]! + NAME_ALPHABET[((v / 40) | 0) % 40]! + NAME_ALPHABET[v % 40]!;
  }
  if (rest === 1) {
    const v = buf[pos++]!;
    if (v >= 40) throw new WireError("BAD_TOKEN", "invalid packed name character");
    s += NAME_ALPHABET[v]!;
  } else if (rest === 2) {
    const v = (buf[pos]! << 8) | buf[pos + 1]!;
    pos += 2;
    if (v >= 1600) throw new WireError("BAD_TOKEN", "invalid packed name pair");
    s += NAME_ALPHABET[(v / 40) | 0]! + NAME_ALPHABET[v % 40]!;
  }
  r.pos = pos;
  return s;
}
