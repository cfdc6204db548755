import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildCorpus, fuzzDecoders } from "./fuzz/harness.ts";

describe("decoder fuzzing (short run; npm run fuzz:wire runs >= 1M cases)", () => {
  it("20,000 random and mutated inputs: only WireError, and whatever decodes re-encodes", () => {
    const corpus = buildCorpus(42, 300);
    const stats = fuzzDecoders(corpus, 0xc0ffee, 20_000);
    assert.deepStrictEqual(stats.failures, []);
    assert.equal(stats.cases, 20_000);
    // the mutations must exercise both paths, or the fuzzer is not testing anything
    assert.ok(stats.decoded > 100, `decoded ${stats.decoded}`);
    assert.ok(Object.keys(stats.rejected).length >= 4, JSON.stringify(stats.rejected));
  });
});
