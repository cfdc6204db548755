import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import fc from "fast-check";
import { DeferredAcks } from "../src/deferred-acks.ts";

describe("deferred acks", () => {
  it("sends after the delay, once, with every seq in order", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const sent: number[][] = [];
      const acks = new DeferredAcks((seqs) => sent.push(seqs), { maxDelayMs: 100 });
      acks.add(3);
      mock.timers.tick(60);
      acks.add(4); // does not restart the clock: the first ack waits at most maxDelayMs
      assert.deepEqual(sent, []);
      mock.timers.tick(40);
      assert.deepEqual(sent, [[3, 4]]);
      mock.timers.tick(1000);
      assert.deepEqual(sent, [[3, 4]]);
      assert.equal(acks.pending, 0);
    } finally {
      mock.timers.reset();
    }
  });

  it("sends at once when maxPending wait, and on flush; clear forgets", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const sent: number[][] = [];
      const acks = new DeferredAcks((seqs) => sent.push(seqs), { maxPending: 3 });
      acks.add(1);
      acks.add(2);
      acks.add(3);
      assert.deepEqual(sent, [[1, 2, 3]]);
      acks.add(4);
      acks.flush();
      assert.deepEqual(sent, [[1, 2, 3], [4]]);
      acks.flush(); // nothing waiting: no empty devack
      acks.add(5);
      acks.clear();
      mock.timers.tick(1000);
      assert.deepEqual(sent, [[1, 2, 3], [4]]);
    } finally {
      mock.timers.reset();
    }
  });

  it("never loses, repeats or reorders an ack, and never holds more than maxPending (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant("add" as const), fc.constant("flush" as const), fc.nat({ max: 400 })), {
          maxLength: 200,
        }),
        fc.integer({ min: 1, max: 16 }),
        (ops, maxPending) => {
          mock.timers.enable({ apis: ["setTimeout"] });
          try {
            const sent: number[] = [];
            const acks = new DeferredAcks((seqs) => sent.push(...seqs), { maxDelayMs: 250, maxPending });
            let next = 1;
            let oldestWaitingSince: number | undefined;
            let now = 0;
            for (const op of ops) {
              if (op === "add") {
                if (acks.pending === 0) oldestWaitingSince = now;
                acks.add(next++);
              } else if (op === "flush") acks.flush();
              else {
                mock.timers.tick(op);
                now += op;
              }
              assert.ok(acks.pending < maxPending);
              // nothing waits longer than maxDelayMs
              if (acks.pending > 0) assert.ok(now - oldestWaitingSince! < 250);
            }
            acks.flush();
            assert.deepEqual(
              sent,
              Array.from({ length: next - 1 }, (_, i) => i + 1),
            );
          } finally {
            mock.timers.reset();
          }
        },
      ),
    );
  });
});
