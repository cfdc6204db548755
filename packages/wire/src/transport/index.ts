/**
 * Parley's Noise transport, browser-safe part: the Connection API, close codes, framing, record
 * layer, handshake drivers over any FrameLink, and the browser WebSocket client (@noble/* crypto).
 * Node servers and clients (TCP, `ws`, node:crypto) are in index.node.ts.
 */

import { nobleSuite } from "../noise/suite-noble.ts";
import type { StaticKeyPair } from "./types.ts";

export { BrowserWebSocketLink, connectBrowser } from "./browser.ts";
export { FRAME_HEADER_SIZE, FrameDecoder, writeFrameHeader } from "./framing.ts";
export { type ClientHandshakeOptions, runClientHandshake } from "./handshake-client.ts";
export { type AcceptOptions, acceptLink, LoginRejectedError } from "./handshake-server.ts";
export { DEFAULT_LIMITS, resolveLimits } from "./limits.ts";
export type { FrameLink, FrameLinkHandlers } from "./link.ts";
export { HandshakeFrameType, PARLEY_NOISE_CIPHER, parleyPrologue } from "./prologue.ts";
export { LoginStatus, MAX_CLOSE_REASON_BYTES, RecordType } from "./record.ts";
export {
  defaultScheduler,
  type HandoffState,
  type Scheduler,
  SecureConnection,
  type SessionOptions,
} from "./session.ts";
export {
  type AcceptedLogin,
  type AuthenticateResult,
  CloseCode,
  type Connection,
  type ConnectOptions,
  type ConnectResult,
  type HandshakePattern,
  type ServerOptions,
  type StaticKeyPair,
  type TransportLimits,
} from "./types.ts";

/** A fresh X25519 static key pair (a device's transport identity or a server key), pure JS. */
export function generateStaticKeyPair(): StaticKeyPair {
  return nobleSuite.generateKeyPair();
}
