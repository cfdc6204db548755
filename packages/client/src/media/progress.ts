// Progress of an upload or download: bytes, rate and time left, reported through a callback at
// most every `intervalMs` (and always at the end), so a UI can draw without being flooded.
export type MediaPhase = "upload" | "download" | "verify" | "decrypt";

export interface MediaProgress {
  phase: MediaPhase;
  bytes: number;
  total: number;
  /** Smoothed bytes per second (0 until measurable). */
  rateBytesPerSec: number;
  /** Seconds left at the current rate; null while unknown. */
  etaSec: number | null;
  done: boolean;
}

export type MediaProgressCallback = (progress: MediaProgress) => void;

export class ProgressMeter {
  private bytes = 0;
  private rate = 0;
  private lastAt: number;
  private lastBytes = 0;

  constructor(
    private readonly phase: MediaPhase,
    private readonly total: number,
    private readonly callback: MediaProgressCallback | undefined,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 100,
  ) {
    this.lastAt = now();
  }

  add(n: number): void {
    this.set(this.bytes + n);
  }

  /** Moves to an absolute position (a resumed transfer starts past zero). */
  set(bytes: number): void {
    this.bytes = bytes;
    if (!this.callback) return;
    const t = this.now();
    if (t - this.lastAt < this.intervalMs) return;
    const instant = ((bytes - this.lastBytes) * 1000) / (t - this.lastAt);
    // Exponential smoothing: steady enough to read, quick enough to follow a stall.
    this.rate = this.rate === 0 ? instant : 0.7 * this.rate + 0.3 * instant;
    this.lastAt = t;
    this.lastBytes = bytes;
    this.emit(false);
  }

  done(): void {
    this.bytes = this.total;
    this.emit(true);
  }

  private emit(done: boolean): void {
    const left = Math.max(0, this.total - this.bytes);
    this.callback?.({
      phase: this.phase,
      bytes: this.bytes,
      total: this.total,
      rateBytesPerSec: Math.max(0, this.rate),
      etaSec: done ? 0 : this.rate > 0 ? left / this.rate : null,
      done,
    });
  }
}
