// Adapters from the device's ProfileStore (opaque bytes in an encrypted SQLite
// file) to the Signal package's async store interfaces.
import {
  bytesEqual,
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSignedPreKeyRecord,
  type IdentityKeyPair,
  type KyberPreKeyRecord,
  type PreKeyRecord,
  type ProtocolAddress,
  type SignalStores,
  type SignedPreKeyRecord,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSignedPreKeyRecord,
} from "@parley/signal";
import type { ProfileStore } from "./store/types.ts";

export function serializeIdentity(pair: IdentityKeyPair): Uint8Array {
  const out = new Uint8Array(64);
  out.set(pair.privateKey, 0);
  out.set(pair.publicKey, 32);
  return out;
}

export function deserializeIdentity(bytes: Uint8Array): IdentityKeyPair {
  if (bytes.length !== 64) throw new Error("stored identity key pair is corrupt");
  return { privateKey: bytes.slice(0, 32), publicKey: bytes.slice(32) };
}

/**
 * What to do when a contact's identity key changes. WhatsApp accepts the new key and shows
 * "security code changed"; "block" refuses to encrypt or decrypt until the user accepts it.
 */
export type IdentityChangePolicy = "accept-and-notify" | "block";

export function signalStoresFor(
  store: ProfileStore,
  policy: IdentityChangePolicy,
  onIdentityChanged: (address: ProtocolAddress, identityKey: Uint8Array) => void,
): SignalStores {
  return {
    identity: {
      async getIdentityKeyPair() {
        const bytes = store.getMeta("identityKeyPair");
        if (!bytes) throw new Error("this profile has no identity key: register first");
        return deserializeIdentity(bytes);
      },
      async getLocalRegistrationId() {
        const id = store.getMeta("registrationId");
        if (id === undefined) throw new Error("this profile has no registration id: register first");
        return id;
      },
      async saveIdentity(address, identityKey) {
        const old = store.getIdentity(address);
        if (old && bytesEqual(old.publicKey, identityKey)) return false;
        return store.saveIdentity(address, identityKey).replaced;
      },
      async isTrustedIdentity(address, identityKey) {
        const old = store.getIdentity(address);
        if (!old || bytesEqual(old.publicKey, identityKey)) return true;
        // Never silent: the application always hears about a changed key.
        onIdentityChanged(address, identityKey);
        return policy === "accept-and-notify";
      },
      async getIdentity(address) {
        return store.getIdentity(address)?.publicKey;
      },
    },
    sessions: {
      async loadSession(address) {
        return store.getSession(address);
      },
      async storeSession(address, record) {
        store.saveSession(address, record);
      },
    },
    preKeys: {
      async getPreKey(id): Promise<PreKeyRecord | undefined> {
        const e = store.getPreKey("prekey", id);
        return e ? deserializePreKeyRecord(e.record) : undefined;
      },
      async storePreKey(record) {
        store.savePreKey("prekey", record.id, serializePreKeyRecord(record));
      },
      async removePreKey(id) {
        store.removePreKey("prekey", id);
      },
    },
    signedPreKeys: {
      async getSignedPreKey(id): Promise<SignedPreKeyRecord | undefined> {
        const e = store.getPreKey("signed", id);
        return e ? deserializeSignedPreKeyRecord(e.record) : undefined;
      },
      async storeSignedPreKey(record) {
        store.savePreKey("signed", record.id, serializeSignedPreKeyRecord(record));
      },
    },
    kyberPreKeys: {
      async getKyberPreKey(id): Promise<KyberPreKeyRecord | undefined> {
        const e = store.getPreKey("kyber", id);
        return e ? deserializeKyberPreKeyRecord(e.record) : undefined;
      },
      async storeKyberPreKey(record) {
        store.savePreKey("kyber", record.id, serializeKyberPreKeyRecord(record));
      },
      async markKyberPreKeyUsed(id) {
        const e = store.getPreKey("kyber", id);
        if (!e) return;
        if (deserializeKyberPreKeyRecord(e.record).lastResort) store.markPreKeyUsed("kyber", id);
        else store.removePreKey("kyber", id);
      },
    },
  };
}
