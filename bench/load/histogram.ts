// Latency histogram with logarithmic buckets (1% wide from 10 µs up to ~100 s):
// constant memory whatever the message count, mergeable across processes.

const MIN_MS = 0.01;
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = 1700;

export class Histogram {
  readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  max = 0;

  record(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.counts[i]!++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /** The value below which `p` (0..1) of the samples fall, within 1%; NaN without samples. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, MIN_MS * GROWTH ** i);
    }
    return this.max;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.max = Math.max(this.max, other.max);
  }

  /** Sparse form for IPC: [bucket, count] pairs. */
  toJSON(): { buckets: [number, number][]; max: number } {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!]);
    return { buckets, max: this.max };
  }

  static fromJSON(json: { buckets: [number, number][]; max: number }): Histogram {
    const h = new Histogram();
    for (const [i, n] of json.buckets) {
      h.counts[i] = n;
      h.count += n;
    }
    h.max = json.max;
    return h;
  }
}

export type HistogramJSON = ReturnType<Histogram["toJSON"]>;
