// X3DH (session version 3) and PQXDH (version 4) key agreement, producing the
// initial Double Ratchet state on each side, as libsignal's ratchet.rs does:
//
//   IKM  = 32 × 0xFF ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] [‖ SS]
//          DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  DH4 = DH(EK_A, OPK_B)
//          SS  = KEM shared secret (PQXDH only)
//   HKDF-SHA256(salt = none, IKM, info) -> root key 32 ‖ chain key 32 (‖ 32 bytes SPQR seed, unused by Parley)
//   info = "WhisperText" (v3) or "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024" (v4, whatever the KEM type)
//
// Bob's signed prekey doubles as his first ratchet key: Alice's first sending
// chain is already one DH ratchet step past the X3DH output.

import { getCrypto } from "../crypto/index.ts";
import { agree, decodePublicKey, encodePublicKey, generateKeyPair, type KeyPair } from "../curve/index.ts";
import { type KemPreKeyPair, kemPreKeyDecapsulate, kemPreKeyEncapsulate } from "../keys/kem.ts";
import { type ChainKey, createChain } from "../ratchet/kdf.ts";
import type { SessionState } from "../session/state.ts";

export const SESSION_VERSION_CLASSICAL = 3;
export const SESSION_VERSION_PQXDH = 4;

const DISCONTINUITY = new Uint8Array(32).fill(0xff);
const INFO_CLASSICAL = new TextEncoder().encode("WhisperText");
const INFO_PQXDH = new TextEncoder().encode("WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024");

export interface AliceParameters {
  ourIdentity: KeyPair;
  ourBaseKey: KeyPair;
  /** 33-byte serialized identity key of Bob. */
  theirIdentityKey: Uint8Array;
  /** Raw 32-byte keys. */
  theirSignedPreKey: Uint8Array;
  theirOneTimePreKey?: Uint8Array | undefined;
  /** Bob's first ratchet key: his signed prekey, except in libsignal's fixed-key test vectors. */
  theirRatchetKey: Uint8Array;
  /** Serialized KEM public key (type byte ‖ key): present = PQXDH. */
  theirKyberPreKey?: Uint8Array | undefined;
  /** Alice's first sending ratchet key; fresh unless a test fixes it. */
  ourSendingRatchetKey?: KeyPair | undefined;
}

export interface BobParameters {
  ourIdentity: KeyPair;
  ourSignedPreKey: KeyPair;
  ourOneTimePreKey?: KeyPair | undefined;
  /** Normally the signed prekey pair. */
  ourRatchetKey: KeyPair;
  ourKyberPreKey?: KemPreKeyPair | undefined;
  theirIdentityKey: Uint8Array;
  /** Alice's raw 32-byte base key. */
  theirBaseKey: Uint8Array;
  /** Serialized KEM ciphertext from Alice's PreKeySignalMessage. */
  theirKyberCiphertext?: Uint8Array | undefined;
}

function deriveInitialKeys(pq: boolean, secrets: Uint8Array[]): { rootKey: Uint8Array; chainKey: ChainKey } {
  let length = 0;
  for (const s of secrets) length += s.length;
  const ikm = new Uint8Array(length);
  let offset = 0;
  for (const s of secrets) {
    ikm.set(s, offset);
    offset += s.length;
  }
  const okm = getCrypto().hkdfSha256(ikm, undefined, pq ? INFO_PQXDH : INFO_CLASSICAL, 64);
  ikm.fill(0);
  return { rootKey: okm.slice(0, 32), chainKey: { key: okm.slice(32, 64), index: 0 } };
}

function newState(
  version: number,
  ourIdentity: KeyPair,
  theirIdentityKey: Uint8Array,
  rootKey: Uint8Array,
  aliceBaseKey: Uint8Array,
): SessionState {
  return {
    version,
    localIdentityKey: encodePublicKey(ourIdentity.publicKey),
    remoteIdentityKey: Uint8Array.from(theirIdentityKey),
    rootKey,
    previousCounter: 0,
    senderChain: undefined,
    receiverChains: [],
    pendingPreKey: undefined,
    localRegistrationId: 0,
    remoteRegistrationId: 0,
    aliceBaseKey: Uint8Array.from(aliceBaseKey),
  };
}

/** Alice's side. Returns the new state and, for PQXDH, the serialized KEM ciphertext to send. */
export function initializeAliceSession(p: AliceParameters): {
  state: SessionState;
  kyberCiphertext: Uint8Array | undefined;
} {
  const theirIdentity = decodePublicKey(p.theirIdentityKey);
  const secrets: Uint8Array[] = [
    DISCONTINUITY,
    agree(p.ourIdentity.privateKey, p.theirSignedPreKey),
    agree(p.ourBaseKey.privateKey, theirIdentity),
    agree(p.ourBaseKey.privateKey, p.theirSignedPreKey),
  ];
  if (p.theirOneTimePreKey) secrets.push(agree(p.ourBaseKey.privateKey, p.theirOneTimePreKey));
  let kyberCiphertext: Uint8Array | undefined;
  if (p.theirKyberPreKey) {
    const encapsulated = kemPreKeyEncapsulate(p.theirKyberPreKey);
    secrets.push(encapsulated.sharedSecret);
    kyberCiphertext = encapsulated.ciphertext;
  }
  const pq = kyberCiphertext !== undefined;
  const { rootKey, chainKey } = deriveInitialKeys(pq, secrets);
  const sendingRatchet = p.ourSendingRatchetKey ?? generateKeyPair();
  const sending = createChain(rootKey, p.theirRatchetKey, sendingRatchet.privateKey);
  const state = newState(
    pq ? SESSION_VERSION_PQXDH : SESSION_VERSION_CLASSICAL,
    p.ourIdentity,
    p.theirIdentityKey,
    sending.rootKey,
    p.ourBaseKey.publicKey,
  );
  state.receiverChains.push({ ratchetKey: Uint8Array.from(p.theirRatchetKey), chainKey, skipped: [] });
  state.senderChain = {
    ratchetPublic: sendingRatchet.publicKey,
    ratchetPrivate: sendingRatchet.privateKey,
    chainKey: sending.chainKey,
  };
  return { state, kyberCiphertext };
}

/** Bob's side, on receiving Alice's first (PreKeySignalMessage) message. */
export function initializeBobSession(p: BobParameters): SessionState {
  const theirIdentity = decodePublicKey(p.theirIdentityKey);
  const secrets: Uint8Array[] = [
    DISCONTINUITY,
    agree(p.ourSignedPreKey.privateKey, theirIdentity),
    agree(p.ourIdentity.privateKey, p.theirBaseKey),
    agree(p.ourSignedPreKey.privateKey, p.theirBaseKey),
  ];
  if (p.ourOneTimePreKey) secrets.push(agree(p.ourOneTimePreKey.privateKey, p.theirBaseKey));
  const pq = p.ourKyberPreKey !== undefined;
  if (pq !== (p.theirKyberCiphertext !== undefined)) {
    throw new TypeError("a KEM prekey and a KEM ciphertext must be given together");
  }
  if (p.ourKyberPreKey && p.theirKyberCiphertext) {
    secrets.push(kemPreKeyDecapsulate(p.ourKyberPreKey, p.theirKyberCiphertext));
  }
  const { rootKey, chainKey } = deriveInitialKeys(pq, secrets);
  const state = newState(
    pq ? SESSION_VERSION_PQXDH : SESSION_VERSION_CLASSICAL,
    p.ourIdentity,
    p.theirIdentityKey,
    rootKey,
    p.theirBaseKey,
  );
  state.senderChain = {
    ratchetPublic: p.ourRatchetKey.publicKey,
    ratchetPrivate: p.ourRatchetKey.privateKey,
    chainKey,
  };
  return state;
}
