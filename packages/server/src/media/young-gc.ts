// Bounded memory for uploads. node:http hands every chunk of a request body over in a fresh
// buffer, and V8 frees such buffers only when a young-generation collection runs, which it
// triggers after ~32 MiB of them piled up: during a large upload that garbage was a third of the
// server's peak RSS. A young-generation collection costs well under a millisecond when almost
// nothing survives, so the upload path asks for one every few MiB (the same code as the client's
// packages/client/src/media/young-gc.node.ts).
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
