import { WireError } from "../errors.ts";

/** Largest stanza the encoder will produce: a safety net against runaway inputs. */
export const MAX_ENCODED_BYTES = 16 * 1024 * 1024;

/**
 * Growable output buffer, reused across encodes (one per module): encoding writes bytes in place
 * and allocates only the final copy handed to the caller.
 */
export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
  }

  reset(): void {
    this.pos = 0;
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (need > MAX_ENCODED_BYTES) throw new WireError("FRAME_TOO_LARGE", `stanza exceeds ${MAX_ENCODED_BYTES} bytes`);
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(b: number): void {
    if (this.pos >= this.buf.length) this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned LEB128; the caller guarantees a non-negative safe integer. */
  varint(n: number): void {
    this.ensure(8);
    const buf = this.buf;
    let pos = this.pos;
    if (n < 0x80) {
      buf[pos++] = n;
    } else if (n <= 0x7fffffff) {
      while (n >= 0x80) {
        buf[pos++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
      buf[pos++] = n;
    } else {
      while (n >= 0x80) {
        buf[pos++] = (n % 0x80) | 0x80;
        n = Math.floor(n / 0x80);
      }
      buf[pos++] = n;
    }
    this.pos = pos;
  }

  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    if (n < 32) {
      const buf = this.buf;
      let pos = this.pos;
      for (let i = 0; i < n; i++) buf[pos++] = bytes[i]!;
      this.pos = pos;
    } else {
      this.buf.set(bytes, this.pos);
      this.pos += n;
    }
  }

  /** A copy of what was written (the internal buffer is reused by the next encode). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
