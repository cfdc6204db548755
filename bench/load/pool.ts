// The orchestrator's side of the generator processes: forks them, sends
// commands, gathers replies, and always takes them down again.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LoadError } from "./connection.ts";
import type { Command, Reply, Request } from "./protocol.ts";

export const ENTRY = fileURLToPath(new URL("./generator-process.ts", import.meta.url));

class GeneratorProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited = false;

  constructor(readonly child: ChildProcess) {
    child.on("message", (reply: Reply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new LoadError("GENERATOR", reply.error));
    });
    child.on("exit", (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) {
        w.reject(new LoadError("GENERATOR_EXIT", `generator process ${child.pid} exited (${code ?? signal})`));
      }
      this.waiting.clear();
    });
  }

  call<T>(command: Command): Promise<T> {
    if (this.exited) return Promise.reject(new LoadError("GENERATOR_EXIT", "generator process is gone"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, command } satisfies Request);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.call({ op: "close" }).catch(() => {});
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await gone;
    clearTimeout(timer);
  }
}

export class GeneratorPool {
  private constructor(private readonly procs: GeneratorProcess[]) {}

  /** Forks `count` generator processes (TypeScript through tsx, workspace packages from src/). */
  static async start(count: number, url: string, serverKey?: string, bundle?: string): Promise<GeneratorPool> {
    // `bundle`: an esbuild bundle of generator-process.ts run on plain node (see bundle.ts)
    const procs = Array.from(
      { length: count },
      () =>
        new GeneratorProcess(
          fork(bundle ?? ENTRY, [], {
            execArgv: bundle ? [] : ["--conditions=source", "--import", "tsx"],
            stdio: ["ignore", "inherit", "inherit", "ipc"],
          }),
        ),
    );
    const pool = new GeneratorPool(procs);
    try {
      await pool.all(() => ({ op: "init", url, ...(serverKey ? { serverKey } : {}) }));
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

  call<T>(index: number, command: Command): Promise<T> {
    return this.procs[index]!.call<T>(command);
  }

  /** The same kind of command to every process (built per process index), replies in order. */
  all<T>(command: (index: number) => Command): Promise<T[]> {
    return Promise.all(this.procs.map((p, i) => p.call<T>(command(i))));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}
