// The state of one Double Ratchet session (libsignal's SessionStructure),
// as plain data. Byte arrays held here are never mutated in place: every
// update replaces them, so a shallow clone is a safe snapshot (see cloneState).

import type { ChainKey } from "../ratchet/kdf.ts";

/** Protocol limits, as libsignal's consts.rs. */
export const MAX_FORWARD_JUMPS = 25_000;
export const MAX_MESSAGE_KEYS = 2_000;
export const MAX_RECEIVER_CHAINS = 5;
export const ARCHIVED_STATES_MAX_LENGTH = 40;

/** A message key skipped over on a receiving chain, kept as its 32-byte seed. */
export interface SkippedMessageKey {
  index: number;
  seed: Uint8Array;
}

export interface ReceiverChain {
  /** Their raw 32-byte ratchet public key. */
  ratchetKey: Uint8Array;
  chainKey: ChainKey;
  /** Oldest first; at most MAX_MESSAGE_KEYS (the oldest are dropped). */
  skipped: SkippedMessageKey[];
}

export interface SenderChain {
  ratchetPublic: Uint8Array;
  ratchetPrivate: Uint8Array;
  chainKey: ChainKey;
}

/** What the initiator must repeat in every message until the responder answers. */
export interface PendingPreKey {
  preKeyId: number | undefined;
  signedPreKeyId: number;
  /** Our raw 32-byte base (ephemeral) key. */
  baseKey: Uint8Array;
  kyberPreKeyId: number | undefined;
  /** Serialized KEM ciphertext (type byte ‖ ciphertext). */
  kyberCiphertext: Uint8Array | undefined;
}

export interface SessionState {
  /** 3 = classical X3DH, 4 = PQXDH. */
  version: number;
  /** 33-byte serialized identity keys (0x05 ‖ X25519 public key). */
  localIdentityKey: Uint8Array;
  remoteIdentityKey: Uint8Array;
  rootKey: Uint8Array;
  previousCounter: number;
  senderChain: SenderChain | undefined;
  /** Oldest first; at most MAX_RECEIVER_CHAINS. */
  receiverChains: ReceiverChain[];
  pendingPreKey: PendingPreKey | undefined;
  localRegistrationId: number;
  remoteRegistrationId: number;
  /** Raw 32-byte base key of the initiator: identifies the X3DH run. */
  aliceBaseKey: Uint8Array;
}

/** A snapshot that can be mutated without touching the original. */
export function cloneState(state: SessionState): SessionState {
  return {
    ...state,
    senderChain: state.senderChain && { ...state.senderChain },
    receiverChains: state.receiverChains.map((c) => ({ ...c })),
  };
}
