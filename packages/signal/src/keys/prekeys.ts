// Prekeys Bob publishes so others can start sessions while he is offline:
// one-time EC prekeys, a signed EC prekey (XEdDSA over its 33-byte serialized
// public key) and KEM prekeys (signed over type byte ‖ key): one last-resort
// key that stays usable, plus one-time KEM keys that are used once.

import { encodePublicKey, generateKeyPair, type KeyPair, xeddsaSign } from "../curve/index.ts";
import type { IdentityKeyPair } from "./identity.ts";
import {
  generateKemPreKeyPair,
  KEM_TYPE_MLKEM1024,
  type KemPreKeyPair,
  type KemType,
  serializeKemPublicKey,
} from "./kem.ts";

/** Ids are unsigned 24-bit in libsignal's clients (Medium.MAX_VALUE); we wrap within that range. */
export const MAX_PREKEY_ID = 0xffffff;

export interface PreKeyRecord {
  id: number;
  keyPair: KeyPair;
}

export interface SignedPreKeyRecord {
  id: number;
  /** Milliseconds since the epoch, for rotation policy. */
  timestamp: number;
  keyPair: KeyPair;
  signature: Uint8Array;
}

export interface KyberPreKeyRecord {
  id: number;
  timestamp: number;
  keyPair: KemPreKeyPair;
  signature: Uint8Array;
  /** A last-resort key is never deleted on use (it is what the server hands out when one-time keys run out). */
  lastResort: boolean;
}

function checkId(id: number): number {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`invalid prekey id ${id}`);
  return id;
}

/** `count` one-time prekeys with consecutive ids from `startId` (wrapping at MAX_PREKEY_ID, skipping 0). */
export function generatePreKeys(startId: number, count: number): PreKeyRecord[] {
  const out: PreKeyRecord[] = [];
  for (let i = 0; i < count; i++) {
    const id = ((startId - 1 + i) % MAX_PREKEY_ID) + 1;
    out.push({ id, keyPair: generateKeyPair() });
  }
  return out;
}

export function generateSignedPreKey(
  identity: IdentityKeyPair,
  id: number,
  timestamp = Date.now(),
): SignedPreKeyRecord {
  const keyPair = generateKeyPair();
  const signature = xeddsaSign(identity.privateKey, encodePublicKey(keyPair.publicKey));
  return { id: checkId(id), timestamp, keyPair, signature };
}

export function generateKyberPreKey(
  identity: IdentityKeyPair,
  id: number,
  options: { lastResort?: boolean; type?: KemType; timestamp?: number } = {},
): KyberPreKeyRecord {
  const keyPair = generateKemPreKeyPair(options.type ?? KEM_TYPE_MLKEM1024);
  const signature = xeddsaSign(identity.privateKey, serializeKemPublicKey(keyPair.type, keyPair.publicKey));
  return {
    id: checkId(id),
    timestamp: options.timestamp ?? Date.now(),
    keyPair,
    signature,
    lastResort: options.lastResort ?? false,
  };
}

/** `count` one-time KEM prekeys with consecutive ids from `startId`. */
export function generateKyberPreKeys(
  identity: IdentityKeyPair,
  startId: number,
  count: number,
  type: KemType = KEM_TYPE_MLKEM1024,
): KyberPreKeyRecord[] {
  const out: KyberPreKeyRecord[] = [];
  for (let i = 0; i < count; i++) {
    out.push(generateKyberPreKey(identity, ((startId - 1 + i) % MAX_PREKEY_ID) + 1, { type }));
  }
  return out;
}
