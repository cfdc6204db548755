// SenderKeyRecord: up to 5 sender-key states for one (sender, distribution id),
// newest first, with the same add/replace rules as libsignal's
// SenderKeyRecord::add_sender_key_state.
//
// Storage format (our own, compact, versioned; libsignal's record protobuf is
// not an interoperability surface):
//   u8 format version (1) ‖ u8 state count ‖ states
//   state: u8 message version ‖ u32 chain id ‖ u32 iteration ‖ 32 chain key ‖
//          32 signing public key (raw) ‖ u8 has-private ‖ [32 signing private key] ‖
//          u16 skipped-key count ‖ count × (u32 iteration ‖ 32 seed)
// All integers big-endian. Parsing is strict and bounded: INVALID_RECORD on any
// deviation (unknown format, too many states or keys, truncation, trailing bytes).

import { bytesEqual } from "../crypto/index.ts";
import { SignalError } from "../errors.ts";

export const MAX_SENDER_KEY_STATES = 5;
export const MAX_SENDER_MESSAGE_KEYS = 2000;
const RECORD_FORMAT_VERSION = 1;
const KEY_LENGTH = 32;

export type StoredMessageKey = { iteration: number; seed: Uint8Array };

export interface SenderKeyState {
  messageVersion: number;
  chainId: number;
  /** Iteration of `chainKey`, i.e. of the next message key to derive. */
  iteration: number;
  chainKey: Uint8Array;
  /** Raw 32-byte X25519 public key that verifies this chain's messages. */
  signingPublicKey: Uint8Array;
  /** Present only in the sender's own state. */
  signingPrivateKey?: Uint8Array;
  /** Seeds of skipped (not yet received) message keys, oldest first. */
  messageKeys: StoredMessageKey[];
}

function corrupt(reason: string): SignalError {
  return new SignalError("INVALID_RECORD", `sender key record: ${reason}`);
}

export class SenderKeyRecord {
  /** Newest first. */
  readonly states: SenderKeyState[] = [];

  get isEmpty(): boolean {
    return this.states.length === 0;
  }

  /** The newest state (the one used for sending). */
  currentState(): SenderKeyState | undefined {
    return this.states[0];
  }

  stateForChainId(chainId: number): SenderKeyState | undefined {
    return this.states.find((s) => s.chainId === chainId);
  }

  /**
   * Add a state as libsignal does: an existing state with the same chain id
   * AND signing key is kept as is (its progress is not reset) and moved to the
   * front; other states with that chain id are dropped; the oldest states are
   * evicted beyond 5.
   */
  addState(state: SenderKeyState): void {
    const existingIndex = this.states.findIndex(
      (s) => s.chainId === state.chainId && bytesEqual(s.signingPublicKey, state.signingPublicKey),
    );
    const existing = existingIndex >= 0 ? this.states.splice(existingIndex, 1)[0] : undefined;
    for (let i = this.states.length - 1; i >= 0; i--) {
      if (this.states[i]!.chainId === state.chainId) this.states.splice(i, 1);
    }
    while (this.states.length >= MAX_SENDER_KEY_STATES) this.states.pop();
    this.states.unshift(existing ?? state);
  }

  serialize(): Uint8Array {
    let size = 2;
    for (const s of this.states) {
      size += 1 + 4 + 4 + KEY_LENGTH + KEY_LENGTH + 1 + (s.signingPrivateKey ? KEY_LENGTH : 0) + 2;
      size += s.messageKeys.length * (4 + KEY_LENGTH);
    }
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    let o = 0;
    out[o++] = RECORD_FORMAT_VERSION;
    out[o++] = this.states.length;
    for (const s of this.states) {
      out[o++] = s.messageVersion;
      view.setUint32(o, s.chainId);
      view.setUint32(o + 4, s.iteration);
      o += 8;
      out.set(s.chainKey, o);
      o += KEY_LENGTH;
      out.set(s.signingPublicKey, o);
      o += KEY_LENGTH;
      out[o++] = s.signingPrivateKey ? 1 : 0;
      if (s.signingPrivateKey) {
        out.set(s.signingPrivateKey, o);
        o += KEY_LENGTH;
      }
      view.setUint16(o, s.messageKeys.length);
      o += 2;
      for (const k of s.messageKeys) {
        view.setUint32(o, k.iteration);
        out.set(k.seed, o + 4);
        o += 4 + KEY_LENGTH;
      }
    }
    return out;
  }

  static deserialize(bytes: Uint8Array): SenderKeyRecord {
    if (!(bytes instanceof Uint8Array)) throw corrupt("not bytes");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let o = 0;
    const need = (n: number) => {
      if (bytes.length - o < n) throw corrupt("truncated");
    };
    const take = (n: number) => {
      need(n);
      const out = bytes.slice(o, o + n);
      o += n;
      return out;
    };
    need(2);
    if (bytes[o++] !== RECORD_FORMAT_VERSION) throw corrupt("unknown format version");
    const count = bytes[o++]!;
    if (count > MAX_SENDER_KEY_STATES) throw corrupt("too many states");
    const record = new SenderKeyRecord();
    for (let i = 0; i < count; i++) {
      need(9);
      const messageVersion = bytes[o]!;
      const chainId = view.getUint32(o + 1);
      const iteration = view.getUint32(o + 5);
      o += 9;
      const chainKey = take(KEY_LENGTH);
      const signingPublicKey = take(KEY_LENGTH);
      need(1);
      const hasPrivate = bytes[o++]!;
      if (hasPrivate > 1) throw corrupt("bad private-key flag");
      const state: SenderKeyState = { messageVersion, chainId, iteration, chainKey, signingPublicKey, messageKeys: [] };
      if (hasPrivate === 1) state.signingPrivateKey = take(KEY_LENGTH);
      need(2);
      const keyCount = view.getUint16(o);
      o += 2;
      if (keyCount > MAX_SENDER_MESSAGE_KEYS) throw corrupt("too many message keys");
      need(keyCount * (4 + KEY_LENGTH));
      for (let k = 0; k < keyCount; k++) {
        const keyIteration = view.getUint32(o);
        o += 4;
        state.messageKeys.push({ iteration: keyIteration, seed: take(KEY_LENGTH) });
      }
      record.states.push(state);
    }
    if (o !== bytes.length) throw corrupt("trailing bytes");
    return record;
  }
}
