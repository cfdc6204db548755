// The worker mesh between cluster workers: a call that reaches a worker before its storage serves
// (a peer came up sooner, as after a restart of the whole server) waits instead of failing.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { WorkerMesh } from "../src/routing/mesh.ts";
import type { ShardOp } from "../src/storage/sharded-storage.ts";

describe("worker mesh", () => {
  it("answers calls that arrive before serve(), in order, once the shard serves", async () => {
    const id = `test-${randomUUID()}`;
    const early = new WorkerMesh(0, 2, id);
    const late = new WorkerMesh(1, 2, id);
    await early.listen();
    await late.listen();
    try {
      early.serve(async () => "unused");
      const ack = (n: number): ShardOp => ({ op: "ack", accountId: "a", deviceId: 1, seqs: [n] });
      const answers = [1, 2, 3].map((n) => early.call(1, ack(n)));
      await new Promise((r) => setTimeout(r, 100)); // the calls arrive at `late`, which does not serve yet
      const seen: number[] = [];
      late.serve(async (op) => {
        if (op.op !== "ack") throw new Error("unexpected op");
        seen.push(op.seqs[0]!);
        return op.seqs[0]! * 10;
      });
      assert.deepEqual(await Promise.all(answers), [10, 20, 30]);
      assert.deepEqual(seen, [1, 2, 3]);
    } finally {
      await early.close();
      await late.close();
    }
  });
});
