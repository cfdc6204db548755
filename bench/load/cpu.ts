// CPU time of processes from /proc (Linux): utime + stime of /proc/<pid>/stat,
// for single processes (the generator processes) and whole process trees (the
// server: launcher, cluster primary and its workers).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface Stat {
  ppid: number;
  /** user + system CPU, ms */
  cpuMs: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // exited
  }
  // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] = state (field 3), so field n is fields[n - 3]
  const ppid = Number(fields[1]);
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { ppid, cpuMs: (ticks * 1000) / clockTicks() };
}

/** `root` and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(Number(name));
    else children.set(st.ppid, [Number(name)]);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU ms used so far by each pid (missing pids are skipped). */
export function cpuByPid(pids: readonly number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    const st = readStat(pid);
    if (st) m.set(pid, st.cpuMs);
  }
  return m;
}

/** A CPU meter over a set of processes: `sample()` now, `since(earlier)` = CPU ms used in between. */
export class CpuMeter {
  constructor(private readonly pids: () => readonly number[]) {}

  sample(): { at: number; cpu: Map<number, number> } {
    return { at: performance.now(), cpu: cpuByPid(this.pids()) };
  }

  /**
   * CPU ms used since `earlier` and the same as % of one core over the wall time between the
   * samples; `perProcess`: each process's % of one core, busiest first (a single saturated process,
   * e.g. one worker or one generator at ~100%, hides in a total well under the core count).
   */
  since(earlier: { at: number; cpu: Map<number, number> }): {
    cpuMs: number;
    wallMs: number;
    percent: number;
    perProcess: number[];
  } {
    const now = this.sample();
    const wallMs = now.at - earlier.at;
    const pct = (ms: number) => (wallMs > 0 ? (ms / wallMs) * 100 : 0);
    let cpuMs = 0;
    const perProcess: number[] = [];
    for (const [pid, ms] of now.cpu) {
      const used = ms - (earlier.cpu.get(pid) ?? 0); // a process started in between counts from 0
      cpuMs += used;
      perProcess.push(pct(used));
    }
    perProcess.sort((a, b) => b - a);
    return { cpuMs, wallMs, percent: pct(cpuMs), perProcess };
  }
}

/** Resident memory (VmRSS) of the processes, in KiB; exited ones count 0. */
export function rssKiB(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]);
    } catch {
      // exited
    }
  }
  return total;
}
