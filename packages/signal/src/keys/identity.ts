// Long-term identity and registration id.

import { getCrypto } from "../crypto/index.ts";
import { encodePublicKey, generateKeyPair, type KeyPair } from "../curve/index.ts";

/** The device's long-term X25519 key pair (raw 32-byte keys); its public form is 0x05 ‖ publicKey. */
export type IdentityKeyPair = KeyPair;

export function generateIdentityKeyPair(): IdentityKeyPair {
  return generateKeyPair();
}

/** 33-byte serialized identity public key (what peers trust, fingerprint and MAC). */
export function identityPublicKey(identity: IdentityKeyPair): Uint8Array {
  return encodePublicKey(identity.publicKey);
}

/** A random registration id in 1..16380, libsignal's range (14 bits, 0 excluded). */
export function generateRegistrationId(): number {
  const bytes = getCrypto().randomBytes(2);
  const value = (((bytes[0] as number) << 8) | (bytes[1] as number)) & 0x3fff;
  return (value % 16380) + 1;
}
