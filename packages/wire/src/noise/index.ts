/** Noise Protocol Framework (rev 34) for Parley: 25519, AESGCM/ChaChaPoly, SHA-256; NN, XX, IK, XXfallback. */
export { CipherState } from "./cipher-state.ts";
export { type HandshakeOptions, HandshakeState, protocolName, type SplitResult } from "./handshake-state.ts";
export { type HandshakePatternDef, PATTERNS, type PatternName, type Token } from "./patterns.ts";
export {
  type BoundAead,
  concatBytes,
  DH_LEN,
  HASH_LEN,
  KEY_LEN,
  type KeyPair,
  MAX_NOISE_MESSAGE,
  type NoiseCipherName,
  type NoiseCryptoSuite,
  TAG_LEN,
} from "./suite.ts";
export { nobleSuite } from "./suite-noble.ts";
export { SymmetricState } from "./symmetric-state.ts";
