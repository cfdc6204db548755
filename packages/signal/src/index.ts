// Public API of @parley/signal (browser-safe; Node gets index.node.ts, which
// installs the node:crypto provider first).

export const PACKAGE = "@parley/signal";

export * from "./crypto/index.ts";
export * from "./curve/index.ts";
export { isSignalError, SignalError, type SignalErrorCode } from "./errors.ts";
export * from "./fingerprint/index.ts";
export {
  createSenderKeyDistributionMessage,
  groupDecrypt,
  groupEncrypt,
  InMemorySenderKeyStore,
  MAX_SENDER_KEY_STATES,
  MAX_SENDER_MESSAGE_KEYS,
  processSenderKeyDistributionMessage,
  type SenderKeyAddress,
  SenderKeyRecord,
  type SenderKeyStore,
  uuidFromBytes,
  uuidToBytes,
} from "./groups/index.ts";
export * from "./keys/bundle.ts";
export * from "./keys/identity.ts";
export {
  deserializeKemPublicKey,
  generateKemPreKeyPair,
  KEM_TYPE_KYBER1024,
  KEM_TYPE_MLKEM1024,
  type KemPreKeyPair,
  type KemType,
  kemPreKeyDecapsulate,
  kemPreKeyEncapsulate,
  serializeKemPublicKey,
} from "./keys/kem.ts";
export * from "./keys/prekeys.ts";
export * from "./keys/records.ts";
export {
  type CiphertextMessage,
  type CiphertextType,
  decryptMessage,
  encryptMessage,
  hasSession,
  processPreKeyBundle,
  SessionBuilder,
  SessionCipher,
  type SessionOptions,
} from "./session/cipher.ts";
export { SessionRecord } from "./session/record.ts";
export {
  ARCHIVED_STATES_MAX_LENGTH,
  MAX_FORWARD_JUMPS,
  MAX_MESSAGE_KEYS,
  MAX_RECEIVER_CHAINS,
  type SessionState,
} from "./session/state.ts";
export * from "./stores/interfaces.ts";
export * from "./stores/memory.ts";
export { verifySignedPreKey } from "./verify.ts";
export { SESSION_VERSION_CLASSICAL, SESSION_VERSION_PQXDH } from "./x3dh/index.ts";
