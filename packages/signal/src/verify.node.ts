// Node entry of `@parley/signal/verify` (package.json "node" condition): the same checks with the
// node:crypto provider installed, so the server verifies XEdDSA signatures with OpenSSL's Ed25519
// instead of pure-JS field arithmetic (~9 ms of CPU per registration before).
import { setCrypto } from "./crypto/index.ts";
import { nodeCrypto } from "./crypto/node.node.ts";

setCrypto(nodeCrypto);

export * from "./verify.ts";
