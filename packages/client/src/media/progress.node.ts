// A one-line terminal progress bar for uploads and downloads. It draws only when the stream is
// a TTY (and redraws in place with \r); piped or redirected output gets nothing at all, so
// `parley ... --json | jq` stays clean.
import type { MediaProgress, MediaProgressCallback } from "./progress.ts";

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

export function formatEta(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return "--:--";
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** The bar's text for a given width (exported for tests). */
export function renderProgressLine(label: string, p: MediaProgress, columns: number): string {
  const pct = p.total > 0 ? Math.min(1, p.bytes / p.total) : 1;
  const stats = ` ${String(Math.floor(pct * 100)).padStart(3)}% ${formatBytes(p.bytes)}/${formatBytes(p.total)} ${formatBytes(p.rateBytesPerSec)}/s ETA ${formatEta(p.etaSec)}`;
  const head = `${label} ${p.phase} `;
  const barWidth = Math.max(0, Math.min(40, columns - head.length - stats.length - 3));
  const filled = Math.round(pct * barWidth);
  const bar = barWidth > 0 ? `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]` : "";
  return `${head}${bar}${stats}`.slice(0, Math.max(0, columns - 1));
}

export interface TerminalProgressOptions {
  /** Default: process.stderr (stdout stays for results). */
  stream?: NodeJS.WriteStream;
  label?: string;
}

/** A progress callback that draws a bar on a TTY and is silent otherwise. */
export function terminalProgress(options: TerminalProgressOptions = {}): MediaProgressCallback {
  const stream = options.stream ?? process.stderr;
  const label = options.label ?? "";
  if (!stream.isTTY) return () => undefined;
  return (p) => {
    const line = renderProgressLine(label, p, stream.columns ?? 80);
    stream.write(`\r${line}\x1b[K${p.done ? "\n" : ""}`);
  };
}
