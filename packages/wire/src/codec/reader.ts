import { WireError } from "../errors.ts";
import type { WireContext } from "./context.ts";
import type { DecodeLimits } from "./limits.ts";

/** Bounds-checked cursor over one encoded stanza, carrying the decode limits and budgets. */
export class ByteReader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;
  readonly limits: DecodeLimits;
  readonly ctx: WireContext | undefined;
  depth = 0;
  items = 0;

  constructor(buf: Uint8Array, limits: DecodeLimits, ctx?: WireContext) {
    this.buf = buf;
    this.pos = 0;
    this.end = buf.length;
    this.limits = limits;
    this.ctx = ctx;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) throw new WireError("TRUNCATED", "unexpected end of stanza");
    return this.buf[this.pos++]!;
  }

  /** Unsigned LEB128 up to 2^53-1; rejects overlong (non-minimal) encodings. */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    const end = this.end;
    if (pos >= end) throw new WireError("TRUNCATED", "unexpected end of stanza in varint");
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let result = b & 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 8; i++) {
      if (pos >= end) throw new WireError("TRUNCATED", "unexpected end of stanza in varint");
      b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (b === 0) throw new WireError("BAD_VARINT", "overlong varint");
        if (result > Number.MAX_SAFE_INTEGER) throw new WireError("BAD_VARINT", "varint exceeds 2^53-1");
        this.pos = pos;
        return result;
      }
      mul *= 0x80;
    }
    throw new WireError("BAD_VARINT", "varint longer than 8 bytes");
  }

  /** A varint that must fit a small count/length; checked against `max` (LIMIT_EXCEEDED). */
  length(max: number, what: string): number {
    const n = this.varint();
    if (n > max) throw new WireError("LIMIT_EXCEEDED", `${what} length ${n} exceeds ${max}`);
    return n;
  }

  /** Number of elements of a list: each element takes at least `minBytes` bytes, so the claim is bounded by input. */
  count(minBytes: number, what: string): number {
    const n = this.length(this.limits.maxListLength, what);
    if (n * minBytes > this.end - this.pos) throw new WireError("TRUNCATED", `${what}: ${n} elements cannot fit`);
    this.spend(n);
    return n;
  }

  /** Charge `n` items against the per-stanza allocation budget. */
  spend(n: number): void {
    this.items += n;
    if (this.items > this.limits.maxItems) throw new WireError("LIMIT_EXCEEDED", "too many items in stanza");
  }

  /** Copy of the next `n` bytes (decoded stanzas never alias the caller's frame buffer). */
  take(n: number): Uint8Array {
    if (n > this.end - this.pos) throw new WireError("TRUNCATED", `need ${n} bytes, ${this.end - this.pos} left`);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  need(n: number): void {
    if (n > this.end - this.pos) throw new WireError("TRUNCATED", `need ${n} bytes, ${this.end - this.pos} left`);
  }

  enter(): void {
    if (++this.depth > this.limits.maxDepth) throw new WireError("LIMIT_EXCEEDED", "nesting too deep");
  }

  leave(): void {
    this.depth--;
  }
}
