// CompactMultiMap against a plain Map<K, Set<V>> under random adds and deletes (fast-check).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CompactMultiMap } from "../src/gateway/compact-multimap.ts";

describe("CompactMultiMap", () => {
  it("behaves like a map of sets", () => {
    const op = fc.record({
      add: fc.boolean(),
      key: fc.integer({ min: 0, max: 3 }),
      value: fc.integer({ min: 0, max: 4 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const compact = new CompactMultiMap<number, number>();
        const reference = new Map<number, Set<number>>();
        for (const { add, key, value } of ops) {
          const set = reference.get(key) ?? new Set<number>();
          const before = set.size;
          if (add) {
            set.add(value);
            assert.equal(compact.add(key, value), before);
          } else {
            set.delete(value);
            assert.equal(compact.delete(key, value), set.size);
          }
          if (set.size === 0) reference.delete(key);
          else reference.set(key, set);
          for (let k = 0; k <= 3; k++) {
            const want = [...(reference.get(k) ?? [])].sort();
            assert.deepEqual(compact.values(k).sort(), want);
            assert.equal(compact.count(k), want.length);
          }
        }
      }),
    );
  });
});
