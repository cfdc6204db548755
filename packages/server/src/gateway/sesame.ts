// The server's half of Sesame (Signal's multi-device session management): a message must carry one
// ciphertext for every current device of the recipient and of the sender's other devices.
import type { DeviceMismatch } from "@parley/wire";

type Addressed = readonly { to: { user: string; device: number } }[];

/** Whom a message must reach: every device of the peer, and the sender's own other devices. */
export interface ExpectedDevices {
  peerName: string;
  peerDevices: readonly number[];
  myName: string;
  /** All of the sender's devices, the sending one included. */
  ownDevices: readonly number[];
  myDevice: number;
}

/**
 * The common case of the Sesame check without building sets: `enc` names every device of the peer
 * and every other device of the sender exactly once, and nothing else (at most 31 devices each;
 * past that, or on any doubt, false and the full comparison decides).
 */
export function addressesExactly(
  enc: Addressed,
  { peerName, peerDevices, myName, ownDevices, myDevice }: ExpectedDevices,
): boolean {
  if (peerName === myName || peerDevices.length > 31 || ownDevices.length > 31) return false;
  if (enc.length !== peerDevices.length + ownDevices.length - (ownDevices.includes(myDevice) ? 1 : 0)) return false;
  let peerSeen = 0;
  let ownSeen = 0;
  for (const e of enc) {
    const user = e.to.user;
    const device = e.to.device;
    if (user === peerName) {
      const i = peerDevices.indexOf(device);
      if (i < 0 || ((peerSeen >>> i) & 1) === 1) return false;
      peerSeen |= 1 << i;
    } else if (user === myName && device !== myDevice) {
      const i = ownDevices.indexOf(device);
      if (i < 0 || ((ownSeen >>> i) & 1) === 1) return false;
      ownSeen |= 1 << i;
    } else return false;
  }
  return true;
}

/**
 * The full comparison: per user, the devices missing from `enc` and those it names that do not
 * exist (for the client to fix its device cache), or "duplicate" if it names a device twice.
 */
export function deviceMismatches(
  enc: Addressed,
  { peerName, peerDevices, myName, ownDevices, myDevice }: ExpectedDevices,
): DeviceMismatch[] | "duplicate" {
  const expected = new Map<string, Set<number>>();
  expected.set(peerName, new Set(peerDevices));
  if (peerName === myName) expected.get(myName)!.delete(myDevice);
  else expected.set(myName, new Set(ownDevices.filter((d) => d !== myDevice)));

  const addressed = new Map<string, Set<number>>();
  for (const e of enc) {
    let set = addressed.get(e.to.user);
    if (!set) {
      set = new Set();
      addressed.set(e.to.user, set);
    }
    if (set.has(e.to.device)) return "duplicate";
    set.add(e.to.device);
  }
  const mismatches: DeviceMismatch[] = [];
  for (const user of new Set([...expected.keys(), ...addressed.keys()])) {
    const want = expected.get(user) ?? new Set<number>();
    const got = addressed.get(user) ?? new Set<number>();
    const missing = [...want].filter((d) => !got.has(d)).sort((a, b) => a - b);
    const extra = [...got].filter((d) => !want.has(d)).sort((a, b) => a - b);
    if (missing.length > 0 || extra.length > 0) mismatches.push({ user, missing, extra, stale: [] });
  }
  return mismatches;
}
