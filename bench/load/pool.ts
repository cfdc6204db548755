// The orchestrator's side of the Parley generator processes (generator-process.ts): a process
// pool (process-pool.ts) whose processes are initialized with the server's URL and key.
import { fileURLToPath } from "node:url";
import { ProcessPool } from "./process-pool.ts";
import type { Command } from "./protocol.ts";

export const ENTRY = fileURLToPath(new URL("./generator-process.ts", import.meta.url));

export class GeneratorPool {
  private constructor(private readonly pool: ProcessPool<Command>) {}

  /**
   * Forks `count` generator processes: `bundle` is an esbuild bundle of generator-process.ts run on
   * plain node (see bundle.ts); without it the TypeScript entry runs through tsx.
   */
  static async start(count: number, url: string, serverKey?: string, bundle?: string): Promise<GeneratorPool> {
    const pool = ProcessPool.start<Command>(bundle ?? ENTRY, count, { op: "close" });
    try {
      await pool.all(() => ({ op: "init", url, ...(serverKey ? { serverKey } : {}) }));
    } catch (err) {
      await pool.stop();
      throw err;
    }
    return new GeneratorPool(pool);
  }

  get size(): number {
    return this.pool.size;
  }

  pids(): number[] {
    return this.pool.pids();
  }

  call<T>(index: number, command: Command): Promise<T> {
    return this.pool.call<T>(index, command);
  }

  /** The same kind of command to every process (built per process index), replies in order. */
  all<T>(command: (index: number) => Command): Promise<T[]> {
    return this.pool.all<T>(command);
  }

  stop(): Promise<void> {
    return this.pool.stop();
  }
}
