// Storage the session layer needs, as async interfaces (an app backs them with
// SQLite, IndexedDB, ...). All keys are in their serialized forms unless noted.

import type { IdentityKeyPair } from "../keys/identity.ts";
import type { KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord } from "../keys/prekeys.ts";

/** A peer device. */
export interface ProtocolAddress {
  name: string;
  deviceId: number;
}

export function addressKey(address: ProtocolAddress): string {
  return `${address.name}.${address.deviceId}`;
}

export type Direction = "sending" | "receiving";

export interface IdentityKeyStore {
  getIdentityKeyPair(): Promise<IdentityKeyPair>;
  getLocalRegistrationId(): Promise<number>;
  /**
   * Remember `identityKey` (33 bytes) for `address`. Called only after
   * isTrustedIdentity accepted it. Returns true if a different key was replaced.
   */
  saveIdentity(address: ProtocolAddress, identityKey: Uint8Array): Promise<boolean>;
  /** Trust on first use: false when a different key is already stored for `address`. */
  isTrustedIdentity(address: ProtocolAddress, identityKey: Uint8Array, direction: Direction): Promise<boolean>;
  getIdentity(address: ProtocolAddress): Promise<Uint8Array | undefined>;
}

export interface PreKeyStore {
  getPreKey(id: number): Promise<PreKeyRecord | undefined>;
  storePreKey(record: PreKeyRecord): Promise<void>;
  removePreKey(id: number): Promise<void>;
}

export interface SignedPreKeyStore {
  getSignedPreKey(id: number): Promise<SignedPreKeyRecord | undefined>;
  storeSignedPreKey(record: SignedPreKeyRecord): Promise<void>;
}

export interface KyberPreKeyStore {
  getKyberPreKey(id: number): Promise<KyberPreKeyRecord | undefined>;
  storeKyberPreKey(record: KyberPreKeyRecord): Promise<void>;
  /** A one-time KEM prekey is deleted; a last-resort one stays. */
  markKyberPreKeyUsed(id: number): Promise<void>;
}

/** Session records are opaque bytes (see SessionRecord.serialize) to the store. */
export interface SessionStore {
  loadSession(address: ProtocolAddress): Promise<Uint8Array | undefined>;
  storeSession(address: ProtocolAddress, record: Uint8Array): Promise<void>;
}

/** Everything a session needs, in one object. */
export interface SignalStores {
  identity: IdentityKeyStore;
  sessions: SessionStore;
  preKeys: PreKeyStore;
  signedPreKeys: SignedPreKeyStore;
  kyberPreKeys: KyberPreKeyStore;
}
