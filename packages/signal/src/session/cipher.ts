// The session API over the stores, shaped like libsignal's:
// processPreKeyBundle (start a session from a fetched bundle), encryptMessage
// and decryptMessage. Records are loaded from the SessionStore, changed in
// memory and written back only when the operation fully succeeded.

import { bytesEqual } from "../crypto/bytes.ts";
import { decodePublicKey, encodePublicKey, generateKeyPair, xeddsaVerify } from "../curve/index.ts";
import { SignalError } from "../errors.ts";
import type { PreKeyBundle } from "../keys/bundle.ts";
import { deserializeKemPublicKey } from "../keys/kem.ts";
import {
  type DecodedPreKeySignalMessage,
  decodePreKeySignalMessage,
  decodeSignalMessage,
  encodePreKeySignalMessage,
} from "../proto/messages.ts";
import { ratchetEncrypt } from "../ratchet/double-ratchet.ts";
import { addressKey, type ProtocolAddress, type SignalStores } from "../stores/interfaces.ts";
import { initializeAliceSession, initializeBobSession, SESSION_VERSION_CLASSICAL } from "../x3dh/index.ts";
import { withAddressLock } from "./lock.ts";
import { SessionRecord } from "./record.ts";
import { decryptWithRecord } from "./record-cipher.ts";

export type CiphertextType = "prekey" | "whisper";

export interface CiphertextMessage {
  type: CiphertextType;
  body: Uint8Array;
}

export interface SessionOptions {
  /**
   * Accept classical (v3, no KEM) session setup: a bundle without a KEM prekey,
   * or an incoming v3 PreKeySignalMessage. Off by default, because a server
   * that strips the KEM prekey from a bundle would otherwise silently downgrade
   * the session to pre-quantum security.
   */
  allowClassical?: boolean;
}

async function loadRecord(stores: SignalStores, address: ProtocolAddress): Promise<SessionRecord | undefined> {
  const bytes = await stores.sessions.loadSession(address);
  return bytes ? SessionRecord.deserialize(bytes) : undefined;
}

function untrusted(address: ProtocolAddress, identityKey: Uint8Array): SignalError {
  return new SignalError("UNTRUSTED_IDENTITY", `identity key of ${addressKey(address)} is not trusted`, {
    identityKey,
    address,
  });
}

/** Start (or restart) a session with `address` from a bundle the server handed out. */
export async function processPreKeyBundle(
  address: ProtocolAddress,
  bundle: PreKeyBundle,
  stores: SignalStores,
  options: SessionOptions = {},
): Promise<void> {
  const theirIdentity = decodePublicKey(bundle.identityKey);
  if (!(await stores.identity.isTrustedIdentity(address, bundle.identityKey, "sending"))) {
    throw untrusted(address, bundle.identityKey);
  }
  if (!xeddsaVerify(theirIdentity, bundle.signedPreKey.publicKey, bundle.signedPreKey.signature)) {
    throw new SignalError("INVALID_SIGNATURE", "signed prekey signature does not verify");
  }
  const kyber = bundle.kyberPreKey;
  if (kyber) {
    deserializeKemPublicKey(kyber.publicKey);
    if (!xeddsaVerify(theirIdentity, kyber.publicKey, kyber.signature)) {
      throw new SignalError("INVALID_SIGNATURE", "KEM prekey signature does not verify");
    }
  } else if (!options.allowClassical) {
    throw new SignalError("INVALID_KEY", "bundle has no KEM prekey (classical X3DH not allowed)");
  }
  const theirSignedPreKey = decodePublicKey(bundle.signedPreKey.publicKey);
  const theirOneTimePreKey = bundle.preKey ? decodePublicKey(bundle.preKey.publicKey) : undefined;
  const ourIdentity = await stores.identity.getIdentityKeyPair();
  const localRegistrationId = await stores.identity.getLocalRegistrationId();

  await withAddressLock(stores.sessions, addressKey(address), async () => {
    const record = (await loadRecord(stores, address)) ?? new SessionRecord();
    const baseKey = generateKeyPair();
    const { state, kyberCiphertext } = initializeAliceSession({
      ourIdentity,
      ourBaseKey: baseKey,
      theirIdentityKey: bundle.identityKey,
      theirSignedPreKey,
      theirOneTimePreKey,
      theirRatchetKey: theirSignedPreKey,
      theirKyberPreKey: kyber?.publicKey,
    });
    state.pendingPreKey = {
      preKeyId: bundle.preKey?.id,
      signedPreKeyId: bundle.signedPreKey.id,
      baseKey: baseKey.publicKey,
      kyberPreKeyId: kyber?.id,
      kyberCiphertext,
    };
    state.localRegistrationId = localRegistrationId;
    state.remoteRegistrationId = bundle.registrationId;
    await stores.identity.saveIdentity(address, bundle.identityKey);
    record.promoteState(state);
    await stores.sessions.storeSession(address, record.serialize());
  });
}

/** Encrypt for `address`: a "prekey" message until the peer has replied, then "whisper". */
export async function encryptMessage(
  address: ProtocolAddress,
  plaintext: Uint8Array,
  stores: SignalStores,
): Promise<CiphertextMessage> {
  return withAddressLock(stores.sessions, addressKey(address), async () => {
    const record = await loadRecord(stores, address);
    const state = record?.current;
    if (!record || !state?.senderChain) throw new SignalError("NO_SESSION", `no session with ${addressKey(address)}`);
    if (!(await stores.identity.isTrustedIdentity(address, state.remoteIdentityKey, "sending"))) {
      throw untrusted(address, state.remoteIdentityKey);
    }
    const message = ratchetEncrypt(state, plaintext);
    let result: CiphertextMessage;
    const pending = state.pendingPreKey;
    if (pending) {
      const body = encodePreKeySignalMessage(state.version, {
        registrationId: state.localRegistrationId,
        ...(pending.preKeyId !== undefined ? { preKeyId: pending.preKeyId } : {}),
        signedPreKeyId: pending.signedPreKeyId,
        ...(pending.kyberPreKeyId !== undefined && pending.kyberCiphertext
          ? { kyberPreKeyId: pending.kyberPreKeyId, kyberCiphertext: pending.kyberCiphertext }
          : {}),
        baseKey: encodePublicKey(pending.baseKey),
        identityKey: state.localIdentityKey,
        message,
      });
      result = { type: "prekey", body };
    } else {
      result = { type: "whisper", body: message };
    }
    await stores.identity.saveIdentity(address, state.remoteIdentityKey);
    await stores.sessions.storeSession(address, record.serialize());
    return result;
  });
}

/** Decrypt a message from `address`. Throws a SignalError; the stored session is unchanged on failure. */
export async function decryptMessage(
  address: ProtocolAddress,
  type: CiphertextType,
  body: Uint8Array,
  stores: SignalStores,
  options: SessionOptions = {},
): Promise<Uint8Array> {
  if (type === "prekey") return decryptPreKeyMessage(address, decodePreKeySignalMessage(body), stores, options);
  if (type !== "whisper") throw new SignalError("INVALID_MESSAGE", `unknown message type ${String(type)}`);
  const message = decodeSignalMessage(body);
  return withAddressLock(stores.sessions, addressKey(address), async () => {
    const record = await loadRecord(stores, address);
    if (!record) throw new SignalError("NO_SESSION", `no session with ${addressKey(address)}`);
    const plaintext = decryptWithRecord(record, message);
    const remoteIdentity = (record.current as NonNullable<SessionRecord["current"]>).remoteIdentityKey;
    if (!(await stores.identity.isTrustedIdentity(address, remoteIdentity, "receiving"))) {
      throw untrusted(address, remoteIdentity);
    }
    await stores.identity.saveIdentity(address, remoteIdentity);
    await stores.sessions.storeSession(address, record.serialize());
    return plaintext;
  });
}

async function decryptPreKeyMessage(
  address: ProtocolAddress,
  message: DecodedPreKeySignalMessage,
  stores: SignalStores,
  options: SessionOptions,
): Promise<Uint8Array> {
  const fields = message.fields;
  if (message.version === SESSION_VERSION_CLASSICAL && !options.allowClassical) {
    throw new SignalError("UNSUPPORTED_VERSION", "classical (v3) session setup not allowed", { version: 3 });
  }
  if (!(await stores.identity.isTrustedIdentity(address, fields.identityKey, "receiving"))) {
    throw untrusted(address, fields.identityKey);
  }
  const inner = decodeSignalMessage(fields.message);
  if (inner.version !== message.version) {
    throw new SignalError("INVALID_MESSAGE", "PreKeySignalMessage and its SignalMessage disagree on the version");
  }
  return withAddressLock(stores.sessions, addressKey(address), async () => {
    const record = (await loadRecord(stores, address)) ?? new SessionRecord();
    const baseKey = decodePublicKey(fields.baseKey);
    if (!isCanonicalX25519(baseKey)) throw new SignalError("INVALID_MESSAGE", "incoming base key is not canonical");
    let usedPreKeyId: number | undefined;
    let usedKyberPreKeyId: number | undefined;
    // A repeat of Alice's first messages (she keeps attaching the wrapper until we reply) reuses the session.
    if (!record.hasSessionState(message.version, baseKey)) {
      const signed = await stores.signedPreKeys.getSignedPreKey(fields.signedPreKeyId);
      if (!signed) throw new SignalError("INVALID_PREKEY_ID", `no signed prekey ${fields.signedPreKeyId}`);
      let kyber: Awaited<ReturnType<typeof stores.kyberPreKeys.getKyberPreKey>>;
      if (fields.kyberPreKeyId !== undefined) {
        kyber = await stores.kyberPreKeys.getKyberPreKey(fields.kyberPreKeyId);
        if (!kyber) throw new SignalError("INVALID_PREKEY_ID", `no KEM prekey ${fields.kyberPreKeyId}`);
      }
      let oneTime: Awaited<ReturnType<typeof stores.preKeys.getPreKey>>;
      if (fields.preKeyId !== undefined) {
        oneTime = await stores.preKeys.getPreKey(fields.preKeyId);
        if (!oneTime) throw new SignalError("INVALID_PREKEY_ID", `no one-time prekey ${fields.preKeyId}`);
      }
      const ourIdentity = await stores.identity.getIdentityKeyPair();
      if (bytesEqual(baseKey, signed.keyPair.publicKey)) {
        throw new SignalError("INVALID_MESSAGE", "base key equals our signed prekey");
      }
      const state = initializeBobSession({
        ourIdentity,
        ourSignedPreKey: signed.keyPair,
        ourOneTimePreKey: oneTime?.keyPair,
        ourRatchetKey: signed.keyPair,
        ourKyberPreKey: kyber?.keyPair,
        theirIdentityKey: fields.identityKey,
        theirBaseKey: baseKey,
        theirKyberCiphertext: fields.kyberCiphertext,
      });
      state.localRegistrationId = await stores.identity.getLocalRegistrationId();
      state.remoteRegistrationId = fields.registrationId;
      record.promoteState(state);
      usedPreKeyId = fields.preKeyId;
      usedKyberPreKeyId = fields.kyberPreKeyId;
    }
    const plaintext = decryptWithRecord(record, inner);
    await stores.identity.saveIdentity(address, fields.identityKey);
    await stores.sessions.storeSession(address, record.serialize());
    if (usedPreKeyId !== undefined) await stores.preKeys.removePreKey(usedPreKeyId);
    if (usedKyberPreKeyId !== undefined) await stores.kyberPreKeys.markKyberPreKeyUsed(usedKyberPreKeyId);
    return plaintext;
  });
}

/** u < 2^255 − 19 with the unused top bit clear, as libsignal's PublicKey::is_canonical requires of base keys. */
function isCanonicalX25519(u: Uint8Array): boolean {
  if ((u[31] as number) & 0x80) return false;
  if (u[31] !== 0x7f || (u[0] as number) < 0xed) return true;
  for (let i = 1; i < 31; i++) if (u[i] !== 0xff) return true;
  return false;
}

/** Is there a current session with a sending chain for `address`? */
export async function hasSession(address: ProtocolAddress, stores: SignalStores): Promise<boolean> {
  const record = await loadRecord(stores, address);
  return record?.current?.senderChain !== undefined;
}

/** libsignal-style object API over the same functions. */
export class SessionBuilder {
  constructor(
    private readonly stores: SignalStores,
    private readonly options: SessionOptions = {},
  ) {}
  processPreKeyBundle(address: ProtocolAddress, bundle: PreKeyBundle): Promise<void> {
    return processPreKeyBundle(address, bundle, this.stores, this.options);
  }
}

export class SessionCipher {
  constructor(
    private readonly stores: SignalStores,
    private readonly options: SessionOptions = {},
  ) {}
  encrypt(address: ProtocolAddress, plaintext: Uint8Array): Promise<CiphertextMessage> {
    return encryptMessage(address, plaintext, this.stores);
  }
  decrypt(address: ProtocolAddress, type: CiphertextType, body: Uint8Array): Promise<Uint8Array> {
    return decryptMessage(address, type, body, this.stores, this.options);
  }
  hasSession(address: ProtocolAddress): Promise<boolean> {
    return hasSession(address, this.stores);
  }
}
