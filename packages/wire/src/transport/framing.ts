/**
 * Stream framing (TCP): every frame is a 2-byte big-endian length followed by that many bytes (one
 * Noise message, which Noise caps at 65,535 bytes, so 2 bytes suffice). The decoder checks the length
 * against the limit as soon as the prefix is readable, before buffering the body, and gathers a
 * frame split over many chunks with one copy (no quadratic re-concatenation).
 */
import { WireError } from "../errors.ts";

export const FRAME_HEADER_SIZE = 2;

/** Fills the 2-byte length header of a frame whose first 2 bytes were left free. */
export function writeFrameHeader(frame: Uint8Array): void {
  const length = frame.length - FRAME_HEADER_SIZE;
  frame[0] = length >>> 8;
  frame[1] = length & 0xff;
}

export class FrameDecoder {
  /** Largest body accepted; may be changed between frames (handshake vs. session limits). */
  maxFrameSize: number;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Bytes needed in `chunks` before parsing can make progress. */
  private needed = FRAME_HEADER_SIZE;
  private stopped = false;

  constructor(maxFrameSize: number) {
    this.maxFrameSize = maxFrameSize;
  }

  /** Stops delivering frames (the consumer closed); later pushes are ignored. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.buffered = 0;
  }

  /** Stops and returns the bytes of an incomplete frame (to continue the stream elsewhere). */
  take(): Uint8Array {
    const out = new Uint8Array(this.buffered);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    this.stop();
    return out;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds bytes; calls `onFrame` for each complete frame body. Throws WireError on a bad prefix. */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    if (this.stopped) return;
    let data = chunk;
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered < this.needed) return;
      data = new Uint8Array(this.buffered);
      let offset = 0;
      for (const c of this.chunks) {
        data.set(c, offset);
        offset += c.length;
      }
      this.chunks = [];
      this.buffered = 0;
    }
    let offset = 0;
    for (;;) {
      const available = data.length - offset;
      if (available < FRAME_HEADER_SIZE) {
        this.needed = FRAME_HEADER_SIZE;
        break;
      }
      const length = (data[offset]! << 8) | data[offset + 1]!;
      if (length > this.maxFrameSize) {
        this.stop();
        throw new WireError("FRAME_TOO_LARGE", `frame of ${length} bytes exceeds the limit of ${this.maxFrameSize}`);
      }
      if (length === 0) {
        this.stop();
        throw new WireError("PROTOCOL_VIOLATION", "empty frame");
      }
      if (available < FRAME_HEADER_SIZE + length) {
        this.needed = FRAME_HEADER_SIZE + length;
        break;
      }
      const start = offset + FRAME_HEADER_SIZE;
      offset = start + length;
      onFrame(data.subarray(start, offset));
      if (this.stopped) return;
    }
    if (offset < data.length) {
      this.chunks = [data.subarray(offset)];
      this.buffered = data.length - offset;
    }
  }
}
