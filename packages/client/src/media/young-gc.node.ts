// Bounded memory for byte-shoveling loops. node:crypto's update() returns a fresh buffer per call
// (there is no "into this buffer" variant), and V8 frees such buffers only when a young-generation
// collection runs, which it triggers after ~32 MiB of them piled up: over a 1 GiB transfer that
// garbage was 35-40 MiB of peak RSS. A young-generation collection costs well under a millisecond
// when almost nothing survives, so the media loops ask for one every few MiB.
//
// `gc` is not exposed by default. The same two calls Jest uses to get it: enable --expose-gc,
// read `gc` from a fresh context, disable the flag again (so later contexts are unaffected).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Collect = (options: { type: "minor" | "major" }) => void;

/** Bytes of garbage after which a transfer loop collects: well below V8's own ~32 MiB trigger. */
export const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;

let collect: Collect | null | undefined;

function collector(): Collect | null {
  if (collect !== undefined) return collect;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === "function") {
    collect = exposed as Collect;
    return collect;
  }
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    collect = typeof gc === "function" ? (gc as Collect) : null;
  } catch {
    collect = null; // a runtime without it: memory is then bounded by V8's own trigger only
  } finally {
    setFlagsFromString("--no-expose-gc");
  }
  return collect;
}

/** Counts the bytes a loop allocated and runs a young-generation collection every COLLECT_EVERY_BYTES. */
export class GarbageBudget {
  private since = 0;

  add(bytes: number): void {
    this.since += bytes;
    if (this.since < COLLECT_EVERY_BYTES) return;
    this.since = 0;
    collector()?.({ type: "minor" });
  }
}
