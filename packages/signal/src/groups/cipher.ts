// Group messaging with Sender Keys, following libsignal's
// rust/protocol/src/group_cipher.rs: each sender has a hash chain and a
// signing key per distribution id; members learn them from a
// SenderKeyDistributionMessage (sent over 1:1 sessions) and then decrypt the
// sender's SenderKeyMessages, which are AES-256-CBC encrypted and XEdDSA signed.

import { getCrypto } from "../crypto/index.ts";
import { decodePublicKey, encodePublicKey, generateKeyPair, xeddsaSign, xeddsaVerify } from "../curve/index.ts";
import { SignalError } from "../errors.ts";
import {
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  encodeSenderKeyDistributionMessage,
  encodeSenderKeyMessage,
  SENDER_KEY_MESSAGE_VERSION,
  senderKeyMessageSignedParts,
} from "../proto/messages.ts";
import { messageKeySeed, nextChainKey, type SenderMessageKey, senderMessageKeyFromSeed } from "./chain.ts";
import { MAX_SENDER_MESSAGE_KEYS, SenderKeyRecord, type SenderKeyState } from "./record.ts";
import type { SenderKeyAddress, SenderKeyStore } from "./store.ts";
import { uuidFromBytes, uuidToBytes } from "./uuid.ts";

/** How far ahead of the chain a message's iteration may be (libsignal MAX_FORWARD_JUMPS). */
export const MAX_FORWARD_JUMPS = 25_000;
const MAX_ITERATION = 0xffffffff;

function currentMessageKey(state: SenderKeyState): SenderMessageKey {
  return senderMessageKeyFromSeed(state.iteration, messageKeySeed(state.chainKey));
}

function advance(state: SenderKeyState): void {
  if (state.iteration >= MAX_ITERATION) throw new SignalError("INVALID_RECORD", "sender key chain is exhausted");
  state.chainKey = nextChainKey(state.chainKey);
  state.iteration += 1;
}

/**
 * Create (on first use) our sender key for `distributionId` and return the
 * serialized SenderKeyDistributionMessage to hand to every group member.
 */
export async function createSenderKeyDistributionMessage(
  store: SenderKeyStore,
  sender: SenderKeyAddress,
  distributionId: string,
): Promise<Uint8Array> {
  const distributionBytes = uuidToBytes(distributionId);
  let record = await store.loadSenderKey(sender, distributionId);
  if (record === undefined || record.isEmpty) {
    record = new SenderKeyRecord();
    const random = getCrypto().randomBytes(4);
    // 31-bit chain ids, as libsignal (for libsignal-protocol-java compatibility).
    const chainId = new DataView(random.buffer, random.byteOffset, 4).getUint32(0) >>> 1;
    const signing = generateKeyPair();
    record.addState({
      messageVersion: SENDER_KEY_MESSAGE_VERSION,
      chainId,
      iteration: 0,
      chainKey: getCrypto().randomBytes(32),
      signingPublicKey: signing.publicKey,
      signingPrivateKey: signing.privateKey,
      messageKeys: [],
    });
    await store.storeSenderKey(sender, distributionId, record);
  }
  const state = record.currentState()!;
  return encodeSenderKeyDistributionMessage({
    distributionId: distributionBytes,
    chainId: state.chainId,
    iteration: state.iteration,
    chainKey: state.chainKey,
    signingKey: encodePublicKey(state.signingPublicKey),
  });
}

/** Store the sender key carried by a SenderKeyDistributionMessage received from `sender`. */
export async function processSenderKeyDistributionMessage(
  store: SenderKeyStore,
  sender: SenderKeyAddress,
  message: Uint8Array,
): Promise<void> {
  const { version, fields } = decodeSenderKeyDistributionMessage(message);
  const distributionId = uuidFromBytes(fields.distributionId);
  const record = (await store.loadSenderKey(sender, distributionId)) ?? new SenderKeyRecord();
  record.addState({
    messageVersion: version,
    chainId: fields.chainId,
    iteration: fields.iteration,
    chainKey: fields.chainKey,
    signingPublicKey: decodePublicKey(fields.signingKey),
    messageKeys: [],
  });
  await store.storeSenderKey(sender, distributionId, record);
}

/** Encrypt for the group: returns a serialized SenderKeyMessage. */
export async function groupEncrypt(
  store: SenderKeyStore,
  sender: SenderKeyAddress,
  distributionId: string,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const distributionBytes = uuidToBytes(distributionId);
  const record = await store.loadSenderKey(sender, distributionId);
  const state = record?.currentState();
  if (record === undefined || state === undefined) {
    throw new SignalError("NO_SENDER_KEY", `no sender key for distribution ${distributionId}`);
  }
  const signingPrivateKey = state.signingPrivateKey;
  if (signingPrivateKey === undefined) {
    throw new SignalError("NO_SENDER_KEY", "the current sender key state has no private signing key");
  }
  const key = currentMessageKey(state);
  const ciphertext = getCrypto().aes256CbcEncrypt(key.cipherKey, key.iv, plaintext);
  const serialized = encodeSenderKeyMessage(
    { distributionId: distributionBytes, chainId: state.chainId, iteration: key.iteration, ciphertext },
    (body) => xeddsaSign(signingPrivateKey, body),
  );
  advance(state);
  await store.storeSenderKey(sender, distributionId, record);
  return serialized;
}

/**
 * The message key for `iteration`: a cached skipped key, or derived by walking
 * the chain forward (caching the keys skipped on the way, at most 2,000).
 */
function takeMessageKey(state: SenderKeyState, iteration: number): SenderMessageKey {
  if (iteration < state.iteration) {
    const index = state.messageKeys.findIndex((k) => k.iteration === iteration);
    if (index < 0) {
      throw new SignalError("DUPLICATE_MESSAGE", `sender key iteration ${iteration} was already used or dropped`, {
        iteration,
        current: state.iteration,
      });
    }
    const [stored] = state.messageKeys.splice(index, 1);
    return senderMessageKeyFromSeed(stored!.iteration, stored!.seed);
  }
  if (iteration - state.iteration > MAX_FORWARD_JUMPS) {
    throw new SignalError("TOO_FAR_AHEAD", `sender key iteration ${iteration} is too far ahead`, {
      iteration,
      current: state.iteration,
    });
  }
  while (state.iteration < iteration) {
    state.messageKeys.push({ iteration: state.iteration, seed: messageKeySeed(state.chainKey) });
    if (state.messageKeys.length > MAX_SENDER_MESSAGE_KEYS) state.messageKeys.shift();
    advance(state);
  }
  const key = currentMessageKey(state);
  advance(state);
  return key;
}

/** Decrypt a serialized SenderKeyMessage from `sender`. */
export async function groupDecrypt(
  store: SenderKeyStore,
  sender: SenderKeyAddress,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  const message = decodeSenderKeyMessage(ciphertext);
  const distributionId = uuidFromBytes(message.fields.distributionId);
  const record = await store.loadSenderKey(sender, distributionId);
  if (record === undefined) throw new SignalError("NO_SENDER_KEY", `no sender key for distribution ${distributionId}`);
  const state = record.stateForChainId(message.fields.chainId);
  if (state === undefined) {
    throw new SignalError("NO_SENDER_KEY", `no sender key state for chain ${message.fields.chainId}`);
  }
  if (message.version !== state.messageVersion) {
    throw new SignalError("UNSUPPORTED_VERSION", `sender key message version ${message.version} does not match`);
  }
  const { body, signature } = senderKeyMessageSignedParts(message);
  if (!xeddsaVerify(state.signingPublicKey, body, signature)) {
    throw new SignalError("INVALID_SIGNATURE", "sender key message signature does not verify");
  }
  const key = takeMessageKey(state, message.fields.iteration);
  const plaintext = getCrypto().aes256CbcDecrypt(key.cipherKey, key.iv, message.fields.ciphertext);
  // Stored only after successful decryption, so a bad message cannot burn keys.
  await store.storeSenderKey(sender, distributionId, record);
  return plaintext;
}
