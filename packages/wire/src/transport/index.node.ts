/**
 * Parley's Noise transport for Node: everything of index.ts plus TCP and `ws` servers/clients and the
 * node:crypto suite. Server entry points work inside node:cluster workers (each worker listens or
 * receives sockets and calls handleTcpSocket / attachWebSocketServer).
 */

import { nodeSuite } from "../noise/suite.node.ts";
import type { StaticKeyPair } from "./types.ts";

export { nodeSuite } from "../noise/suite.node.ts";
export { connect } from "./connect.node.ts";
export * from "./index.ts";
export {
  createTcpServer,
  type DetachedTcpConnection,
  detachTcpConnection,
  handleTcpSocket,
  openTcpLink,
  resumeTcpConnection,
  TcpFrameLink,
} from "./tcp.node.ts";
export {
  attachWebSocketServer,
  handleWebSocket,
  NodeWebSocketLink,
  openWebSocketLink,
  type WebSocketServerOptions,
} from "./websocket.node.ts";

/** A fresh X25519 static key pair from node:crypto (overrides the pure-JS one of index.ts). */
export function generateStaticKeyPair(): StaticKeyPair {
  return nodeSuite.generateKeyPair();
}
