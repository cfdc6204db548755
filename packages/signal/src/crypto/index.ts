// The process-wide CryptoProvider. Defaults to the pure-JS noble provider so
// that the package works unchanged in browsers; Node entry points call
// setCrypto(nodeCrypto) (from node.node.ts) for 10-30x faster curve ops.

import { nobleCrypto } from "./noble.ts";
import type { CryptoProvider } from "./provider.ts";

export * from "./bytes.ts";
export { nobleCrypto } from "./noble.ts";
export type { CryptoProvider, X25519KeyPair } from "./provider.ts";

let current: CryptoProvider = nobleCrypto;

export function getCrypto(): CryptoProvider {
  return current;
}

export function setCrypto(provider: CryptoProvider): void {
  current = provider;
}
