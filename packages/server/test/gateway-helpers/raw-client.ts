// A raw protocol client for server tests, built from @parley/wire only (the
// server package never depends on @parley/client). It speaks the stanza codec
// over a real Noise connection, records everything it receives, and exposes
// the close code/reason the server sent, so tests can watch hostile and
// well-behaved clients from the outside, exactly as a real device would.
import { once } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import {
  type AckStanza,
  type ClientHello,
  type Connection,
  connect,
  DICTIONARY_VERSION,
  decodeServerHello,
  decodeStanza,
  encodeClientHello,
  encodeStanza,
  type FrameLink,
  generateStaticKeyPair,
  type IqRequest,
  type IqResult,
  NodeWebSocketLink,
  nodeSuite,
  PROTOCOL_VERSION,
  resolveLimits,
  runClientHandshake,
  type ServerHello,
  type Stanza,
  type StanzaError,
  type StaticKeyPair,
  TcpFrameLink,
  WireContext,
} from "@parley/wire";
import { WebSocket } from "ws";
import { type DeviceKeys, newDeviceKeys, registerDeviceRequest } from "./keys.ts";

export interface CloseRecord {
  code: number;
  reason: string;
}

/** An iq answered with iq-error. */
export class IqError extends Error {
  constructor(readonly error: StanzaError) {
    super(`${error.code}: ${error.text ?? ""}`);
  }
}

export function hello(fields: Partial<ClientHello> = {}): Uint8Array {
  return encodeClientHello({
    protocolVersion: PROTOCOL_VERSION,
    dictionaryVersion: DICTIONARY_VERSION,
    device: "registering",
    passive: false,
    userAgent: "parley-test/raw",
    ...fields,
  });
}

export class RawClient {
  /** Every stanza received, in order. */
  readonly received: Stanza[] = [];
  closed: CloseRecord | undefined;
  readonly serverHello: ServerHello;
  /** Acknowledge deliveries and receipts automatically (a well-behaved device). */
  autoAck = true;
  private readonly encodeCtx = new WireContext();
  private readonly decodeCtx = new WireContext();
  private nextIq = 1;
  private readonly pendingIq = new Map<number, { resolve(r: IqResult): void; reject(e: Error): void }>();
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly connection: Connection,
    loginResult: Uint8Array,
    readonly label: string,
  ) {
    this.serverHello = decodeServerHello(loginResult);
    connection.onStanza((bytes) => this.onBytes(bytes));
    connection.onClose((code, reason) => {
      this.closed = { code, reason };
      for (const p of this.pendingIq.values()) p.reject(new Error(`${label}: connection closed (${code} ${reason})`));
      this.pendingIq.clear();
      this.notify();
    });
    // The transport reports a close only to listeners registered before it: a close record that
    // arrived in the same read as the login record has already happened by now.
    if (connection.state !== "open") this.closed = { code: -1, reason: "closed before the client could listen" };
  }

  private onBytes(bytes: Uint8Array): void {
    let stanza: Stanza;
    try {
      stanza = decodeStanza(bytes, undefined, this.decodeCtx);
    } catch (err) {
      // The server must only ever send well-formed stanzas: make it loud.
      this.received.push({ kind: "node", node: { tag: "undecodable", attrs: { error: String(err) } } });
      this.notify();
      return;
    }
    this.received.push(stanza);
    if (stanza.kind === "iq-result" || stanza.kind === "iq-error") {
      const p = this.pendingIq.get(stanza.id);
      if (p) {
        this.pendingIq.delete(stanza.id);
        if (stanza.kind === "iq-result") p.resolve(stanza.result);
        else p.reject(new IqError(stanza.error));
      }
    }
    if (this.autoAck) {
      if (stanza.kind === "delivery" || (stanza.kind === "receipt" && stanza.seq !== undefined)) {
        this.send({ kind: "devack", seqs: [stanza.seq!] });
      } else if (stanza.kind === "notification" && stanza.event.type !== "queue-empty") {
        this.send({ kind: "devack", seqs: [stanza.id] });
      }
    }
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  send(stanza: Stanza): void {
    if (this.closed || this.connection.state !== "open") return;
    this.connection.send(encodeStanza(stanza, this.encodeCtx));
  }

  /** Sends raw bytes as one stanza (for malformed input). */
  sendBytes(bytes: Uint8Array): void {
    this.connection.send(bytes);
  }

  iq(request: IqRequest): Promise<IqResult> {
    const id = this.nextIq++;
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error(`${this.label}: closed (${this.closed.code} ${this.closed.reason})`));
      this.pendingIq.set(id, { resolve, reject });
      this.send({ kind: "iq", id, request });
    });
  }

  /** Resolves with the first value `pick` returns for the stanzas received so far or later. */
  waitFor<T>(pick: (c: RawClient) => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false;
        try {
          v = pick(this);
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (v !== undefined && v !== false) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: timed out waiting for ${what} (closed: ${JSON.stringify(this.closed)})`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  waitClosed(timeoutMs = 10_000): Promise<CloseRecord> {
    return this.waitFor((c) => c.closed, "the connection to close", timeoutMs);
  }

  ackFor(id: Uint8Array): AckStanza | undefined {
    const hex = Buffer.from(id).toString("hex");
    return this.received.find((s): s is AckStanza => s.kind === "ack" && Buffer.from(s.id).toString("hex") === hex);
  }

  deliveries() {
    return this.received.filter((s) => s.kind === "delivery");
  }

  close(): void {
    if (!this.closed) this.connection.close(1000, "test done");
  }
}

/** What a registered raw device needs to log in again. */
export interface RawIdentity {
  user: string;
  device: number;
  noise: StaticKeyPair;
  keys: DeviceKeys;
}

export async function openRaw(
  url: string,
  noise: StaticKeyPair,
  loginHello: Uint8Array,
  label: string,
  serverStaticPublicKey?: Uint8Array,
): Promise<RawClient> {
  const r = await connect({
    url,
    clientStaticKeyPair: noise,
    loginPayload: loginHello,
    ...(serverStaticPublicKey ? { serverStaticPublicKey } : {}),
    timeouts: { connectMs: 5_000, handshakeMs: 5_000 },
  });
  return new RawClient(r.connection, r.loginResult, label);
}

/**
 * Registers `name` on a `dev: true` server through the iq stanzas a real client uses
 * (registering login → register-account → register-device with validly signed keys).
 * The registration connection is then closed; `login` connects as the new device.
 */
export async function registerRaw(url: string, name: string): Promise<RawIdentity> {
  const noise = generateStaticKeyPair();
  const keys = newDeviceKeys();
  const c = await openRaw(url, noise, hello(), `register ${name}`);
  try {
    const account = await c.iq({ op: "register-account", name, code: "" });
    if (account.op !== "account") throw new Error(`register-account answered ${account.op}`);
    const device = await c.iq(registerDeviceRequest(noise.publicKey, keys));
    if (device.op !== "device") throw new Error(`register-device answered ${device.op}`);
    return { user: account.user, device: device.device, noise, keys };
  } finally {
    c.close();
    await c.waitClosed().catch(() => {});
  }
}

/** Logs a registered device in (XX handshake, hello naming its user and device). */
export function login(
  url: string,
  id: RawIdentity,
  label = id.user,
  extra: Partial<ClientHello> = {},
): Promise<RawClient> {
  return openRaw(url, id.noise, hello({ user: id.user, device: id.device, ...extra }), label);
}

let idCounter = 0;
/** A fresh 8-byte message id (unique within the test process). */
export function messageId(): Uint8Array {
  const id = new Uint8Array(8);
  new DataView(id.buffer).setUint32(0, process.pid);
  new DataView(id.buffer).setUint32(4, ++idCounter);
  return id;
}

/** A 1:1 message to every device in `devices` of `to` (the body is opaque to the server). */
export function messageTo(to: string, devices: number[], body: Uint8Array, id = messageId()): Stanza {
  return {
    kind: "message",
    id,
    to,
    timestamp: Math.floor(Date.now() / 1000),
    enc: devices.map((device) => ({ to: { user: to, device }, type: "msg" as const, body })),
  };
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Runs the client handshake over a link the test built itself (to reach the socket under it). */
export async function openOverLink(link: FrameLink, noise: StaticKeyPair, loginHello: Uint8Array, label: string) {
  const r = await runClientHandshake({
    link,
    suite: nodeSuite,
    clientStaticKeyPair: noise,
    loginPayload: loginHello,
    limits: resolveLimits(undefined),
    handshakeTimeoutMs: 5_000,
  });
  return new RawClient(r.connection, r.loginResult, label);
}

/** A logged-in raw client over TCP whose socket the test controls (pause() = stop reading). */
export async function loginPausable(port: number, id: RawIdentity, label = id.user) {
  const socket = netConnect({ host: "127.0.0.1", port });
  await once(socket, "connect");
  const client = await openOverLink(
    new TcpFrameLink(socket, 0xffff),
    id.noise,
    hello({ user: id.user, device: id.device }),
    label,
  );
  return { client, socket };
}

/** A raw client over WebSocket that also hands back the `ws` socket (to write raw WebSocket frames). */
export async function openWithWebSocket(url: string, noise: StaticKeyPair, loginHello: Uint8Array, label: string) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await once(ws, "open");
  const wsClose = new Promise<CloseRecord>((resolve) =>
    ws.once("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString("utf8") })),
  );
  const client = await openOverLink(new NodeWebSocketLink(ws, 0xffff), noise, loginHello, label);
  // The TCP socket under the WebSocket: `ws` keeps it in a private field.
  const socket = (ws as unknown as { _socket: Socket })._socket;
  return { client, ws, socket, wsClose };
}
