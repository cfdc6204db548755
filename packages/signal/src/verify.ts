// The only part of @parley/signal the server may import (`@parley/signal/verify`):
// key decoding and signature checks for uploaded prekeys. It must stay free of
// proto/, groups/ and session code (test/architecture.test.ts enforces it).

import { decodePublicKey, xeddsaVerify } from "./curve/index.ts";

export { decodePublicKey, encodePublicKey, xeddsaVerify } from "./curve/index.ts";
export { isSignalError, SignalError, type SignalErrorCode } from "./errors.ts";
export { decodeKemPublicKey } from "./kem/index.ts";

/**
 * Check the XEdDSA signature on a signed prekey (EC 33-byte or KEM type-byte
 * serialized public key, exactly the bytes that were signed) with the owner's
 * 33-byte serialized identity key. False, never a throw, for any bad input.
 */
export function verifySignedPreKey(
  identityKey33: Uint8Array,
  serializedPublicKey: Uint8Array,
  signature: Uint8Array,
): boolean {
  let identityRaw: Uint8Array;
  try {
    identityRaw = decodePublicKey(identityKey33);
  } catch {
    return false;
  }
  if (!(serializedPublicKey instanceof Uint8Array)) return false;
  return xeddsaVerify(identityRaw, serializedPublicKey, signature);
}
