// Server-side measurements from /proc: RSS and open files of a whole process
// tree (ejabberd: beam.smp + erl_child_setup + port programs; Parley: launcher +
// cluster primary + workers), and CPU of the server tree vs the generators.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { CpuMeter, processTree } from "../load/cpu.ts";
import { openFds } from "../load/process-pool.ts";
import type { CpuPoint } from "../load/scenario.ts";

let pageSize: number | undefined;
function pageBytes(): number {
  if (pageSize === undefined) {
    try {
      pageSize = Number(execFileSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).trim()) || 4096;
    } catch {
      pageSize = 4096;
    }
  }
  return pageSize;
}

/** Resident bytes of one process (0 if it is gone). */
export function rssBytes(pid: number): number {
  try {
    const statm = readFileSync(`/proc/${pid}/statm`, "utf8").split(" ");
    return Number(statm[1]) * pageBytes();
  } catch {
    return 0;
  }
}

export interface TreeMemory {
  processes: number;
  rssBytes: number;
  /** Most open files in any one process of the tree (the per-process limit is 20,000). */
  maxFds: number;
}

export function treeMemory(root: number): TreeMemory {
  const pids = processTree(root);
  let rss = 0;
  let maxFds = 0;
  for (const pid of pids) {
    rss += rssBytes(pid);
    maxFds = Math.max(maxFds, openFds(pid));
  }
  return { processes: pids.length, rssBytes: rss, maxFds };
}

/** CPU of the server tree and of the generator processes over the same window. */
export class Meters {
  private readonly server: CpuMeter;
  private readonly generator: CpuMeter;
  constructor(serverRoot: number, generatorPids: () => readonly number[]) {
    this.server = new CpuMeter(() => processTree(serverRoot));
    this.generator = new CpuMeter(generatorPids);
  }

  start() {
    return { server: this.server.sample(), generator: this.generator.sample() };
  }

  stop(started: ReturnType<Meters["start"]>): CpuPoint {
    const s = this.server.since(started.server);
    const g = this.generator.since(started.generator);
    return {
      serverPercent: s.percent,
      generatorPercent: g.percent,
      serverCpuMs: s.cpuMs,
      generatorCpuMs: g.cpuMs,
      wallMs: s.wallMs,
    };
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
