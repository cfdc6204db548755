// Node entry point (package.json "node" condition): same API, with the
// node:crypto provider installed so curve and cipher operations run natively.

import { setCrypto } from "./crypto/index.ts";
import { nodeCrypto } from "./crypto/node.node.ts";

setCrypto(nodeCrypto);

export { nodeCrypto } from "./crypto/node.node.ts";
export * from "./index.ts";
