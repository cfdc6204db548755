// A deliberately small protobuf (proto2 wire format) codec.
//
// Why hand-written rather than protobufjs / @bufbuild/protobuf: Signal's wire
// formats are four tiny flat messages (uint32 and bytes fields only, no nesting
// we need to interpret), so a schema table covers them in ~200 lines; the
// package stays dependency-free beyond the audited noble crypto libraries; and
// the decoder can be bounded exactly the way a hostile-input parser must be:
// a size cap checked before any work, every length checked against the
// remaining buffer before slicing (no allocation driven by attacker-chosen
// lengths), varints capped at 10 bytes, group nesting capped, and every
// failure reported as SignalError("INVALID_MESSAGE").
//
// Encoding writes fields in ascending field-number order, as prost (libsignal's
// protobuf library) does, so re-encoding a libsignal message reproduces it byte
// for byte. Decoding is order-independent, last value wins for repeated
// scalars (protobuf semantics) and unknown fields of every wire type are skipped.

import { SignalError } from "../errors.ts";

export type ProtoFieldType = "uint32" | "uint64" | "bytes";
export type FieldSpec = { readonly field: number; readonly type: ProtoFieldType };
export type ProtoSchema = Readonly<Record<string, FieldSpec>>;
export type ProtoValues<S extends ProtoSchema> = {
  [K in keyof S]?: S[K]["type"] extends "bytes" ? Uint8Array : number;
};

/** Default cap on any decoded Signal wire message (bytes). */
export const DEFAULT_MAX_MESSAGE_SIZE = 1 << 20;
const MAX_VARINT_BYTES = 10;
const MAX_FIELD_NUMBER = 2 ** 29 - 1;
const MAX_GROUP_DEPTH = 16;
const UINT32_MAX = 0xffffffff;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;

function invalid(reason: string): SignalError {
  return new SignalError("INVALID_MESSAGE", `protobuf: ${reason}`);
}

// ---------- encoding ----------

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

function writeVarint(out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[offset++] = value;
  return offset;
}

function checkInteger(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be an integer in [0, ${max}], got ${value}`);
  }
}

/**
 * Encode `values` with `schema`. Undefined fields are omitted; defined ones
 * (including 0 and empty bytes) are written, matching proto2 `optional` with
 * an explicit value, which is how libsignal fills its messages.
 */
export function encodeProto<S extends ProtoSchema>(schema: S, values: ProtoValues<S>): Uint8Array {
  const entries = Object.entries(schema)
    .map(([name, spec]) => ({ spec, value: (values as Record<string, number | Uint8Array | undefined>)[name] }))
    .filter((e) => e.value !== undefined)
    .sort((a, b) => a.spec.field - b.spec.field);

  let size = 0;
  for (const { spec, value } of entries) {
    const wireType = spec.type === "bytes" ? WIRE_LENGTH_DELIMITED : WIRE_VARINT;
    size += varintLength(spec.field * 8 + wireType);
    if (spec.type === "bytes") {
      if (!(value instanceof Uint8Array)) throw new TypeError(`field ${spec.field} must be bytes`);
      size += varintLength(value.length) + value.length;
    } else {
      if (typeof value !== "number") throw new TypeError(`field ${spec.field} must be a number`);
      checkInteger(value, spec.type === "uint32" ? UINT32_MAX : Number.MAX_SAFE_INTEGER, `field ${spec.field}`);
      size += varintLength(value);
    }
  }

  const out = new Uint8Array(size);
  let offset = 0;
  for (const { spec, value } of entries) {
    if (spec.type === "bytes") {
      const bytes = value as Uint8Array;
      offset = writeVarint(out, offset, spec.field * 8 + WIRE_LENGTH_DELIMITED);
      offset = writeVarint(out, offset, bytes.length);
      out.set(bytes, offset);
      offset += bytes.length;
    } else {
      offset = writeVarint(out, offset, spec.field * 8 + WIRE_VARINT);
      offset = writeVarint(out, offset, value as number);
    }
  }
  return out;
}

// ---------- decoding ----------

/** A cursor over a protobuf buffer whose every read is bounds-checked. */
export class ProtoReader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  /**
   * Read one varint (at most 10 bytes, value < 2^64). The result is exact up
   * to 2^53; larger values come back >= 2^53 (callers reject them as out of range).
   */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.offset >= this.bytes.length) throw invalid("truncated varint");
      const byte = this.bytes[this.offset++]!;
      if (i === MAX_VARINT_BYTES - 1 && byte > 1) throw invalid("varint exceeds 64 bits");
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw invalid("varint longer than 10 bytes");
  }

  take(length: number): Uint8Array {
    if (length > this.bytes.length - this.offset) throw invalid("length exceeds the remaining buffer");
    const out = this.bytes.slice(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  skip(length: number): void {
    if (length > this.bytes.length - this.offset) throw invalid("field runs past the end of the buffer");
    this.offset += length;
  }

  /** Read a field key; returns [fieldNumber, wireType]. */
  key(): [number, number] {
    const key = this.varint();
    if (key > UINT32_MAX) throw invalid("field key out of range");
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0 || field > MAX_FIELD_NUMBER) throw invalid(`invalid field number ${field}`);
    return [field, wireType];
  }

  /** Skip the value of an unknown field of any wire type (groups with bounded nesting). */
  skipValue(field: number, wireType: number, depth = 0): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.skip(8);
        return;
      case WIRE_LENGTH_DELIMITED:
        this.skip(this.length());
        return;
      case WIRE_FIXED32:
        this.skip(4);
        return;
      case WIRE_START_GROUP: {
        if (depth >= MAX_GROUP_DEPTH) throw invalid("groups nested too deeply");
        for (;;) {
          if (this.done) throw invalid("unterminated group");
          const [innerField, innerType] = this.key();
          if (innerType === WIRE_END_GROUP) {
            if (innerField !== field) throw invalid("mismatched end-group");
            return;
          }
          this.skipValue(innerField, innerType, depth + 1);
        }
      }
      case WIRE_END_GROUP:
        throw invalid("unexpected end-group");
      default:
        throw invalid(`invalid wire type ${wireType}`);
    }
  }

  length(): number {
    const length = this.varint();
    if (length > this.bytes.length - this.offset) throw invalid("length exceeds the remaining buffer");
    return length;
  }
}

/**
 * Decode a flat message described by `schema`. Rejects: input over `maxSize`,
 * truncated or over-long varints, lengths beyond the buffer, a known field with
 * the wrong wire type, uint32 values >= 2^32 and uint64 values > 2^53 - 1
 * (stricter than prost, which truncates; Signal never sends such values).
 */
export function decodeProto<S extends ProtoSchema>(
  bytes: Uint8Array,
  schema: S,
  maxSize: number = DEFAULT_MAX_MESSAGE_SIZE,
): ProtoValues<S> {
  if (!(bytes instanceof Uint8Array)) throw invalid("input is not bytes");
  if (bytes.length > maxSize) throw invalid(`message of ${bytes.length} bytes exceeds the ${maxSize}-byte limit`);
  const byNumber = new Map<number, [string, FieldSpec]>();
  for (const [name, spec] of Object.entries(schema)) byNumber.set(spec.field, [name, spec]);

  const result: Record<string, number | Uint8Array> = {};
  const reader = new ProtoReader(bytes);
  while (!reader.done) {
    const [field, wireType] = reader.key();
    const known = byNumber.get(field);
    if (known === undefined) {
      reader.skipValue(field, wireType);
      continue;
    }
    const [name, spec] = known;
    if (spec.type === "bytes") {
      if (wireType !== WIRE_LENGTH_DELIMITED) throw invalid(`field ${field} has wire type ${wireType}, expected 2`);
      result[name] = reader.take(reader.length());
    } else {
      if (wireType !== WIRE_VARINT) throw invalid(`field ${field} has wire type ${wireType}, expected 0`);
      const value = reader.varint();
      const max = spec.type === "uint32" ? UINT32_MAX : Number.MAX_SAFE_INTEGER;
      if (value > max) throw invalid(`field ${field} value out of range for ${spec.type}`);
      result[name] = value;
    }
  }
  return result as ProtoValues<S>;
}
