// The orchestrator's side of the Parley generator processes (generator-process.ts): a process
// pool (process-pool.ts) of Parley generator commands, its processes initialized with the server's
// URL and key.
import { fileURLToPath } from "node:url";
import { ProcessPool } from "./process-pool.ts";
import type { Command } from "./protocol.ts";

export const ENTRY = fileURLToPath(new URL("./generator-process.ts", import.meta.url));

export type GeneratorPool = ProcessPool<Command>;

/**
 * Forks `count` generator processes: `bundle` is an esbuild bundle of generator-process.ts run on
 * plain node (see bundle.ts); without it the TypeScript entry runs through tsx.
 */
export async function startGeneratorPool(
  count: number,
  url: string,
  serverKey?: string,
  bundle?: string,
): Promise<GeneratorPool> {
  return ProcessPool.startInitialized<Command>(
    bundle ?? ENTRY,
    count,
    { op: "close" },
    {
      op: "init",
      url,
      ...(serverKey ? { serverKey } : {}),
    },
  );
}
