// In-memory stores that enforce the protocol's rules: one-time prekeys are
// consumed, last-resort KEM keys stay, and a changed identity key is never
// silently accepted (trust on first use; acceptIdentity() is the explicit override).

import { bytesEqual } from "../crypto/bytes.ts";
import { SignalError } from "../errors.ts";
import type { IdentityKeyPair } from "../keys/identity.ts";
import type { KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord } from "../keys/prekeys.ts";
import {
  addressKey,
  type Direction,
  type IdentityKeyStore,
  type KyberPreKeyStore,
  type PreKeyStore,
  type ProtocolAddress,
  type SessionStore,
  type SignalStores,
  type SignedPreKeyStore,
} from "./interfaces.ts";

export interface IdentityChangeEvent {
  address: ProtocolAddress;
  /** The stored, trusted key. */
  trustedKey: Uint8Array;
  /** The different key the peer now presents. */
  newKey: Uint8Array;
  direction: Direction;
}

export class InMemoryIdentityKeyStore implements IdentityKeyStore {
  private readonly identities = new Map<string, Uint8Array>();
  private readonly listeners = new Set<(event: IdentityChangeEvent) => void>();

  constructor(
    private readonly identityKeyPair: IdentityKeyPair,
    private readonly registrationId: number,
  ) {}

  async getIdentityKeyPair(): Promise<IdentityKeyPair> {
    return this.identityKeyPair;
  }

  async getLocalRegistrationId(): Promise<number> {
    return this.registrationId;
  }

  async saveIdentity(address: ProtocolAddress, identityKey: Uint8Array): Promise<boolean> {
    const key = addressKey(address);
    const existing = this.identities.get(key);
    if (existing && !bytesEqual(existing, identityKey)) {
      // Replacing a trusted key is acceptIdentity()'s job, never a side effect.
      throw new SignalError("UNTRUSTED_IDENTITY", `identity key of ${key} changed`, { identityKey, address });
    }
    if (!existing) this.identities.set(key, Uint8Array.from(identityKey));
    return false;
  }

  async isTrustedIdentity(address: ProtocolAddress, identityKey: Uint8Array, direction: Direction): Promise<boolean> {
    const existing = this.identities.get(addressKey(address));
    if (!existing || bytesEqual(existing, identityKey)) return true;
    const event: IdentityChangeEvent = { address, trustedKey: existing, newKey: identityKey, direction };
    for (const listener of this.listeners) listener(event);
    return false;
  }

  async getIdentity(address: ProtocolAddress): Promise<Uint8Array | undefined> {
    return this.identities.get(addressKey(address));
  }

  /** The user verified (or accepted) the new key: trust it from now on. Returns true if it replaced another. */
  acceptIdentity(address: ProtocolAddress, identityKey: Uint8Array): boolean {
    const key = addressKey(address);
    const existing = this.identities.get(key);
    this.identities.set(key, Uint8Array.from(identityKey));
    return existing !== undefined && !bytesEqual(existing, identityKey);
  }

  /** Subscribe to "a peer presented a different identity key" events; returns an unsubscribe function. */
  onIdentityChange(listener: (event: IdentityChangeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export class InMemoryPreKeyStore implements PreKeyStore {
  private readonly keys = new Map<number, PreKeyRecord>();
  async getPreKey(id: number): Promise<PreKeyRecord | undefined> {
    return this.keys.get(id);
  }
  async storePreKey(record: PreKeyRecord): Promise<void> {
    this.keys.set(record.id, record);
  }
  async removePreKey(id: number): Promise<void> {
    this.keys.delete(id);
  }
  get size(): number {
    return this.keys.size;
  }
}

export class InMemorySignedPreKeyStore implements SignedPreKeyStore {
  private readonly keys = new Map<number, SignedPreKeyRecord>();
  async getSignedPreKey(id: number): Promise<SignedPreKeyRecord | undefined> {
    return this.keys.get(id);
  }
  async storeSignedPreKey(record: SignedPreKeyRecord): Promise<void> {
    this.keys.set(record.id, record);
  }
}

export class InMemoryKyberPreKeyStore implements KyberPreKeyStore {
  private readonly keys = new Map<number, KyberPreKeyRecord>();
  async getKyberPreKey(id: number): Promise<KyberPreKeyRecord | undefined> {
    return this.keys.get(id);
  }
  async storeKyberPreKey(record: KyberPreKeyRecord): Promise<void> {
    this.keys.set(record.id, record);
  }
  async markKyberPreKeyUsed(id: number): Promise<void> {
    const record = this.keys.get(id);
    if (record && !record.lastResort) this.keys.delete(id);
  }
  get size(): number {
    return this.keys.size;
  }
}

/** Keeps records as bytes, so every load parses and every store serializes (as a persistent store would). */
export class InMemorySessionStore implements SessionStore {
  private readonly records = new Map<string, Uint8Array>();
  async loadSession(address: ProtocolAddress): Promise<Uint8Array | undefined> {
    return this.records.get(addressKey(address));
  }
  async storeSession(address: ProtocolAddress, record: Uint8Array): Promise<void> {
    this.records.set(addressKey(address), record);
  }
}

export class InMemorySignalStores implements SignalStores {
  readonly identity: InMemoryIdentityKeyStore;
  readonly sessions = new InMemorySessionStore();
  readonly preKeys = new InMemoryPreKeyStore();
  readonly signedPreKeys = new InMemorySignedPreKeyStore();
  readonly kyberPreKeys = new InMemoryKyberPreKeyStore();

  constructor(identityKeyPair: IdentityKeyPair, registrationId: number) {
    this.identity = new InMemoryIdentityKeyStore(identityKeyPair, registrationId);
  }
}
