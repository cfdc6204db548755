// The Sesame fast path against the full comparison it short-cuts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { addressesExactly, deviceMismatches } from "../src/gateway/sesame.ts";

const sets = (peerName: string, peerDevices: number[], myName: string, ownDevices: number[], myDevice: number) => ({
  peerName,
  peerDevices,
  myName,
  ownDevices,
  myDevice,
});

/** The full comparison accepts: no device twice, none missing, none extra. */
function reference(
  enc: { to: { user: string; device: number } }[],
  peerDevices: number[],
  ownDevices: number[],
  myDevice: number,
): boolean {
  const result = deviceMismatches(enc, sets("peer", peerDevices, "me", ownDevices, myDevice));
  return result !== "duplicate" && result.length === 0;
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
          assert.equal(
            addressesExactly(enc, sets("peer", peer, "me", own, myDevice)),
            reference(enc, peer, own, myDevice),
          );
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("names what is missing and extra per user, and a device named twice", () => {
    const to = (user: string, device: number) => ({ to: { user, device } });
    assert.deepEqual(
      deviceMismatches([to("peer", 1), to("peer", 3), to("me", 2)], sets("peer", [1, 2], "me", [1, 2], 1)),
      [{ user: "peer", missing: [2], extra: [3], stale: [] }],
    );
    assert.deepEqual(deviceMismatches([to("peer", 1)], sets("peer", [1], "me", [1, 2], 1)), [
      { user: "me", missing: [2], extra: [], stale: [] },
    ]);
    assert.equal(deviceMismatches([to("peer", 1), to("peer", 1)], sets("peer", [1], "me", [1], 1)), "duplicate");
    // to oneself: every other own device, not the sending one
    assert.deepEqual(deviceMismatches([to("me", 2)], sets("me", [1, 2], "me", [1, 2], 1)), []);
  });

  it("leaves messages to oneself and very large device sets to the full check", () => {
    const many = Array.from({ length: 32 }, (_, i) => i + 1);
    const enc = many.map((device) => ({ to: { user: "peer", device } }));
    assert.equal(addressesExactly(enc, sets("peer", many, "me", [1], 1)), false);
    assert.equal(addressesExactly([{ to: { user: "me", device: 2 } }], sets("me", [1, 2], "me", [1, 2], 1)), false);
  });
});
