import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isWireError } from "../src/errors.ts";
import { DEFAULT_LIMITS, resolveLimits } from "../src/transport/index.ts";

describe("transport limits", () => {
  it("fills defaults and checks the bounds", () => {
    assert.deepEqual(resolveLimits(undefined), DEFAULT_LIMITS);
    assert.equal(resolveLimits({ idleTimeoutMs: 5 }).idleTimeoutMs, 5);
    assert.equal(resolveLimits({ idleTimeoutMs: 5 }).maxFrameSize, DEFAULT_LIMITS.maxFrameSize);
    for (const bad of [{ maxFrameSize: 10 }, { maxHandshakeFrameSize: 70_000 }, { rekeyAfterRecords: 0 }]) {
      assert.throws(
        () => resolveLimits(bad),
        (e) => isWireError(e) && e.code === "LIMIT_EXCEEDED",
      );
    }
  });

  it("one shared, frozen result per options object (every session keeps a reference)", () => {
    const options = { idleTimeoutMs: 1_000 };
    const a = resolveLimits(options);
    assert.equal(resolveLimits(options), a);
    assert.equal(resolveLimits(undefined), resolveLimits(undefined));
    assert.notEqual(resolveLimits({ idleTimeoutMs: 1_000 }), a, "another options object resolves on its own");
    assert.ok(Object.isFrozen(a));
    assert.throws(() => {
      (a as { idleTimeoutMs: number }).idleTimeoutMs = 1;
    }, TypeError);
  });
});
