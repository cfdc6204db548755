// Node entry of @parley/wire (selected by the "node" export condition): the
// browser-safe API plus TCP / `ws` transports and the node:crypto Noise suite.
export * from "./index.ts";
export * from "./transport/index.node.ts";
export { generateStaticKeyPair } from "./transport/index.node.ts";
