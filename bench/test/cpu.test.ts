// The /proc CPU meter the benchmarks report with: totals and the per-process breakdown agree.
// No timing thresholds: only what holds however busy the machine is.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { CpuMeter } from "../load/cpu.ts";

describe("CpuMeter", () => {
  it("splits the total over the processes, busiest first, and skips pids that do not exist", async () => {
    const child = spawn(process.execPath, ["-e", "const end = Date.now() + 300; while (Date.now() < end);"]);
    try {
      const pids = [process.pid, child.pid!, 2 ** 22 + 12_345]; // the last is above pid_max's default
      const meter = new CpuMeter(() => pids);
      const start = meter.sample();
      assert.equal(start.cpu.size, 2, "the missing pid is skipped");
      await new Promise((r) => child.once("exit", r)); // exited: it drops out of the next sample
      const used = meter.since(start);
      assert.ok(used.perProcess.length <= 2);
      const sum = used.perProcess.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - used.percent) < 1e-9, "the per-process shares add up to the total");
      for (let i = 1; i < used.perProcess.length; i++) assert.ok(used.perProcess[i - 1]! >= used.perProcess[i]!);
      assert.ok(used.wallMs > 0 && used.cpuMs >= 0);
    } finally {
      child.kill();
    }
  });
});
