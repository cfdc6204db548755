export { messageKeySeed, nextChainKey, type SenderMessageKey, senderMessageKeyFromSeed } from "./chain.ts";
export {
  createSenderKeyDistributionMessage,
  groupDecrypt,
  groupEncrypt,
  MAX_FORWARD_JUMPS,
  processSenderKeyDistributionMessage,
} from "./cipher.ts";
export {
  MAX_SENDER_KEY_STATES,
  MAX_SENDER_MESSAGE_KEYS,
  SenderKeyRecord,
  type SenderKeyState,
  type StoredMessageKey,
} from "./record.ts";
export { InMemorySenderKeyStore, type SenderKeyAddress, type SenderKeyStore } from "./store.ts";
export { uuidFromBytes, uuidToBytes } from "./uuid.ts";
