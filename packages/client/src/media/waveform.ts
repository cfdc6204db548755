// Voice-note waveform: 64 values 0..100 (the loudest bucket = 100), each the RMS level of one
// 64th of the recording, from raw PCM or a streamed WAV file (RIFF, PCM 8/16/24/32-bit integer or
// 32-bit float; WAVE_FORMAT_EXTENSIBLE accepted). Anything else yields null: the waveform is optional.
import { WAVEFORM_LENGTH } from "./descriptor.ts";

export interface AudioInfo {
  waveform: Uint8Array;
  durationSec: number;
  sampleRate: number;
  channels: number;
}

/** 64 buckets of RMS level scaled so the loudest is 100; silence gives all zeros. */
function scale(sumSquares: Float64Array, counts: Float64Array): Uint8Array {
  const rms = Array.from(sumSquares, (s, i) => (counts[i]! > 0 ? Math.sqrt(s / counts[i]!) : 0));
  const peak = Math.max(...rms);
  return Uint8Array.from(rms, (r) => (peak > 0 ? Math.round((r / peak) * 100) : 0));
}

/** Waveform of mono samples (Int16 PCM or floats in -1..1). */
export function waveformFromSamples(samples: Int16Array | Float32Array): Uint8Array {
  const sums = new Float64Array(WAVEFORM_LENGTH);
  const counts = new Float64Array(WAVEFORM_LENGTH);
  const full = samples instanceof Int16Array ? 32768 : 1;
  for (let i = 0; i < samples.length; i++) {
    const bucket = Math.min(WAVEFORM_LENGTH - 1, Math.floor((i * WAVEFORM_LENGTH) / samples.length));
    const v = samples[i]! / full;
    sums[bucket]! += v * v;
    counts[bucket]!++;
  }
  return scale(sums, counts);
}

const MAX_HEADER_BYTES = 64 * 1024;

interface Format {
  encoding: "int" | "float";
  channels: number;
  sampleRate: number;
  bytesPerSample: number;
}

/** Feed a WAV file chunk by chunk; finish() gives the waveform, or null if it is not a WAV we read. */
export class WavWaveform {
  private header: Uint8Array = new Uint8Array(0);
  private format: Format | null = null;
  private failed = false;
  private frames = 0;
  private frame = 0;
  private dataLeft = 0;
  private carry: Uint8Array = new Uint8Array(0);
  private readonly sums = new Float64Array(WAVEFORM_LENGTH);
  private readonly counts = new Float64Array(WAVEFORM_LENGTH);

  push(chunk: Uint8Array): void {
    if (this.failed) return;
    if (!this.format) {
      const joined = new Uint8Array(this.header.length + chunk.length);
      joined.set(this.header);
      joined.set(chunk, this.header.length);
      this.header = joined;
      const dataStart = this.parseHeader();
      if (dataStart === null) {
        if (this.header.length > MAX_HEADER_BYTES) this.failed = true;
        return;
      }
      const rest = this.header.subarray(dataStart);
      this.header = new Uint8Array(0);
      this.samples(rest);
      return;
    }
    this.samples(chunk);
  }

  /** Parses the RIFF header; the offset where samples start, or null while more bytes are needed. */
  private parseHeader(): number | null {
    const h = this.header;
    if (h.length < 12) return null;
    const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const tag = (at: number) => String.fromCharCode(h[at]!, h[at + 1]!, h[at + 2]!, h[at + 3]!);
    if (tag(0) !== "RIFF" || tag(8) !== "WAVE") {
      this.failed = true;
      return null;
    }
    let at = 12;
    let format: Format | null = null;
    while (at + 8 <= h.length) {
      const id = tag(at);
      const size = view.getUint32(at + 4, true);
      if (id === "data") {
        if (!format) {
          this.failed = true;
          return null;
        }
        this.format = format;
        const blockAlign = format.channels * format.bytesPerSample;
        this.dataLeft = size;
        this.frames = Math.floor(size / blockAlign);
        return at + 8;
      }
      if (at + 8 + size > h.length) return null;
      if (id === "fmt " && size >= 16) {
        let code = view.getUint16(at + 8, true);
        if (code === 0xfffe && size >= 40) code = view.getUint16(at + 32, true); // extensible: sub-format GUID
        const channels = view.getUint16(at + 10, true);
        const sampleRate = view.getUint32(at + 12, true);
        const bits = view.getUint16(at + 22, true);
        const ok = (code === 1 && [8, 16, 24, 32].includes(bits)) || (code === 3 && bits === 32);
        if (!ok || channels === 0 || sampleRate === 0) {
          this.failed = true;
          return null;
        }
        format = { encoding: code === 3 ? "float" : "int", channels, sampleRate, bytesPerSample: bits / 8 };
      }
      at += 8 + size + (size % 2); // chunks are word-aligned
    }
    return null;
  }

  private samples(input: Uint8Array): void {
    const f = this.format!;
    let bytes = input.subarray(0, Math.min(input.length, this.dataLeft));
    this.dataLeft -= bytes.length;
    if (this.carry.length > 0) {
      const joined = new Uint8Array(this.carry.length + bytes.length);
      joined.set(this.carry);
      joined.set(bytes, this.carry.length);
      bytes = joined;
    }
    const blockAlign = f.channels * f.bytesPerSample;
    const whole = bytes.length - (bytes.length % blockAlign);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at < whole; at += blockAlign) {
      // Mix channels down by their mean; level per frame.
      let v = 0;
      for (let ch = 0; ch < f.channels; ch++) v += this.sample(view, at + ch * f.bytesPerSample, f);
      v /= f.channels;
      const bucket = Math.min(
        WAVEFORM_LENGTH - 1,
        Math.floor((this.frame * WAVEFORM_LENGTH) / Math.max(1, this.frames)),
      );
      this.sums[bucket]! += v * v;
      this.counts[bucket]!++;
      this.frame++;
    }
    this.carry = bytes.slice(whole);
  }

  private sample(view: DataView, at: number, f: Format): number {
    if (f.encoding === "float") return view.getFloat32(at, true);
    switch (f.bytesPerSample) {
      case 1:
        return (view.getUint8(at) - 128) / 128;
      case 2:
        return view.getInt16(at, true) / 32768;
      case 3:
        return ((view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16)) >> 0) / 8388608;
      default:
        return view.getInt32(at, true) / 2147483648;
    }
  }

  finish(): AudioInfo | null {
    if (this.failed || !this.format) return null;
    return {
      waveform: scale(this.sums, this.counts),
      durationSec: Math.round(this.frames / this.format.sampleRate),
      sampleRate: this.format.sampleRate,
      channels: this.format.channels,
    };
  }
}
