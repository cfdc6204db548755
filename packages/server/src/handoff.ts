// Connection affinity between cluster workers. node:cluster hands each new TCP connection to any
// worker; the account is known only after the Noise handshake and login. A device's queues live in
// one worker's shard (shardOf), and when the device is connected to that same worker, every
// delivery, ack and receipt of its queue stays inside one process: no mesh call, no wake event.
// So right after the login, a worker that does not own the account's shard passes the socket (as
// a raw handle, through the primary) to the worker that does, with the session's cipher state.
// The client sees nothing: the same TCP connection goes on.
//
// WebSocket connections are not handed off (the upgrade's HTTP state lives in `ws`); they are served
// where they land, through the mesh, as before.
import type { Server, Socket } from "node:net";
import type { HandoffState } from "@parley/wire";

/** What travels over the cluster's IPC channel with the socket's handle (JSON: bytes as base64). */
export interface HandoffMessage {
  parleyHandoff: {
    /** The worker slot (= queue shard) that takes the connection. */
    to: number;
    accountId: string;
    deviceId: number;
    passive: boolean;
    unread: string;
    held: string[];
    send: { key: string; nonce: string };
    receive: { key: string; nonce: string };
    recordsSinceRekey: number;
    remoteStaticPublicKey: string;
    pattern: HandoffState["pattern"];
  };
}

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString("base64");
// A copy, not a view: Buffer.from takes small buffers from a shared 8 KiB pool, and a view kept for
// the connection's life (its peer's static key) would keep the whole pool alive: ~400 bytes per
// handed-off connection.
const bytes = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

export function encodeHandoff(
  to: number,
  login: { accountId: string; deviceId: number; passive: boolean },
  unread: Uint8Array,
  state: HandoffState,
): HandoffMessage {
  return {
    parleyHandoff: {
      to,
      ...login,
      unread: b64(unread),
      held: state.held.map(b64),
      send: { key: b64(state.send.key), nonce: state.send.nonce.toString() },
      receive: { key: b64(state.receive.key), nonce: state.receive.nonce.toString() },
      recordsSinceRekey: state.recordsSinceRekey,
      remoteStaticPublicKey: b64(state.remoteStaticPublicKey),
      pattern: state.pattern,
    },
  };
}

export function isHandoffMessage(msg: unknown): msg is HandoffMessage {
  return typeof msg === "object" && msg !== null && "parleyHandoff" in msg;
}

export function decodeHandoff(msg: HandoffMessage): {
  to: number;
  login: { accountId: string; deviceId: number; passive: boolean };
  unread: Uint8Array;
  state: HandoffState;
} {
  const m = msg.parleyHandoff;
  return {
    to: m.to,
    login: { accountId: m.accountId, deviceId: m.deviceId, passive: m.passive },
    unread: bytes(m.unread),
    state: {
      send: { key: bytes(m.send.key), nonce: BigInt(m.send.nonce) },
      receive: { key: bytes(m.receive.key), nonce: BigInt(m.receive.nonce) },
      recordsSinceRekey: m.recordsSinceRekey,
      remoteStaticPublicKey: bytes(m.remoteStaticPublicKey),
      pattern: m.pattern,
      held: m.held.map(bytes),
    },
  };
}

/**
 * The raw handle of a socket or of a listening server, to send over IPC as a native handle: the
 * receiver gets it without starting to read or accept (a net.Socket would start reading in the
 * primary, which only relays it, and bytes it read would be lost; a net.Server would start an accept
 * loop there, see ./tcp-listener.ts).
 */
export function rawHandleOf(socketOrServer: Socket | Server): object | undefined {
  return (socketOrServer as unknown as { _handle?: object | null })._handle ?? undefined;
}
