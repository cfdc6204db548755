// Parley's compact binary encoding of a SessionState (not protobuf, not JSON:
// fixed-width fields in a fixed order, so parsing is a few dozen reads).
//
// state := u8 format(=1) ‖ u8 sessionVersion ‖ u8 flags
//          ‖ localIdentity(33) ‖ remoteIdentity(33) ‖ rootKey(32)
//          ‖ u32 previousCounter ‖ u32 localRegId ‖ u32 remoteRegId ‖ aliceBaseKey(32)
//          ‖ [sender: pub(32) ‖ priv(32) ‖ chainKey(32) ‖ u32 index]            (flags bit 0)
//          ‖ u8 receiverChainCount ‖ { ratchetKey(32) ‖ chainKey(32) ‖ u32 index
//                                       ‖ u16 skippedCount ‖ { u32 index ‖ seed(32) } }
//          ‖ [pending: u32 signedPreKeyId ‖ baseKey(32)                           (flags bit 1)
//             ‖ [u32 preKeyId]                                                    (flags bit 2)
//             ‖ [u32 kyberPreKeyId ‖ u16 len ‖ kyberCiphertext]]                  (flags bit 3)

import { ByteReader, ByteWriter } from "./codec.ts";
import {
  MAX_MESSAGE_KEYS,
  MAX_RECEIVER_CHAINS,
  type PendingPreKey,
  type ReceiverChain,
  type SessionState,
  type SkippedMessageKey,
} from "./state.ts";

const STATE_FORMAT = 1;
const HAS_SENDER = 1;
const HAS_PENDING = 2;
const HAS_PENDING_PREKEY_ID = 4;
const HAS_PENDING_KYBER = 8;
const MAX_KYBER_CIPHERTEXT = 4096;

export function serializeState(state: SessionState): Uint8Array {
  let size = 3 + 33 + 33 + 32 + 16 + 32 + 100 + 1;
  for (const c of state.receiverChains) size += 70 + c.skipped.length * 36;
  const w = new ByteWriter(size + 64 + (state.pendingPreKey?.kyberCiphertext?.length ?? 0));
  const pending = state.pendingPreKey;
  let flags = 0;
  if (state.senderChain) flags |= HAS_SENDER;
  if (pending) {
    flags |= HAS_PENDING;
    if (pending.preKeyId !== undefined) flags |= HAS_PENDING_PREKEY_ID;
    if (pending.kyberPreKeyId !== undefined && pending.kyberCiphertext) flags |= HAS_PENDING_KYBER;
  }
  w.u8(STATE_FORMAT).u8(state.version).u8(flags);
  w.raw(state.localIdentityKey).raw(state.remoteIdentityKey).raw(state.rootKey);
  w.u32(state.previousCounter).u32(state.localRegistrationId).u32(state.remoteRegistrationId);
  w.raw(state.aliceBaseKey);
  const sender = state.senderChain;
  if (sender) {
    w.raw(sender.ratchetPublic).raw(sender.ratchetPrivate).raw(sender.chainKey.key).u32(sender.chainKey.index);
  }
  w.u8(state.receiverChains.length);
  for (const chain of state.receiverChains) {
    w.raw(chain.ratchetKey).raw(chain.chainKey.key).u32(chain.chainKey.index).u16(chain.skipped.length);
    for (const k of chain.skipped) w.u32(k.index).raw(k.seed);
  }
  if (pending) {
    w.u32(pending.signedPreKeyId).raw(pending.baseKey);
    if (pending.preKeyId !== undefined) w.u32(pending.preKeyId);
    if (flags & HAS_PENDING_KYBER)
      w.u32(pending.kyberPreKeyId as number).bytes16(pending.kyberCiphertext as Uint8Array);
  }
  return w.finish();
}

export function deserializeState(bytes: Uint8Array): SessionState {
  const r = new ByteReader(bytes, "INVALID_RECORD", "session state");
  if (r.u8() !== STATE_FORMAT) r.fail("unknown state format");
  const version = r.u8();
  if (version !== 3 && version !== 4) r.fail(`unsupported session version ${version}`);
  const flags = r.u8();
  if (flags & ~15) r.fail("unknown flags");
  const localIdentityKey = r.raw(33);
  const remoteIdentityKey = r.raw(33);
  const rootKey = r.raw(32);
  const previousCounter = r.u32();
  const localRegistrationId = r.u32();
  const remoteRegistrationId = r.u32();
  const aliceBaseKey = r.raw(32);
  let senderChain: SessionState["senderChain"];
  if (flags & HAS_SENDER) {
    const ratchetPublic = r.raw(32);
    const ratchetPrivate = r.raw(32);
    const key = r.raw(32);
    senderChain = { ratchetPublic, ratchetPrivate, chainKey: { key, index: r.u32() } };
  }
  const chainCount = r.u8();
  if (chainCount > MAX_RECEIVER_CHAINS) r.fail("too many receiver chains");
  const receiverChains: ReceiverChain[] = [];
  for (let i = 0; i < chainCount; i++) {
    const ratchetKey = r.raw(32);
    const key = r.raw(32);
    const index = r.u32();
    const skippedCount = r.u16();
    if (skippedCount > MAX_MESSAGE_KEYS) r.fail("too many skipped message keys");
    const skipped: SkippedMessageKey[] = new Array(skippedCount);
    for (let j = 0; j < skippedCount; j++) skipped[j] = { index: r.u32(), seed: r.raw(32) };
    receiverChains.push({ ratchetKey, chainKey: { key, index }, skipped });
  }
  let pendingPreKey: PendingPreKey | undefined;
  if (flags & HAS_PENDING) {
    const signedPreKeyId = r.u32();
    const baseKey = r.raw(32);
    const preKeyId = flags & HAS_PENDING_PREKEY_ID ? r.u32() : undefined;
    let kyberPreKeyId: number | undefined;
    let kyberCiphertext: Uint8Array | undefined;
    if (flags & HAS_PENDING_KYBER) {
      kyberPreKeyId = r.u32();
      kyberCiphertext = r.bytes16(MAX_KYBER_CIPHERTEXT);
    }
    pendingPreKey = { preKeyId, signedPreKeyId, baseKey, kyberPreKeyId, kyberCiphertext };
  } else if (flags & (HAS_PENDING_PREKEY_ID | HAS_PENDING_KYBER)) {
    r.fail("inconsistent flags");
  }
  r.end();
  return {
    version,
    localIdentityKey,
    remoteIdentityKey,
    rootKey,
    previousCounter,
    senderChain,
    receiverChains,
    pendingPreKey,
    localRegistrationId,
    remoteRegistrationId,
    aliceBaseKey,
  };
}
