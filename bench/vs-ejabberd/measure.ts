// Server-side measurements from /proc: RSS and open files of a whole process
// tree (ejabberd: beam.smp + erl_child_setup + port programs; Parley: launcher +
// cluster primary + workers). CPU of server vs generators: CpuMeters (../load/scenario.ts).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { processTree } from "../load/cpu.ts";
import { openFds } from "../load/process-pool.ts";

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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
