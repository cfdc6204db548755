// Minimal bounded binary reader/writer for Parley's own storage formats
// (session records, prekey records, bundles). Every read is bounds-checked
// and failures raise a typed SignalError with the code the caller chooses.

import { SignalError, type SignalErrorCode } from "../errors.ts";

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(value: number): this {
    this.ensure(1);
    this.buf[this.pos++] = value;
    return this;
  }

  u16(value: number): this {
    this.ensure(2);
    this.view.setUint16(this.pos, value);
    this.pos += 2;
    return this;
  }

  u32(value: number): this {
    this.ensure(4);
    this.view.setUint32(this.pos, value);
    this.pos += 4;
    return this;
  }

  /** Fixed-length bytes (the reader must know the length). */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** u32 length prefix then the bytes. */
  bytes32(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  /** u16 length prefix then the bytes. */
  bytes16(bytes: Uint8Array): this {
    if (bytes.length > 0xffff) throw new RangeError("field longer than 65535 bytes");
    return this.u16(bytes.length).raw(bytes);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

export class ByteReader {
  private pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly errorCode: SignalErrorCode,
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(reason: string): never {
    throw new SignalError(this.errorCode, `${this.what}: ${reason}`);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) this.fail("truncated");
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Exactly `length` bytes, copied (so the result does not pin the input). */
  raw(length: number): Uint8Array {
    this.need(length);
    const out = this.buf.slice(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  bytes32(maxLength: number): Uint8Array {
    const length = this.u32();
    if (length > maxLength) this.fail(`field of ${length} bytes exceeds ${maxLength}`);
    return this.raw(length);
  }

  bytes16(maxLength = 0xffff): Uint8Array {
    const length = this.u16();
    if (length > maxLength) this.fail(`field of ${length} bytes exceeds ${maxLength}`);
    return this.raw(length);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  end(): void {
    if (this.pos !== this.buf.length) this.fail("trailing bytes");
  }
}
