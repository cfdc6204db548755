// A pool of forked generator processes speaking a command protocol over IPC
// (request id → reply): the Parley generator (through pool.ts), the XMPP generator, the Parley
// density holder. Always takes them down again.
import { type ChildProcess, fork } from "node:child_process";
import { readdirSync } from "node:fs";

/** Sockets per generator process stay below the 20,000 open-file limit (same bound as scenario.ts). */
export const MAX_SOCKETS_PER_PROCESS = 19_000;

export class PoolError extends Error {
  override readonly name = "PoolError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PoolRequest<C> {
  id: number;
  command: C;
}
export type PoolReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

class PooledProcess<C> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited = false;

  constructor(
    readonly child: ChildProcess,
    private readonly closeCommand: C,
  ) {
    child.on("message", (reply: PoolReply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new PoolError("GENERATOR", reply.error));
    });
    child.on("exit", (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) {
        w.reject(new PoolError("GENERATOR_EXIT", `generator process ${child.pid} exited (${code ?? signal})`));
      }
      this.waiting.clear();
    });
  }

  call<T>(command: C): Promise<T> {
    if (this.exited) return Promise.reject(new PoolError("GENERATOR_EXIT", "generator process is gone"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, command } satisfies PoolRequest<C>);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.call(this.closeCommand).catch(() => {});
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 20_000);
    await gone;
    clearTimeout(timer);
  }
}

export class ProcessPool<C> {
  private constructor(private readonly procs: PooledProcess<C>[]) {}

  /**
   * Forks `count` processes of `entry`: a bundle (see bundle.ts) runs on plain node; a .ts entry
   * runs through tsx with workspace packages from src/.
   */
  static start<C>(entry: string, count: number, closeCommand: C): ProcessPool<C> {
    const execArgv = entry.endsWith(".ts") ? ["--conditions=source", "--import", "tsx"] : [];
    // A small young generation: a generator's scavenge pauses land in the latencies it measures.
    // Paced at 7,000 msg/s, V8's default (16 MiB) paused p50 3.3 ms, p90 6.2, max 28 every ~280 ms;
    // 4 MiB pauses p50 1.7 ms, p90 3.5, for ~1% more of a core.
    execArgv.push("--max-semi-space-size=4");
    // Profiling the load generators themselves (is the client the bottleneck, and where?).
    const profileDir = process.env.PARLEY_BENCH_GENERATOR_CPU_PROF;
    if (profileDir) execArgv.push("--cpu-prof", `--cpu-prof-dir=${profileDir}`);
    // Extra node flags (e.g. PARLEY_BENCH_GENERATOR_NODE_FLAGS=--trace-gc).
    execArgv.push(...(process.env.PARLEY_BENCH_GENERATOR_NODE_FLAGS ?? "").split(" ").filter((f) => f !== ""));
    return new ProcessPool(
      Array.from(
        { length: count },
        () =>
          new PooledProcess<C>(
            fork(entry, [], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] }),
            closeCommand,
          ),
      ),
    );
  }

  /** `start`, then sends every process `init` and waits for all; on a failure stops them all. */
  static async startInitialized<C>(entry: string, count: number, closeCommand: C, init: C): Promise<ProcessPool<C>> {
    const pool = ProcessPool.start(entry, count, closeCommand);
    try {
      await pool.all(() => init);
    } catch (err) {
      await pool.stop();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.procs.length;
  }

  pids(): number[] {
    return this.procs.map((p) => p.child.pid).filter((p): p is number => p !== undefined);
  }

  call<T>(index: number, command: C): Promise<T> {
    return this.procs[index]!.call<T>(command);
  }

  all<T>(command: (index: number) => C): Promise<T[]> {
    return Promise.all(this.procs.map((p, i) => p.call<T>(command(i))));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}

/** The child's side: runs each command through `run`, replies, exits when the parent goes away. */
export function servePoolCommands<C extends { op: string }>(run: (command: C) => Promise<unknown>): void {
  process.on("message", (message: PoolRequest<C>) => {
    run(message.command).then(
      (result) => process.send?.({ id: message.id, ok: true, result: result ?? null } satisfies PoolReply),
      (err: unknown) =>
        process.send?.({
          id: message.id,
          ok: false,
          error:
            err instanceof Error
              ? `${err.name}${"code" in err ? ` ${String(err.code)}` : ""}: ${err.message}`
              : String(err),
        } satisfies PoolReply),
    );
  });
  process.on("disconnect", () => process.exit(0));
}

/** Open file descriptors of this process (Linux), to stay under the 20,000 limit. */
export function openFds(pid: number | "self" = "self"): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}
