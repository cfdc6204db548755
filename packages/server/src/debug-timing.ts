// Opt-in timing probes for performance work (PARLEY_DEBUG_TIMING=1): named latency samples,
// printed as p50/p99 per process every 2 s on stderr. Off (undefined) by default: callers test
// `timing` before measuring, so the probes cost nothing in normal runs.
const enabled = process.env.PARLEY_DEBUG_TIMING === "1";

export const timing: Map<string, number[]> | undefined = enabled ? new Map() : undefined;

export function record(name: string, ms: number): void {
  if (!timing) return;
  let list = timing.get(name);
  if (!list) {
    list = [];
    timing.set(name, list);
  }
  list.push(ms);
}

if (timing) {
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    record("loop-lag", now - last - 10);
    last = now;
  }, 10).unref();
  const q = (a: number[], p: number) => a[Math.min(a.length - 1, Math.floor(a.length * p))]!;
  setInterval(() => {
    const parts: string[] = [];
    for (const [name, list] of timing) {
      if (list.length === 0) continue;
      list.sort((x, y) => x - y);
      parts.push(`${name} n=${list.length} p50=${q(list, 0.5).toFixed(1)} p99=${q(list, 0.99).toFixed(1)}`);
      list.length = 0;
    }
    if (parts.length > 0) console.error(`[timing ${process.pid}] ${parts.join(" | ")}`);
  }, 2000).unref();
}
