// The server's half of Sesame (Signal's multi-device session management): a message must carry one
// ciphertext for every current device of the recipient and of the sender's other devices.

/**
 * The common case of the Sesame check without building sets: `enc` names every device of the peer
 * and every other device of the sender exactly once, and nothing else (at most 31 devices each;
 * past that, or on any doubt, false and the full comparison decides).
 */
export function addressesExactly(
  enc: readonly { to: { user: string; device: number } }[],
  peerName: string,
  peerDevices: readonly number[],
  myName: string,
  ownDevices: readonly number[],
  myDevice: number,
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
