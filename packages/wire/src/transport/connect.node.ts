/** `connect` for Node: tcp:// or ws(s):// URLs, node:crypto suite. */
import { WireError } from "../errors.ts";
import { nodeSuite } from "../noise/suite.node.ts";
import { runClientHandshake } from "./handshake-client.ts";
import { resolveLimits } from "./limits.ts";
import type { FrameLink } from "./link.ts";
import { openTcpLink } from "./tcp.node.ts";
import type { ConnectOptions, ConnectResult } from "./types.ts";
import { openWebSocketLink } from "./websocket.node.ts";

export async function connect(options: ConnectOptions): Promise<ConnectResult> {
  const limits = resolveLimits(options.limits);
  const connectMs = options.timeouts?.connectMs ?? 10_000;
  let url: URL;
  try {
    url = new URL(options.url);
  } catch (err) {
    throw new WireError("PROTOCOL_VIOLATION", `bad URL ${options.url}`, { cause: err });
  }
  let link: FrameLink;
  if (url.protocol === "tcp:") {
    const port = Number(url.port);
    if (!url.hostname || !(port > 0)) throw new WireError("PROTOCOL_VIOLATION", `bad TCP URL ${options.url}`);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    link = await openTcpLink(host, port, connectMs, options.localAddress);
  } else if (url.protocol === "ws:" || url.protocol === "wss:") {
    link = await openWebSocketLink(options.url, connectMs);
  } else {
    throw new WireError("PROTOCOL_VIOLATION", `unsupported URL scheme ${url.protocol}`);
  }
  return runClientHandshake({
    link,
    suite: nodeSuite,
    clientStaticKeyPair: options.clientStaticKeyPair,
    ...(options.serverStaticPublicKey ? { serverStaticPublicKey: options.serverStaticPublicKey } : {}),
    ...(options.acceptServerKey ? { acceptServerKey: options.acceptServerKey } : {}),
    loginPayload: options.loginPayload,
    limits,
    handshakeTimeoutMs: options.timeouts?.handshakeMs ?? limits.handshakeTimeoutMs,
  });
}
