// One Double Ratchet step on a SessionState: encrypt the next message, or
// decrypt one (stepping the DH ratchet and caching skipped keys as needed),
// following libsignal's session_cipher.rs. These functions mutate the state
// they are given: callers pass a clone and keep it only if the call succeeds.

import { bytesEqual } from "../crypto/bytes.ts";
import { getCrypto } from "../crypto/index.ts";
import { decodePublicKey, encodePublicKey, generateKeyPair } from "../curve/index.ts";
import { SignalError } from "../errors.ts";
import { type DecodedSignalMessage, encodeSignalMessage, verifySignalMessageMac } from "../proto/messages.ts";
import {
  MAX_FORWARD_JUMPS,
  MAX_MESSAGE_KEYS,
  MAX_RECEIVER_CHAINS,
  type ReceiverChain,
  type SessionState,
} from "../session/state.ts";
import {
  chainMessageKeys,
  createChain,
  deriveMessageKeys,
  type MessageKeys,
  messageKeySeed,
  nextChainKey,
} from "./kdf.ts";

/** Encrypt with the sending chain; returns the serialized SignalMessage and advances the chain. */
export function ratchetEncrypt(state: SessionState, plaintext: Uint8Array): Uint8Array {
  const sender = state.senderChain;
  if (!sender) throw new SignalError("NO_SESSION", "session has no sending chain");
  const keys = chainMessageKeys(sender.chainKey);
  const ciphertext = getCrypto().aes256CbcEncrypt(keys.cipherKey, keys.iv, plaintext);
  const message = encodeSignalMessage(
    state.version,
    {
      ratchetKey: encodePublicKey(sender.ratchetPublic),
      counter: sender.chainKey.index,
      previousCounter: state.previousCounter,
      ciphertext,
    },
    keys.macKey,
    state.localIdentityKey,
    state.remoteIdentityKey,
  );
  state.senderChain = { ...sender, chainKey: nextChainKey(sender.chainKey) };
  return message;
}

/** Decrypt a decoded SignalMessage with `state` (mutated: pass a clone). */
export function ratchetDecrypt(state: SessionState, message: DecodedSignalMessage): Uint8Array {
  if (!state.senderChain) throw new SignalError("NO_SESSION", "session state has no sending chain");
  if (message.version !== state.version) {
    throw new SignalError(
      "UNSUPPORTED_VERSION",
      `message version ${message.version} does not match session version ${state.version}`,
      { version: message.version },
    );
  }
  let theirRatchetKey: Uint8Array;
  try {
    theirRatchetKey = decodePublicKey(message.fields.ratchetKey);
  } catch {
    throw new SignalError("INVALID_MESSAGE", "bad ratchet key");
  }
  const chain = receiverChainFor(state, theirRatchetKey);
  const keys = messageKeysFor(state, chain, message.fields.counter);
  if (!verifySignalMessageMac(message, keys.macKey, state.remoteIdentityKey, state.localIdentityKey)) {
    throw new SignalError("BAD_MAC", "message MAC does not verify");
  }
  const plaintext = getCrypto().aes256CbcDecrypt(keys.cipherKey, keys.iv, message.fields.ciphertext);
  // The peer has answered: stop attaching the PreKeySignalMessage wrapper.
  state.pendingPreKey = undefined;
  return plaintext;
}

/** The receiving chain for their ratchet key, stepping the DH ratchet if it is new. */
function receiverChainFor(state: SessionState, theirRatchetKey: Uint8Array): ReceiverChain {
  for (const chain of state.receiverChains) {
    if (bytesEqual(chain.ratchetKey, theirRatchetKey)) return chain;
  }
  const sender = state.senderChain as NonNullable<SessionState["senderChain"]>;
  const receiving = createChain(state.rootKey, theirRatchetKey, sender.ratchetPrivate);
  const ourNewRatchet = generateKeyPair();
  const sending = createChain(receiving.rootKey, theirRatchetKey, ourNewRatchet.privateKey);
  state.rootKey = sending.rootKey;
  const chain: ReceiverChain = { ratchetKey: theirRatchetKey, chainKey: receiving.chainKey, skipped: [] };
  state.receiverChains = [...state.receiverChains, chain];
  if (state.receiverChains.length > MAX_RECEIVER_CHAINS) state.receiverChains.shift();
  const index = sender.chainKey.index;
  state.previousCounter = index > 0 ? index - 1 : 0;
  state.senderChain = {
    ratchetPublic: ourNewRatchet.publicKey,
    ratchetPrivate: ourNewRatchet.privateKey,
    chainKey: sending.chainKey,
  };
  return chain;
}

function isSessionWithSelf(state: SessionState): boolean {
  return bytesEqual(state.localIdentityKey, state.remoteIdentityKey);
}

/** The message keys for `counter` on `chain`: a cached skipped key, or step the chain forward. */
function messageKeysFor(state: SessionState, chain: ReceiverChain, counter: number): MessageKeys {
  const index = chain.chainKey.index;
  if (index > counter) {
    const position = chain.skipped.findIndex((k) => k.index === counter);
    if (position < 0) {
      throw new SignalError("DUPLICATE_MESSAGE", `message ${counter} already received or its key was dropped`, {
        counter,
        chainIndex: index,
      });
    }
    const found = chain.skipped[position] as { index: number; seed: Uint8Array };
    // Copy, never mutate: the array may be shared with the caller's uncloned state.
    chain.skipped = chain.skipped.filter((_, i) => i !== position);
    return deriveMessageKeys(found.seed, counter);
  }
  const jump = counter - index;
  if (jump > MAX_FORWARD_JUMPS && !isSessionWithSelf(state)) {
    throw new SignalError(
      "TOO_FAR_AHEAD",
      `message ${counter} is ${jump} ahead of the chain (max ${MAX_FORWARD_JUMPS})`,
      {
        counter,
        chainIndex: index,
      },
    );
  }
  let chainKey = chain.chainKey;
  if (jump > 0) {
    const skipped = chain.skipped.slice();
    while (chainKey.index < counter) {
      skipped.push({ index: chainKey.index, seed: messageKeySeed(chainKey) });
      chainKey = nextChainKey(chainKey);
    }
    // Keep the newest MAX_MESSAGE_KEYS, dropping the oldest as libsignal does.
    chain.skipped = skipped.length > MAX_MESSAGE_KEYS ? skipped.slice(skipped.length - MAX_MESSAGE_KEYS) : skipped;
  }
  chain.chainKey = nextChainKey(chainKey);
  return chainMessageKeys(chainKey);
}
