// The Sesame fast path against the plain set comparison it short-cuts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { addressesExactly } from "../src/gateway/sesame.ts";

/** Exactly the expected devices, each once: what the full check in session.ts accepts. */
function reference(
  enc: { to: { user: string; device: number } }[],
  peerDevices: number[],
  ownDevices: number[],
  myDevice: number,
): boolean {
  const expected = new Set([
    ...peerDevices.map((d) => `peer/${d}`),
    ...ownDevices.filter((d) => d !== myDevice).map((d) => `me/${d}`),
  ]);
  const got = enc.map((e) => `${e.to.user}/${e.to.device}`);
  return got.length === new Set(got).size && got.length === expected.size && got.every((k) => expected.has(k));
}

// Small device numbers, so that perturbations often hit an expected device (duplicates, swaps).
const devices = fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { maxLength: 8 });
const entry = fc.record({ user: fc.constantFrom("peer", "me", "other"), device: fc.integer({ min: 1, max: 8 }) });

describe("Sesame device check, fast path", () => {
  it("accepts exactly what the set comparison accepts", () => {
    fc.assert(
      fc.property(
        devices,
        devices,
        fc.integer({ min: 1, max: 8 }),
        fc.uniqueArray(fc.nat({ max: 15 }), { maxLength: 3 }),
        fc.array(entry, { maxLength: 3 }),
        (peer, own, myDevice, drop, add) => {
          // The exact set, with some entries dropped and some added: often the same count again.
          const exact = [
            ...peer.map((device) => ({ user: "peer", device })),
            ...own.filter((d) => d !== myDevice).map((device) => ({ user: "me", device })),
          ];
          const enc = [...exact.filter((_, i) => !drop.includes(i)), ...add].map((to) => ({ to }));
          assert.equal(addressesExactly(enc, "peer", peer, "me", own, myDevice), reference(enc, peer, own, myDevice));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("leaves messages to oneself and very large device sets to the full check", () => {
    const many = Array.from({ length: 32 }, (_, i) => i + 1);
    const enc = many.map((device) => ({ to: { user: "peer", device } }));
    assert.equal(addressesExactly(enc, "peer", many, "me", [1], 1), false);
    assert.equal(addressesExactly([{ to: { user: "me", device: 2 } }], "me", [1, 2], "me", [1, 2], 1), false);
  });
});
