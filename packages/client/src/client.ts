// The Parley client: one device profile talking to one server.
//
// Order of operations for sending: the message is written to the encrypted
// local store first (outbox, status pending), then encrypted once per device
// of the peer and of our own other devices, sent, and marked "sent" when the
// server's ack (first tick) arrives. Receiving: decrypt, store (idempotent on
// sender + message id), and only then acknowledge the queue entry, so a crash
// at any point loses nothing and duplicates nothing.
import {
  bytesEqual,
  createFingerprint,
  decryptMessage,
  encodePublicKey,
  encryptMessage,
  fromHex,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generateKyberPreKeys,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  getCrypto,
  isSignalError,
  type ProtocolAddress,
  processPreKeyBundle,
  type PreKeyBundle as SignalBundle,
  type SignalStores,
  serializeKemPublicKey,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSignedPreKeyRecord,
  toHex,
} from "@parley/signal";
import {
  type ChatState,
  type Connection,
  type ConnectOptions,
  type ConnectResult,
  DeferredAcks,
  type DeliveryStanza,
  type DeviceCiphertext,
  DICTIONARY_VERSION,
  decodeDeviceList,
  decodeLinkCode,
  decodeServerHello,
  decodeStanza,
  encodeClientHello,
  encodeDeviceList,
  encodeLinkCode,
  encodeStanza,
  type IqRequest,
  type IqResult,
  type LinkCode,
  type NotificationStanza,
  PROTOCOL_VERSION,
  type ReceiptStanza,
  type Stanza,
  type StaticKeyPair,
  type Address as WireAddress,
  type PreKeyBundle as WireBundle,
  WireContext,
} from "@parley/wire";
import { acceptLinkOffer, buildLinkOffer, DeviceTrustError, signDeviceList, verifyDeviceList } from "./devices.ts";
import { Emitter } from "./emitter.ts";
import { GroupEngine, type GroupEvent, type GroupView } from "./groups.ts";
import { decodeMediaDescriptor, encodeMediaDescriptor, type MediaDescriptor } from "./media/descriptor.ts";
import { decodeContent, encodeContent } from "./payload.ts";
import { deserializeIdentity, type IdentityChangePolicy, serializeIdentity, signalStoresFor } from "./signal-stores.ts";
import { directChatId, groupChatId, parseChatId } from "./store/chat-id.ts";
import type { MessageStatus, ProfileStore, StoredMessage } from "./store/types.ts";

export type ConnectFn = (options: ConnectOptions) => Promise<ConnectResult>;

export type ConnectionState = "disconnected" | "connecting" | "connected" | "stopped";

export interface ClientEvents {
  message: { message: StoredMessage; chatId: string; media?: MediaDescriptor };
  /** Our outgoing message changed status (sent / delivered / read). */
  status: { id: string; status: MessageStatus };
  presence: { user: string; online: boolean; lastSeen?: number };
  /** `group` is set for typing in a group chat. */
  typing: { user: string; state: ChatState; group?: string };
  /** A verified change of a group we are (or were) in: membership, admins, subject, invite. */
  group: GroupEvent;
  "identity-changed": { address: ProtocolAddress; identityKey: Uint8Array };
  connection: { state: ConnectionState; reason?: string };
  /** A message could not be decrypted; a retry was requested and a placeholder stored. */
  "decrypt-failed": { from: WireAddress; id: string; error: string };
  /** The backlog queued while offline has been fully received. */
  "queue-empty": Record<string, never>;
  /** Our primary sent this (new) device the history bundle: download and import it (openClient does). */
  history: { media: MediaDescriptor; from: WireAddress };
  /** A history bundle was imported: `count` messages. */
  "history-imported": { count: number };
  error: { error: Error };
}

export class ClientError extends Error {
  override readonly name = "ClientError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  store: ProfileStore;
  connect: ConnectFn;
  /** Used by register(); afterwards the profile remembers it. */
  serverUrl?: string;
  identityChangePolicy?: IdentityChangePolicy;
  userAgent?: string;
  /** One-time EC prekeys generated at registration and on each refill (default 100). */
  preKeyBatch?: number;
  /**
   * One-time KEM prekeys generated at registration and on each refill (default 20). A KEM key is
   * 1.6 KB, so a batch must fit one stanza (< 64 KiB) next to the EC keys.
   */
  kyberPreKeyBatch?: number;
  /** Reconnect automatically after a lost connection (default true). */
  reconnect?: boolean;
  now?: () => number;
}

const NOISE_KEY = "noiseStaticKeyPair";
/** The account's primary identity key (33 bytes): what our device list must be signed with. */
const PRIMARY_IDENTITY = "primaryIdentityKey";
/** Primary only: the device list it last published (unsigned form). */
const OWN_DEVICE_LIST = "ownDeviceList";

interface DeviceKeyMaterial {
  identity: { privateKey: Uint8Array; publicKey: Uint8Array };
  registrationId: number;
  signed: ReturnType<typeof generateSignedPreKey>;
  lastResort: ReturnType<typeof generateKyberPreKey>;
  preKeys: ReturnType<typeof generatePreKeys>;
  kyberKeys: ReturnType<typeof generateKyberPreKeys>;
}

/** The public half of a new device's keys, as register-device and link-complete carry it. */
function deviceKeysRequest(keys: DeviceKeyMaterial, noise: StaticKeyPair) {
  return {
    noiseKey: noise.publicKey,
    registrationId: keys.registrationId,
    identityKey: encodePublicKey(keys.identity.publicKey),
    signedPreKey: {
      id: keys.signed.id,
      key: encodePublicKey(keys.signed.keyPair.publicKey),
      signature: keys.signed.signature,
    },
    kyberPreKey: {
      id: keys.lastResort.id,
      key: serializeKemPublicKey(keys.lastResort.keyPair.type, keys.lastResort.keyPair.publicKey),
      signature: keys.lastResort.signature,
    },
    oneTimePreKeys: keys.preKeys.map((k) => ({ id: k.id, key: encodePublicKey(k.keyPair.publicKey) })),
    kyberOneTimePreKeys: keys.kyberKeys.map((k) => ({
      id: k.id,
      key: serializeKemPublicKey(k.keyPair.type, k.keyPair.publicKey),
      signature: k.signature,
    })),
  };
}
const IQ_TIMEOUT_MS = 20_000;
/**
 * How long stop() lets the stanza being processed finish before it closes the connection anyway
 * (a handler can wait on a server answer; an unresponsive server must not hold stop() for the IQ
 * timeout).
 */
const STOP_GRACE_MS = 2_000;
const SEND_WINDOW = 32;
const MAX_SEND_ATTEMPTS = 5;
const PREKEY_REFILL_BELOW = 20;

/** Where a message's attachment descriptor is kept (the opaque area of the encrypted store). */
const mediaKey = (sender: string, id: string) => `media:${sender}:${id}`;

function toSignalBundle(b: WireBundle): SignalBundle {
  return {
    registrationId: b.registrationId,
    deviceId: b.device,
    identityKey: b.identityKey,
    signedPreKey: { id: b.signedPreKey.id, publicKey: b.signedPreKey.key, signature: b.signedPreKey.signature },
    kyberPreKey: { id: b.kyberPreKey.id, publicKey: b.kyberPreKey.key, signature: b.kyberPreKey.signature },
    ...(b.oneTimePreKey ? { preKey: { id: b.oneTimePreKey.id, publicKey: b.oneTimePreKey.key } } : {}),
  };
}

interface PendingSend {
  id: string;
  resolve: (serverTimestamp: number) => void;
  reject: (err: ClientError) => void;
}

export class ParleyClient extends Emitter<ClientEvents> {
  readonly store: ProfileStore;
  private readonly connectFn: ConnectFn;
  private readonly signal: SignalStores;
  private readonly options: ClientOptions;
  private readonly now: () => number;

  private connection: Connection | undefined;
  private ctx = new WireContext();
  private state: ConnectionState = "disconnected";
  private stopped = false;
  private reconnectAttempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private nextIqId = 1;
  private readonly iqs = new Map<
    number,
    { resolve: (r: IqResult) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();
  private readonly acks = new Map<string, PendingSend>();
  private readonly deviceCache = new Map<string, number[]>();
  private flushing = false;
  /** Serializes encrypt+send (see sendEncrypted). */
  private sendChain: Promise<unknown> = Promise.resolve();
  private flushAgain = false;
  /** The outbox flush running now: stop() waits for it, since its last steps write the store. */
  private outboxFlush: Promise<void> | undefined;
  /** Work started without waiting for it (see inBackground): stop() waits for it too. */
  private readonly background = new Set<Promise<void>>();
  /** Flushes again when the earliest entry put off by a failed attempt (backoff) is due. */
  private outboxRetryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Serializes stanza processing so decryption happens in queue order. */
  private inbound: Promise<void> = Promise.resolve();
  /**
   * Bumped by stop(): stanzas received before it that have not started processing are dropped.
   * They are unacknowledged, so the server pushes them again at the next login; a stop during a
   * long offline drain then returns after one stanza, not after the whole backlog.
   */
  private inboundEpoch = 0;
  /** Acks of receipts and notifications: they ride with the next stanza sent (wire/deferred-acks.ts). */
  private readonly deferredAcks = new DeferredAcks((seqs) => this.sendDevack(seqs));
  private readonly retriedIds = new Set<string>();
  private connectedWaiters: (() => void)[] = [];
  /** Set while a companion waits for its primary's link offer. */
  private pendingLinkOffer: ((payload: Uint8Array) => void) | undefined;
  /** Identity keys of each user's devices, from their verified device lists. */
  private readonly listKeys = new Map<string, Map<number, Uint8Array>>();
  private readonly groupEngine: GroupEngine;

  constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.store = options.store;
    this.connectFn = options.connect;
    this.now = options.now ?? Date.now;
    this.signal = signalStoresFor(
      options.store,
      options.identityChangePolicy ?? "accept-and-notify",
      (address, identityKey) => this.emit("identity-changed", { address, identityKey }),
    );
    this.groupEngine = new GroupEngine({
      store: this.store,
      signal: this.signal,
      me: () => ({ user: this.accountName!, device: this.deviceId! }),
      now: () => this.now(),
      iq: (request) => this.iq(request),
      sendStanza: (stanza) => this.sendStanza(stanza),
      expectAck: (id) => this.expectAck(id),
      identityKeyPair: () => {
        const bytes = this.store.getMeta("identityKeyPair")!;
        return { privateKey: bytes.slice(0, 32), publicKey: bytes.slice(32) };
      },
      deviceIdentityKey: async (user, device) => {
        await this.devicesOf(user);
        let key = this.listKeys.get(user)?.get(device);
        if (!key) {
          await this.devicesOf(user, true);
          key = this.listKeys.get(user)?.get(device);
        }
        return key;
      },
      devicesOf: (user, refresh) => this.devicesOf(user, refresh),
      ensureSessions: (user, devices) => this.ensureSessions(user, devices),
      devack: (seq) => this.devack(seq),
      emitGroup: (event) => this.emit("group", event),
      emitMessage: (message, chatId) => this.emit("message", { message, chatId }),
      emitError: (error) => this.emit("error", { error }),
      emitDecryptFailed: (from, id, error) => this.emit("decrypt-failed", { from, id, error }),
    });
  }

  /** Resolves with the server time (s) of the ack of our message `id`, rejects with its error. */
  private expectAck(id: string): Promise<number> {
    const ack = new Promise<number>((resolve, reject) => this.acks.set(id, { id, resolve, reject }));
    ack.catch(() => {}); // observed by the caller; no unhandled rejection if it never looks
    return ack;
  }

  get accountName(): string | undefined {
    return this.store.getMeta("accountName");
  }
  get deviceId(): number | undefined {
    return this.store.getMeta("deviceId");
  }
  get isRegistered(): boolean {
    return this.accountName !== undefined && this.store.getOpaque(NOISE_KEY) !== undefined;
  }
  get connectionState(): ConnectionState {
    return this.state;
  }

  private noiseKeyPair(): StaticKeyPair {
    const raw = this.store.getOpaque(NOISE_KEY);
    if (!raw) throw new ClientError("NOT_REGISTERED", "this profile is not registered");
    return { privateKey: raw.slice(0, 32), publicKey: raw.slice(32) };
  }

  // ------------------------------------------------------------ registration

  /**
   * Registers `name` on the server with a new primary device. Without `code` on a server that
   * verifies names, the server sends a code (to its log by default) and this resolves
   * `{ status: "code-sent" }`: call again with the code.
   */
  async register(
    name: string,
    code = "",
  ): Promise<{ status: "registered"; user: string; device: number } | { status: "code-sent" }> {
    if (this.isRegistered)
      throw new ClientError("ALREADY_REGISTERED", `this profile is already registered as ${this.accountName}`);
    const url = this.options.serverUrl ?? this.store.getMeta("serverUrl");
    if (!url) throw new ClientError("NO_SERVER", "no server URL given");
    const noise = this.pendingNoiseKey();
    const { connection, serverStaticPublicKey } = await this.connectUnregistered(url, noise);
    try {
      const account = await this.iq({ op: "register-account", name, code });
      if (account.op === "ok") return { status: "code-sent" };
      if (account.op !== "account") throw new ClientError("PROTOCOL", "unexpected answer to register-account");

      const keys = this.generateDeviceKeys();
      const result = await this.iq({ op: "register-device", ...deviceKeysRequest(keys, noise) });
      if (result.op !== "device") throw new ClientError("PROTOCOL", "unexpected answer to register-device");
      this.persistDevice(keys, noise, { user: account.user, device: result.device, url, serverStaticPublicKey });
      return { status: "registered", user: account.user, device: result.device };
    } finally {
      // Detach first: a close listener that still saw this as the current connection would
      // schedule a reconnect, and that second connection would replace the caller's own.
      this.connection = undefined;
      connection.close(1000, "registration done");
    }
  }

  /** Fresh keys for a new device: identity, registration id, signed and last-resort KEM prekeys, one-time prekeys. */
  private generateDeviceKeys(): DeviceKeyMaterial {
    const identity = generateIdentityKeyPair();
    const batch = this.options.preKeyBatch ?? 100;
    const kyberBatch = Math.min(30, this.options.kyberPreKeyBatch ?? 20);
    return {
      identity,
      registrationId: generateRegistrationId(),
      signed: generateSignedPreKey(identity, 1, this.now()),
      lastResort: generateKyberPreKey(identity, 1, { lastResort: true, timestamp: this.now() }),
      preKeys: generatePreKeys(1, batch),
      kyberKeys: generateKyberPreKeys(identity, 2, kyberBatch),
    };
  }

  /** Saves a registered (or linked) device's keys and facts in one transaction. */
  private persistDevice(
    keys: DeviceKeyMaterial,
    noise: StaticKeyPair,
    facts: {
      user: string;
      device: number;
      url: string;
      serverStaticPublicKey: Uint8Array;
      primaryIdentityKey?: Uint8Array;
    },
  ): void {
    this.store.transaction(() => {
      this.store.setMeta("accountName", facts.user);
      this.store.setMeta("deviceId", facts.device);
      this.store.setMeta("serverUrl", facts.url);
      this.store.setMeta("serverStaticPublicKey", facts.serverStaticPublicKey);
      this.store.setMeta("registrationId", keys.registrationId);
      this.store.setMeta("identityKeyPair", serializeIdentity(keys.identity));
      this.store.setMeta("nextPreKeyId", keys.preKeys.length + 1);
      this.store.setMeta("nextSignedPreKeyId", 2);
      this.store.setMeta("nextKyberPreKeyId", keys.kyberKeys.length + 2);
      this.store.setMeta("signedPreKeyRotatedAt", this.now());
      this.store.savePreKey("signed", keys.signed.id, serializeSignedPreKeyRecord(keys.signed));
      this.store.savePreKey("kyber", keys.lastResort.id, serializeKyberPreKeyRecord(keys.lastResort));
      for (const k of keys.preKeys) this.store.savePreKey("prekey", k.id, serializePreKeyRecord(k));
      for (const k of keys.kyberKeys) this.store.savePreKey("kyber", k.id, serializeKyberPreKeyRecord(k));
      this.store.setOpaque(NOISE_KEY, new Uint8Array([...noise.privateKey, ...noise.publicKey]));
      this.store.deleteOpaque("pendingNoiseKey");
      const primary = facts.primaryIdentityKey ?? encodePublicKey(keys.identity.publicKey);
      this.store.setOpaque(PRIMARY_IDENTITY, primary);
      // Our own primary is trusted from the start (we scanned its code / we are it).
      this.store.saveIdentity({ name: facts.user, deviceId: 1 }, primary);
    });
  }

  // ------------------------------------------------------------ multi-device

  /**
   * New (companion) device: shows `code` (as a QR code) and resolves `linked` once the primary
   * has accepted it (`acceptLink`). The profile is then a device of the primary's account.
   */
  async createLinkRequest(): Promise<{ code: string; linked: Promise<{ user: string; device: number }> }> {
    if (this.isRegistered)
      throw new ClientError("ALREADY_REGISTERED", `this profile is already registered as ${this.accountName}`);
    const url = this.options.serverUrl ?? this.store.getMeta("serverUrl");
    if (!url) throw new ClientError("NO_SERVER", "no server URL given");
    const noise = this.pendingNoiseKey();
    const keys = this.generateDeviceKeys();
    const { connection, serverStaticPublicKey } = await this.connectUnregistered(url, noise);
    const ref = getCrypto().randomBytes(16);
    const secret = getCrypto().randomBytes(32);
    const identityKey = encodePublicKey(keys.identity.publicKey);
    const offered = new Promise<Uint8Array>((resolve) => {
      this.pendingLinkOffer = resolve;
    });
    await this.iq({ op: "link-wait", ref });
    const code = encodeLinkCode({
      server: url,
      ref,
      secret,
      identityKey,
      noiseKey: noise.publicKey,
      expiresAt: Math.floor(this.now() / 1000) + 300,
    });
    const linked = (async () => {
      try {
        const payload = await offered;
        const accepted = acceptLinkOffer(payload, secret, {
          identityKey,
          noiseKey: noise.publicKey,
          identityPrivateKey: keys.identity.privateKey,
        });
        const r = await this.iq({
          op: "link-complete",
          ref,
          deviceIdentity: accepted.deviceIdentity,
          accountSignature: accepted.accountSignature,
          deviceSignature: accepted.deviceSignature,
          ...deviceKeysRequest(keys, noise),
        });
        if (r.op !== "linked") throw new ClientError("PROTOCOL", "unexpected answer to link-complete");
        this.persistDevice(keys, noise, {
          user: r.user,
          device: r.device,
          url,
          serverStaticPublicKey,
          primaryIdentityKey: accepted.primaryIdentityKey,
        });
        return { user: r.user, device: r.device };
      } finally {
        this.pendingLinkOffer = undefined;
        this.connection = undefined; // see register(): no reconnect for this connection
        connection.close(1000, "link done");
      }
    })();
    return { code, linked };
  }

  /**
   * Primary: links the device that shows `codeText`, then publishes the new signed device list.
   * Resolves with the new device's id.
   */
  async acceptLink(codeText: string): Promise<number> {
    if (this.deviceId !== 1) throw new ClientError("NOT_PRIMARY", "only the primary device links new devices");
    let code: LinkCode;
    try {
      code = decodeLinkCode(codeText);
    } catch (err) {
      throw new ClientError("BAD_CODE", `not a valid link code: ${(err as Error).message}`);
    }
    if (code.expiresAt * 1000 < this.now())
      throw new ClientError("EXPIRED_CODE", "this link code has expired: show a new one");
    if (code.server !== this.store.getMeta("serverUrl")) {
      throw new ClientError(
        "WRONG_SERVER",
        `the new device uses ${code.server}, this account lives on ${this.store.getMeta("serverUrl")}`,
      );
    }
    const identity = deserializeIdentity(this.store.getMeta("identityKeyPair")!);
    const { payload } = buildLinkOffer(code, this.accountName!, identity, this.now());
    const r = await this.iq({ op: "link-offer", ref: code.ref, payload });
    if (r.op !== "device") throw new ClientError("PROTOCOL", "unexpected answer to link-offer");
    this.store.saveIdentity({ name: this.accountName!, deviceId: r.device }, code.identityKey);
    await this.publishDeviceList((devices) => [
      ...devices.filter((d) => d.id !== r.device),
      { id: r.device, identityKey: code.identityKey },
    ]);
    return r.device;
  }

  /** Primary: unlinks a companion; it gets nothing from this moment, and contacts get the new list. */
  async unlinkDevice(device: number): Promise<void> {
    if (this.deviceId !== 1) throw new ClientError("NOT_PRIMARY", "only the primary device unlinks devices");
    await this.iq({ op: "remove-device", device });
    this.store.deleteAllSessions(this.accountName!);
    await this.publishDeviceList((devices) => devices.filter((d) => d.id !== device));
  }

  /** Primary: signs and publishes the current device list again (e.g. after the server lost or mangled it). */
  async republishDeviceList(): Promise<void> {
    if (this.deviceId !== 1) throw new ClientError("NOT_PRIMARY", "only the primary device publishes the device list");
    await this.publishDeviceList((devices) => devices);
  }

  /** This account's devices as the signed device list says (verified). */
  async ownDevices(): Promise<{ id: number; identityKey: Uint8Array; current: boolean }[]> {
    const me = this.accountName!;
    const ids = await this.devicesOf(me, true);
    const keys = this.listKeys.get(me);
    return ids.map((id) => ({ id, identityKey: keys?.get(id) ?? new Uint8Array(0), current: id === this.deviceId }));
  }

  private async publishDeviceList(
    change: (devices: { id: number; identityKey: Uint8Array }[]) => { id: number; identityKey: Uint8Array }[],
  ): Promise<void> {
    const me = this.accountName!;
    const identity = deserializeIdentity(this.store.getMeta("identityKeyPair")!);
    const previous = this.store.getOpaque(OWN_DEVICE_LIST);
    const current = previous
      ? decodeDeviceList(previous)
      : { user: me, version: 0, devices: [{ id: 1, identityKey: encodePublicKey(identity.publicKey) }] };
    // The server refuses versions that do not increase: start above whatever it holds (a restored
    // profile may have an older local copy).
    let serverVersion = 0;
    const r = await this.iq({ op: "get-devices", users: [me] });
    const blob = r.op === "devices" ? r.lists[0]?.list : undefined;
    // Read the version from the published bytes, signed or (if mangled) not; unreadable → ours decides.
    for (const candidate of blob ? [blob.subarray(0, Math.max(0, blob.length - 64)), blob] : []) {
      try {
        serverVersion = Math.max(serverVersion, decodeDeviceList(candidate).version);
      } catch {
        // not this form
      }
    }
    const version = Math.max(current.version, serverVersion) + 1;
    const next = { user: me, version, devices: change(current.devices).sort((a, b) => a.id - b.id) };
    await this.iq({ op: "set-devices", list: signDeviceList(next, identity.privateKey) });
    this.store.setOpaque(OWN_DEVICE_LIST, encodeDeviceList(next));
    this.deviceCache.delete(me);
  }

  /** Connects as a device that is not registered yet (registration or linking) and makes it current. */
  private async connectUnregistered(
    url: string,
    noise: StaticKeyPair,
  ): Promise<{ connection: Connection; serverStaticPublicKey: Uint8Array }> {
    const { connection, serverStaticPublicKey, loginResult } = await this.connectFn({
      url,
      clientStaticKeyPair: noise,
      loginPayload: encodeClientHello({
        protocolVersion: PROTOCOL_VERSION,
        dictionaryVersion: DICTIONARY_VERSION,
        device: "registering",
        passive: false,
        userAgent: this.options.userAgent ?? "parley-sdk",
      }),
    });
    const hello = decodeServerHello(loginResult);
    if (hello.result !== "ok") {
      connection.close(1000, "login refused");
      throw new ClientError(hello.error.code, hello.error.text ?? hello.error.code);
    }
    this.attachConnection(connection);
    return { connection, serverStaticPublicKey };
  }

  /** The noise key used while registering, kept across the two register() calls of code verification. */
  private pendingNoiseKey(): StaticKeyPair {
    let raw = this.store.getOpaque("pendingNoiseKey");
    if (!raw) {
      const c = getCrypto().x25519GenerateKeyPair();
      raw = new Uint8Array([...c.privateKey, ...c.publicKey]);
      this.store.setOpaque("pendingNoiseKey", raw);
    }
    return { privateKey: raw.slice(0, 32), publicKey: raw.slice(32) };
  }

  // -------------------------------------------------------------- connection

  /** Connects (and keeps reconnecting with backoff) until stop(). Resolves on the first login. */
  async start(): Promise<void> {
    if (!this.isRegistered) throw new ClientError("NOT_REGISTERED", "register this profile first");
    this.stopped = false;
    await this.connectOnce();
  }

  /** Resolves when connected (or immediately if already). */
  waitConnected(): Promise<void> {
    if (this.state === "connected") return Promise.resolve();
    return new Promise((r) => this.connectedWaiters.push(r));
  }

  private setState(state: ConnectionState, reason?: string): void {
    this.state = state;
    this.emit("connection", { state, ...(reason !== undefined ? { reason } : {}) });
    if (state === "connected") {
      for (const w of this.connectedWaiters.splice(0)) w();
    }
  }

  private async connectOnce(): Promise<void> {
    this.setState("connecting");
    const url = this.store.getMeta("serverUrl")!;
    const serverKey = this.store.getMeta("serverStaticPublicKey");
    try {
      const { connection, loginResult } = await this.connectFn({
        url,
        clientStaticKeyPair: this.noiseKeyPair(),
        ...(serverKey ? { serverStaticPublicKey: serverKey } : {}),
        loginPayload: encodeClientHello({
          protocolVersion: PROTOCOL_VERSION,
          dictionaryVersion: DICTIONARY_VERSION,
          user: this.accountName!,
          device: this.deviceId!,
          passive: false,
          userAgent: this.options.userAgent ?? "parley-sdk",
        }),
      });
      if (this.stopped) {
        // stop() came while this login was under way: it must not bring the client back online.
        connection.close(1000, "client stopped");
        throw new ClientError("STOPPED", "stopped before the login completed");
      }
      const hello = decodeServerHello(loginResult);
      if (hello.result !== "ok") {
        connection.close(1000, "login refused");
        throw new ClientError(hello.error.code, hello.error.text ?? hello.error.code);
      }
      this.reconnectAttempt = 0;
      this.attachConnection(connection);
      this.setState("connected");
      void this.flushOutbox();
      this.inBackground(this.checkPreKeys());
      // Groups joined or changed while this device was away or before it was linked.
      this.inBackground(this.groupEngine.sync());
      if (this.store.listContacts().length > 0) {
        this.iq({ op: "set-contacts", users: this.store.listContacts().map((c) => c.name) }).catch(() => {});
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (this.stopped) throw e; // stays "stopped"
      this.setState("disconnected", e.message);
      if (this.isFatalLoginError(e)) {
        this.stopped = true;
        throw e;
      }
      this.scheduleReconnect();
      if (this.reconnectAttempt <= 1) throw e;
    }
  }

  private isFatalLoginError(e: Error): boolean {
    return /not-registered|unauthorized|version-mismatch/.test(e.message);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.options.reconnect === false || this.reconnectTimer) return;
    // Exponential backoff with full jitter: 0.5 s .. 30 s.
    const ceiling = Math.min(30_000, 500 * 2 ** this.reconnectAttempt++);
    const delay = Math.random() * ceiling;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connectOnce().catch(() => {});
    }, delay);
  }

  private attachConnection(connection: Connection): void {
    this.connection = connection;
    this.ctx = new WireContext();
    const ctx = this.ctx;
    connection.onStanza((bytes) => {
      // Decode now, in arrival order (the name-interning context depends on it). Answers to our own
      // requests are settled at once; everything else is processed one stanza at a time, in order.
      let stanza: Stanza;
      try {
        stanza = decodeStanza(bytes, undefined, ctx);
      } catch (err) {
        this.emit("error", { error: err as Error });
        connection.close(1002, "undecodable stanza from server");
        return;
      }
      if (stanza.kind === "iq-result" || stanza.kind === "iq-error" || stanza.kind === "ack") {
        this.settle(stanza);
        return;
      }
      const epoch = this.inboundEpoch;
      this.inbound = this.inbound
        .then(() => (epoch === this.inboundEpoch ? this.onStanza(stanza) : undefined))
        .catch((err) => this.emit("error", { error: err }));
    });
    connection.onClose((code, reason) => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.failPending(reason);
      if (this.stopped) return;
      this.setState("disconnected", `${code} ${reason}`);
      this.scheduleReconnect();
    });
  }

  /**
   * Closes the connection and stops reconnecting. The stanza being processed finishes (a wait on
   * the server inside it ends after STOP_GRACE_MS); stanzas received but not yet processed are
   * dropped unacknowledged, so the server delivers them again at the next start(). Requests still
   * waiting for the server fail with DISCONNECTED.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.inboundEpoch++;
    // The stanza in progress finishes (its store writes and ack belong together); the rest waits
    // for the next login. If it waits on the server for longer than the grace, closing the
    // connection ends that wait (DISCONNECTED), and the handler finishes before stop() returns, so
    // the caller may close the store.
    let grace: ReturnType<typeof setTimeout> | undefined;
    const settled = await Promise.race([
      this.inbound.then(() => true),
      new Promise<false>((r) => (grace = setTimeout(() => r(false), STOP_GRACE_MS))),
    ]);
    clearTimeout(grace);
    if (settled) this.deferredAcks.flush();
    const c = this.connection;
    this.connection = undefined;
    c?.close(1000, "client stopped");
    // No longer "connected" before the requests fail: the outbox flush must stop, not retry its
    // batch against no connection until the messages count as failed.
    this.setState("stopped");
    this.failPending("client stopped");
    await this.inbound;
    await this.outboxFlush?.catch(() => {});
    await Promise.all(this.background);
    clearTimeout(this.outboxRetryTimer);
    this.outboxRetryTimer = undefined;
  }

  /**
   * Runs work that nothing waits for (prekey refills, group sync, resends after a retry receipt,
   * adding a contact). stop() waits for it, because it writes the store; its failure is reported as
   * an "error" event, except a lost connection (the work is redone after the next login) or, when
   * `quiet`, any failure.
   */
  private inBackground(task: Promise<unknown>, quiet = false): void {
    const settled: Promise<void> = task
      .then(
        () => {},
        (err: unknown) => {
          const lost = (err as { code?: string }).code === "DISCONNECTED" || this.stopped;
          if (!quiet && !lost) this.emit("error", { error: err as Error });
        },
      )
      .finally(() => this.background.delete(settled));
    this.background.add(settled);
  }

  /** Fails every request waiting on the server (the connection is gone); unsent deferred acks go too. */
  private failPending(reason: string): void {
    this.deferredAcks.clear(); // the server sends those entries again after the reconnect
    for (const [, p] of this.iqs) {
      clearTimeout(p.timer);
      p.reject(new ClientError("DISCONNECTED", `connection closed: ${reason}`));
    }
    this.iqs.clear();
    for (const [, p] of this.acks) p.reject(new ClientError("DISCONNECTED", `connection closed: ${reason}`));
    this.acks.clear();
  }

  private sendStanza(stanza: Stanza): void {
    const c = this.connection;
    if (!c) throw new ClientError("DISCONNECTED", "not connected");
    // waiting acks go first, in the same record (the transport batches one turn's stanzas)
    if (stanza.kind !== "devack") this.deferredAcks.flush();
    c.send(encodeStanza(stanza, this.ctx, c.maxStanzaSize));
  }

  iq(request: IqRequest): Promise<IqResult> {
    return new Promise((resolve, reject) => {
      const id = this.nextIqId++;
      const timer = setTimeout(() => {
        this.iqs.delete(id);
        reject(new ClientError("TIMEOUT", `no answer to ${request.op}`));
      }, IQ_TIMEOUT_MS);
      this.iqs.set(id, { resolve, reject, timer });
      try {
        this.sendStanza({ kind: "iq", id, request });
      } catch (err) {
        clearTimeout(timer);
        this.iqs.delete(id);
        reject(err);
      }
    });
  }

  // --------------------------------------------------------------- inbound

  /** Settles the promise of an iq or a sent message. */
  private settle(stanza: Extract<Stanza, { kind: "iq-result" | "iq-error" | "ack" }>): void {
    if (stanza.kind === "ack") {
      const id = toHex(stanza.id);
      const p = this.acks.get(id);
      if (!p) return;
      this.acks.delete(id);
      if (stanza.error) {
        const e = new ClientError(stanza.error.code, stanza.error.text ?? stanza.error.code);
        (e as ClientError & { devices?: unknown }).devices = stanza.error.devices;
        p.reject(e);
      } else p.resolve(stanza.timestamp);
      return;
    }
    const p = this.iqs.get(stanza.id);
    if (!p) return;
    this.iqs.delete(stanza.id);
    clearTimeout(p.timer);
    if (stanza.kind === "iq-result") p.resolve(stanza.result);
    else p.reject(new ClientError(stanza.error.code, stanza.error.text ?? stanza.error.code));
  }

  private async onStanza(stanza: Stanza): Promise<void> {
    switch (stanza.kind) {
      case "delivery":
        return this.onDelivery(stanza);
      case "receipt":
        return this.onReceipt(stanza);
      case "notification":
        return this.onNotification(stanza);
      case "presence":
        if (stanza.from === undefined) return;
        if (stanza.type === "available") this.emit("presence", { user: stanza.from, online: true });
        else if (stanza.type === "unavailable") {
          this.emit("presence", {
            user: stanza.from,
            online: false,
            ...(stanza.lastSeen !== undefined ? { lastSeen: stanza.lastSeen * 1000 } : {}),
          });
        }
        return;
      case "chatstate":
        if (stanza.from !== undefined)
          this.emit("typing", {
            user: stanza.from,
            state: stanza.state,
            ...(stanza.group !== undefined ? { group: stanza.group } : {}),
          });
        return;
      default:
        return;
    }
  }

  private devack(seq: number): void {
    this.sendDevack([seq]);
  }

  private sendDevack(seqs: number[]): void {
    try {
      this.sendStanza({ kind: "devack", seqs });
    } catch {
      // disconnected: the entry stays queued and comes again; the store dedupes it
    }
  }

  private async onDelivery(d: DeliveryStanza): Promise<void> {
    const me = this.accountName!;
    const id = toHex(d.id);
    const address = { name: d.from.user, deviceId: d.from.device };
    if (d.group !== undefined) return this.groupEngine.onDelivery(d);
    let plaintext: Uint8Array;
    try {
      plaintext = await decryptMessage(address, d.type === "pkmsg" ? "prekey" : "whisper", d.body, this.signal);
    } catch (err) {
      if (isSignalError(err, "DUPLICATE_MESSAGE")) {
        this.devack(d.seq); // already processed (we crashed before acking): nothing new
        return;
      }
      const reason = err instanceof Error ? err.message : String(err);
      const chatId = directChatId(d.to !== undefined && d.from.user === me ? d.to : d.from.user);
      this.store.insertPlaceholder({
        // sentAt below is the server's time; the real message (after the retry) replaces this row by id.
        id: `ph:${d.from.user}:${d.from.device}:${id}`,
        chatId,
        sender: d.from.user,
        senderDevice: d.from.device,
        sentAt: d.timestamp * 1000,
        serverAt: d.timestamp * 1000,
        receivedAt: this.now(),
      });
      this.emit("decrypt-failed", { from: d.from, id, error: reason });
      this.requestRetry(d, id);
      this.devack(d.seq);
      return;
    }
    let content: ReturnType<typeof decodeContent>;
    let media: MediaDescriptor | undefined;
    try {
      content = decodeContent(plaintext);
      if (content.media) media = decodeMediaDescriptor(content.media);
    } catch (err) {
      this.emit("error", { error: err as Error });
      this.devack(d.seq);
      return;
    }
    if (media) this.store.setOpaque(mediaKey(d.from.user, id), encodeMediaDescriptor(media));
    // A retry succeeded: the placeholder gives way to the real message (at its real place in history).
    const placeholderId = `ph:${d.from.user}:${d.from.device}:${id}`;
    if (this.store.getMessage(d.from.user, placeholderId)) this.store.deleteMessage(d.from.user, placeholderId);
    if (content.historyFor !== undefined) {
      // A history bundle from our primary, for one of our devices.
      if (d.from.user === me && content.historyFor === this.deviceId && media)
        this.emit("history", { media, from: d.from });
    } else if (d.from.user === me && d.to !== undefined) {
      // A message we sent from another device: ours, already with the server (✓), in that chat.
      const chatId = directChatId(d.to);
      this.ensureChat(chatId);
      const r = this.store.transaction(() => {
        const inserted = this.store.queueOutgoing({
          id,
          chatId,
          body: content.text,
          sentAt: content.sentAt,
          senderDevice: d.from.device,
        });
        if (inserted.isNew) this.store.markSent(id, d.timestamp * 1000);
        return inserted;
      });
      const stored = this.store.getMessage(me, id);
      if (r.isNew && stored) this.emit("message", { message: stored, chatId, ...(media ? { media } : {}) });
    } else {
      const chatId = directChatId(d.from.user);
      this.ensureChat(chatId);
      const r = this.store.insertIncoming({
        id,
        chatId,
        sender: d.from.user,
        senderDevice: d.from.device,
        body: content.text,
        sentAt: content.sentAt,
        serverAt: d.timestamp * 1000,
        receivedAt: this.now(),
      });
      if (r.isNew) this.emit("message", { message: r.message, chatId, ...(media ? { media } : {}) });
    }
    this.devack(d.seq);
  }

  private requestRetry(d: DeliveryStanza, id: string): void {
    const key = `${d.from.user}.${d.from.device}.${id}`;
    if (this.retriedIds.has(key)) return; // one retry per message: no error storms
    this.retriedIds.add(key);
    try {
      this.sendStanza({
        kind: "receipt",
        type: "retry",
        ids: [d.id],
        to: { user: d.from.user, device: d.from.device },
        timestamp: Math.floor(this.now() / 1000),
        retry: { count: 1, registrationId: this.store.getMeta("registrationId") ?? 0 },
      });
    } catch {
      this.retriedIds.delete(key);
    }
  }

  private async onReceipt(r: ReceiptStanza): Promise<void> {
    const ids = r.ids.map(toHex);
    if (r.from) {
      if (r.type === "retry") {
        // Not awaited: the resend waits for bundles and acks, which must not hold up later stanzas.
        this.inBackground(this.resendAfterRetry(r.from, ids));
      } else {
        const me = this.accountName!;
        if (r.from.user === me && r.type === "read") {
          // Our other device read these: mark them read here too (read state syncs across devices).
          if (r.to) for (const id of ids) this.markIncomingRead(r.to.user, id);
        } else {
          const changed: string[] = [];
          for (const id of ids) {
            const expected = this.groupEngine.recipientsOf(id);
            changed.push(
              ...this.store.applyReceipt({
                status: r.type,
                messageIds: [id],
                from: { name: r.from.user, deviceId: r.from.device },
                at: r.timestamp * 1000,
                ...(expected ? { expectedRecipients: expected } : {}),
              }),
            );
          }
          for (const id of changed) {
            const m = this.store.getMessage(me, id);
            if (m) this.emit("status", { id, status: m.status });
          }
        }
      }
    }
    if (r.seq !== undefined) this.deferredAcks.add(r.seq);
  }

  private markIncomingRead(sender: string, id: string): void {
    const m = this.store.getMessage(sender, id);
    if (m && m.direction === "in") this.store.setStatus(sender, id, "read");
  }

  private async resendAfterRetry(from: WireAddress, ids: string[]): Promise<void> {
    const me = this.accountName!;
    const address = { name: from.user, deviceId: from.device };
    // Drop the broken session and start a new one from a fresh bundle.
    this.store.deleteSession(address);
    for (const id of ids) {
      if (this.stopped) return;
      const m = this.store.getMessage(me, id);
      if (!m || m.body === null) continue;
      const { kind, target } = parseChatId(m.chatId);
      try {
        if (kind === "group") await this.groupEngine.resend(target, from, m);
        else await this.sendEncrypted(target, m.id, m.body, m.sentAt);
      } catch (err) {
        this.emit("error", { error: err as Error });
      }
    }
  }

  private async onNotification(n: NotificationStanza): Promise<void> {
    switch (n.event.type) {
      case "queue-empty":
        this.emit("queue-empty", {});
        break;
      case "prekeys-low":
        this.inBackground(this.checkPreKeys());
        break;
      case "devices-changed":
        this.deviceCache.delete(n.event.user);
        break;
      case "link-offer":
        this.pendingLinkOffer?.(n.event.payload);
        break;
      case "group-change":
        await this.groupEngine.onNotification(n.event.change);
        break;
      default:
        break;
    }
    if (n.id !== 0) this.deferredAcks.add(n.id);
  }

  // ---------------------------------------------------------------- prekeys

  /** Tops up one-time prekeys when the server runs low. Runs through inBackground(), which reports its errors. */
  private async checkPreKeys(): Promise<void> {
    const counts = await this.iq({ op: "prekey-count" });
    if (counts.op !== "prekey-count") return;
    if (counts.oneTime >= PREKEY_REFILL_BELOW && counts.kyberOneTime >= PREKEY_REFILL_BELOW) return;
    const identityBytes = this.store.getMeta("identityKeyPair")!;
    const identity = { privateKey: identityBytes.slice(0, 32), publicKey: identityBytes.slice(32) };
    const batch = this.options.preKeyBatch ?? 100;
    const kyberBatch = Math.min(30, this.options.kyberPreKeyBatch ?? 20);
    const nextPre = this.store.getMeta("nextPreKeyId") ?? 1;
    const nextKyber = this.store.getMeta("nextKyberPreKeyId") ?? 2;
    const pre = counts.oneTime < PREKEY_REFILL_BELOW ? generatePreKeys(nextPre, batch) : [];
    const kyber =
      counts.kyberOneTime < PREKEY_REFILL_BELOW ? generateKyberPreKeys(identity, nextKyber, kyberBatch) : [];
    this.store.transaction(() => {
      for (const k of pre) this.store.savePreKey("prekey", k.id, serializePreKeyRecord(k));
      for (const k of kyber) this.store.savePreKey("kyber", k.id, serializeKyberPreKeyRecord(k));
      this.store.setMeta("nextPreKeyId", nextPre + pre.length);
      this.store.setMeta("nextKyberPreKeyId", nextKyber + kyber.length);
    });
    await this.iq({
      op: "upload-prekeys",
      oneTimePreKeys: pre.map((k) => ({ id: k.id, key: encodePublicKey(k.keyPair.publicKey) })),
      kyberOneTimePreKeys: kyber.map((k) => ({
        id: k.id,
        key: serializeKemPublicKey(k.keyPair.type, k.keyPair.publicKey),
        signature: k.signature,
      })),
    });
  }

  // ---------------------------------------------------------------- sending

  /**
   * Queues a text message to `to` (stored first, so it survives restarts) and sends it when
   * connected. Resolves with the message id once it is in the outbox; use waitForStatus() or the
   * "status" event for the ticks.
   */
  queueText(to: string, text: string): string {
    const id = toHex(getCrypto().randomBytes(8));
    const chatId = directChatId(to);
    this.ensureChat(chatId);
    if (!this.store.getContact(to) && to !== this.accountName) this.inBackground(this.addContact(to), true);
    this.store.queueOutgoing({ id, chatId, body: text, sentAt: this.now() });
    if (this.state === "connected") void this.flushOutbox();
    return id;
  }

  /**
   * Queues a message carrying an attachment already uploaded to the content store (see
   * media/upload.node.ts). Forwarding is the same call with the descriptor of a received message:
   * the blob is reused, nothing is uploaded again.
   */
  queueMedia(to: string, media: MediaDescriptor, caption?: string): string {
    const id = toHex(getCrypto().randomBytes(8));
    const chatId = directChatId(to);
    this.ensureChat(chatId);
    this.store.transaction(() => {
      this.store.setOpaque(mediaKey(this.accountName!, id), encodeMediaDescriptor(media));
      this.store.queueOutgoing({ id, chatId, body: caption ?? `📎 ${media.fileName}`, sentAt: this.now() });
    });
    if (this.state === "connected") void this.flushOutbox();
    return id;
  }

  /**
   * Primary: sends a history bundle (already encrypted and uploaded: see files.node.ts sendHistory)
   * to our own device `device`, end-to-end encrypted like any message to ourselves.
   */
  async sendHistoryBundle(device: number, media: MediaDescriptor): Promise<void> {
    const me = this.accountName!;
    const id = toHex(getCrypto().randomBytes(8));
    this.store.setOpaque(mediaKey(me, id), encodeMediaDescriptor(media));
    await this.sendEncrypted(me, id, "", this.now(), 0, { historyFor: device });
  }

  /** Chats known to exist in the store: ensureChat reads counters that grow with a chat's size. */
  private readonly knownChats = new Set<string>();

  private ensureChat(chatId: string): void {
    if (this.knownChats.has(chatId)) return;
    this.store.ensureChat(chatId);
    this.knownChats.add(chatId);
  }

  /** Called by the history importer when a bundle cannot be imported. */
  reportHistoryError(error: Error): void {
    this.emit("error", { error });
  }

  /** Called by the history importer (files.node.ts) when a bundle is in the store. */
  reportHistoryImported(count: number): void {
    this.emit("history-imported", { count });
  }

  /** The attachment of a stored message, if it has one. */
  attachment(sender: string, id: string): MediaDescriptor | undefined {
    const bytes = this.store.getOpaque(mediaKey(sender, id));
    return bytes ? decodeMediaDescriptor(bytes) : undefined;
  }

  /** queueText + wait for the server's ack (first tick). */
  async sendText(to: string, text: string): Promise<string> {
    const id = this.queueText(to, text);
    await this.waitForStatus(id, "sent");
    return id;
  }

  /** Resolves once our message `id` has reached `status` (or a later one); rejects if it failed. */
  waitForStatus(id: string, status: MessageStatus, timeoutMs = 60_000): Promise<void> {
    const order: MessageStatus[] = ["pending", "sent", "delivered", "read"];
    const reached = () => {
      const m = this.store.getMessage(this.accountName!, id);
      if (m?.status === "failed") throw new ClientError("SEND_FAILED", `message ${id} failed`);
      return m !== undefined && order.indexOf(m.status) >= order.indexOf(status);
    };
    return new Promise((resolve, reject) => {
      try {
        if (reached()) return resolve();
      } catch (err) {
        return reject(err);
      }
      const timer = setTimeout(() => {
        off();
        reject(new ClientError("TIMEOUT", `message ${id} did not reach ${status}`));
      }, timeoutMs);
      const off = this.on("status", (e) => {
        if (e.id !== id) return;
        try {
          if (!reached()) return;
          clearTimeout(timer);
          off();
          resolve();
        } catch (err) {
          clearTimeout(timer);
          off();
          reject(err);
        }
      });
    });
  }

  /** Sends everything due in the outbox, at most SEND_WINDOW unacknowledged at a time, in order. */
  async flushOutbox(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    const run = this.flushOutboxLoop();
    if (this.flushing) this.outboxFlush = run; // (a loop with nothing to wait for is over already)
    return run;
  }

  private async flushOutboxLoop(): Promise<void> {
    // `flushing` is cleared in the same turn as the loop's last check of flushAgain: a flush asked
    // for in between would otherwise be lost.
    try {
      do {
        this.flushAgain = false;
        while (this.state === "connected") {
          const batch = this.store.nextOutboxBatch({ now: this.now(), limit: SEND_WINDOW });
          if (batch.length === 0) break;
          const inFlight: Promise<void>[] = [];
          let disconnected = false;
          for (const item of batch) {
            const m = item.message;
            const { kind, target } = parseChatId(m.chatId);
            const media = this.store.getOpaque(mediaKey(this.accountName!, m.id));
            const sending =
              kind === "group"
                ? this.groupEngine.send(target, m.id, {
                    text: m.body ?? "",
                    sentAt: m.sentAt,
                    ...(media ? { media } : {}),
                  })
                : this.sendEncrypted(target, m.id, m.body ?? "", m.sentAt);
            inFlight.push(
              sending.then(
                (serverTs) => {
                  if (this.store.markSent(m.id, serverTs * 1000)) this.emit("status", { id: m.id, status: "sent" });
                },
                (err: unknown) => {
                  const e =
                    err instanceof ClientError
                      ? err
                      : new ClientError(
                          (err as { code?: string }).code ?? "SEND",
                          String((err as Error).message ?? err),
                        );
                  if (e.code === "DISCONNECTED") {
                    // The connection went away, not the message: it stays due, no attempt counted
                    // (a phone in a tunnel must not fail its messages), and the next login's flush
                    // sends it (if the server had stored the first copy, devices dedupe by message id).
                    disconnected = true;
                    return;
                  }
                  const attempts = item.attempts + 1;
                  if (e.code === "not-found" || e.code === "not-member" || attempts >= MAX_SEND_ATTEMPTS) {
                    this.store.markFailed(m.id, e.message);
                    this.emit("status", { id: m.id, status: "failed" });
                  } else {
                    const backoff = Math.round(Math.min(60_000, 1000 * 2 ** attempts) * (0.5 + Math.random() / 2));
                    this.store.markAttemptFailed(m.id, this.now() + backoff, e.message);
                  }
                },
              ),
            );
          }
          await Promise.all(inFlight);
          if (disconnected) return;
          if (batch.length < SEND_WINDOW) break;
        }
      } while (this.flushAgain && this.state === "connected");
      this.armOutboxRetry();
    } finally {
      this.flushing = false;
      this.outboxFlush = undefined;
    }
  }

  /**
   * Entries put off by a failed attempt are due later; nothing else would flush for them while the
   * connection stays up (a reconnect flushes anyway), so a timer does.
   */
  private armOutboxRetry(): void {
    clearTimeout(this.outboxRetryTimer);
    this.outboxRetryTimer = undefined;
    if (this.state !== "connected") return;
    const due = this.store.nextOutboxAttemptAt();
    if (due === undefined) return;
    this.outboxRetryTimer = setTimeout(
      () => {
        this.outboxRetryTimer = undefined;
        if (this.state === "connected") void this.flushOutbox();
      },
      Math.min(60_000, Math.max(0, due - this.now())),
    );
  }

  /**
   * The devices to encrypt to for `user`: the server's device ids, checked against the user's
   * device list signed by their primary identity key. A missing, forged or mismatching list is
   * refused (ClientError UNTRUSTED_DEVICE_LIST): nothing is encrypted to devices we cannot verify.
   */
  private async devicesOf(user: string, refresh = false): Promise<number[]> {
    if (!refresh) {
      const cached = this.deviceCache.get(user);
      if (cached) return cached;
    }
    const r = await this.iq({ op: "get-devices", users: [user] });
    if (r.op !== "devices") throw new ClientError("PROTOCOL", "unexpected answer to get-devices");
    const entry = r.lists[0];
    const devices = entry?.devices ?? [];
    const primaryKey = await this.primaryIdentityOf(user);
    try {
      this.listKeys.set(user, verifyDeviceList(user, devices, entry?.list ?? new Uint8Array(0), primaryKey));
    } catch (err) {
      if (err instanceof DeviceTrustError) throw new ClientError("UNTRUSTED_DEVICE_LIST", err.message);
      throw err;
    }
    this.deviceCache.set(user, devices);
    return devices;
  }

  /** `user`'s primary identity key: ours from linking, a contact's trusted on first use (from a bundle if new). */
  private async primaryIdentityOf(user: string): Promise<Uint8Array> {
    if (user === this.accountName) {
      const own = this.store.getOpaque(PRIMARY_IDENTITY);
      if (own) return own;
    }
    let known = this.store.getIdentity({ name: user, deviceId: 1 })?.publicKey;
    if (!known) {
      await this.ensureSessions(user, [1]);
      known = this.store.getIdentity({ name: user, deviceId: 1 })?.publicKey;
    }
    if (!known) throw new ClientError("NO_IDENTITY", `no identity key for ${user}'s primary device`);
    return known;
  }

  /** Re-reads and verifies `user`'s device list (throws ClientError UNTRUSTED_DEVICE_LIST when it does not verify). */
  async verifiedDevices(user: string): Promise<number[]> {
    return this.devicesOf(user, true);
  }

  /** Makes sure a session exists with every listed device (fetching prekey bundles as needed). */
  private async ensureSessions(user: string, devices: number[]): Promise<void> {
    const have = new Set(this.store.listSessionDevices(user));
    const missing = devices.filter((d) => !have.has(d));
    if (missing.length === 0) return;
    const r = await this.iq({ op: "fetch-bundles", users: [{ user, devices: missing }] });
    if (r.op !== "bundles") throw new ClientError("PROTOCOL", "unexpected answer to fetch-bundles");
    const listed = this.listKeys.get(user);
    for (const b of r.bundles) {
      const expected = listed?.get(b.device);
      if (expected && !bytesEqual(expected, b.identityKey)) {
        throw new ClientError(
          "UNTRUSTED_DEVICE_LIST",
          `${user}'s device ${b.device} has a key their device list does not sign`,
        );
      }
      await processPreKeyBundle({ name: user, deviceId: b.device }, toSignalBundle(b), this.signal);
    }
  }

  /**
   * Encrypts for every device of `to` and our other devices, sends, resolves with the server
   * timestamp of the ack (first tick). Encryption and sending are serialized (ratchet state and
   * queue order), the wait for acks is not, so several messages are in flight at once.
   */
  private sendEncrypted(
    to: string,
    id: string,
    text: string,
    sentAt: number,
    attempt = 0,
    extra: { historyFor?: number } = {},
  ): Promise<number> {
    const sent = this.sendChain.then(() => this.encryptAndSend(to, id, text, sentAt, attempt > 0, extra));
    this.sendChain = sent.catch(() => {});
    return sent
      .then(
        (r) => r.ack,
        (err) => Promise.reject(err),
      )
      .catch((err: unknown) => {
        if (err instanceof ClientError && err.code === "device-mismatch" && attempt < 2) {
          // Sesame: the server listed which devices we missed or addressed wrongly; refresh and retry.
          const devices = (err as ClientError & { devices?: { user: string; extra: number[] }[] }).devices ?? [];
          for (const d of devices) for (const x of d.extra) this.store.deleteSession({ name: d.user, deviceId: x });
          return this.sendEncrypted(to, id, text, sentAt, attempt + 1, extra);
        }
        throw err;
      });
  }

  private async encryptAndSend(
    to: string,
    id: string,
    text: string,
    sentAt: number,
    refresh: boolean,
    extra: { historyFor?: number } = {},
  ): Promise<{ ack: Promise<number> }> {
    const me = this.accountName!;
    const myDevice = this.deviceId!;
    const media = this.store.getOpaque(mediaKey(me, id));
    const plaintext = encodeContent({ text, sentAt, ...(media ? { media } : {}), ...extra });
    const peerDevices = (await this.devicesOf(to, refresh)).filter((d) => !(to === me && d === myDevice));
    const ownDevices = to === me ? [] : (await this.devicesOf(me, refresh)).filter((d) => d !== myDevice);
    await this.ensureSessions(to, peerDevices);
    if (ownDevices.length > 0) await this.ensureSessions(me, ownDevices);
    const targets: WireAddress[] = [
      ...peerDevices.map((d) => ({ user: to, device: d })),
      ...ownDevices.map((d) => ({ user: me, device: d })),
    ];
    const enc: DeviceCiphertext[] = [];
    for (const t of targets) {
      const c = await encryptMessage({ name: t.user, deviceId: t.device }, plaintext, this.signal);
      enc.push({ to: t, type: c.type === "prekey" ? "pkmsg" : "msg", body: c.body });
    }
    // A note to self on an account with one device: nothing to send, it is "sent" at once.
    if (enc.length === 0) return { ack: Promise.resolve(Math.floor(this.now() / 1000)) };
    const ack = this.expectAck(id);
    this.sendStanza({ kind: "message", id: fromHex(id), to, timestamp: Math.floor(sentAt / 1000), enc });
    return { ack };
  }

  // ----------------------------------------------------------------- groups

  /** Creates a group with us as creator (admin); the members are told at once. */
  createGroup(subject: string, members: string[], options: { description?: string } = {}): Promise<GroupView> {
    return this.groupEngine.create(subject, members, options.description);
  }
  addGroupMembers(group: string, users: string[]): Promise<GroupView> {
    return this.groupEngine.add(group, users);
  }
  /** Removes members; our next message to the group uses a new sender key they never get. */
  removeGroupMembers(group: string, users: string[]): Promise<GroupView> {
    return this.groupEngine.remove(group, users);
  }
  promoteGroupAdmins(group: string, users: string[]): Promise<GroupView> {
    return this.groupEngine.promote(group, users);
  }
  demoteGroupAdmins(group: string, users: string[]): Promise<GroupView> {
    return this.groupEngine.demote(group, users);
  }
  leaveGroup(group: string): Promise<GroupView> {
    return this.groupEngine.leave(group);
  }
  setGroupSubject(group: string, subject: string): Promise<GroupView> {
    return this.groupEngine.setSubject(group, subject);
  }
  /** Sets the group's description ("" clears it); admins only. */
  setGroupDescription(group: string, description: string): Promise<GroupView> {
    return this.groupEngine.setDescription(group, description);
  }
  /** A new invite code (replaces the previous one). Anyone holding it can join until it is revoked. */
  createGroupInvite(group: string): Promise<string> {
    return this.groupEngine.createInvite(group);
  }
  revokeGroupInvite(group: string): Promise<GroupView> {
    return this.groupEngine.revokeInvite(group);
  }
  joinGroup(code: string): Promise<GroupView> {
    return this.groupEngine.join(code);
  }
  /** Fetches and verifies the groups the server says we are in (e.g. on a newly linked device). */
  syncGroups(): Promise<void> {
    return this.groupEngine.sync();
  }
  group(id: string): GroupView | undefined {
    return this.groupEngine.group(id);
  }
  groups(): GroupView[] {
    return this.groupEngine.list();
  }
  /** Group messages that arrived before their sender key and still wait for it. */
  get bufferedGroupMessages(): number {
    return this.groupEngine.bufferedCount();
  }

  /** Queues a text message to a group (outbox first, like queueText). */
  queueGroupText(group: string, text: string): string {
    if (!this.groupEngine.group(group)) throw new ClientError("not-found", `unknown group ${group}`);
    const id = toHex(getCrypto().randomBytes(8));
    const chatId = groupChatId(group);
    this.ensureChat(chatId);
    this.store.queueOutgoing({ id, chatId, body: text, sentAt: this.now() });
    if (this.state === "connected") void this.flushOutbox();
    return id;
  }

  async sendGroupText(group: string, text: string): Promise<string> {
    const id = this.queueGroupText(group, text);
    await this.waitForStatus(id, "sent");
    return id;
  }

  /** Marks a group chat read and sends read receipts to each sender. */
  markGroupRead(group: string): number {
    return this.markChatRead(groupChatId(group), group);
  }

  sendGroupTyping(group: string, state: ChatState): void {
    if (this.state !== "connected") return;
    this.groupEngine.typing(group, state);
  }

  /** Per-member receipts of one of our messages (group: who has it, who read it). */
  receiptsOf(id: string) {
    return this.store.listReceipts(id);
  }

  // --------------------------------------------------------------- contacts

  /**
   * Adds `name` to the contacts and uploads the contact list: the server uses it only for
   * presence privacy ("contacts" may see my online state and last seen).
   */
  async addContact(name: string): Promise<void> {
    this.store.upsertContact({ name });
    if (this.state !== "connected") return;
    await this.iq({ op: "set-contacts", users: this.store.listContacts().map((c) => c.name) });
  }

  // ------------------------------------------------------ receipts, typing

  /** Marks the chat with `contact` read and sends read receipts (blue ticks) to the senders. */
  markRead(contact: string): number {
    return this.markChatRead(directChatId(contact));
  }

  private markChatRead(chatId: string, group?: string): number {
    const pending = this.store.markChatRead(chatId);
    let n = 0;
    for (const p of pending) {
      n += p.messageIds.length;
      try {
        this.sendStanza({
          kind: "receipt",
          type: "read",
          ids: p.messageIds.map(fromHex),
          to: { user: p.sender },
          ...(group !== undefined ? { group } : {}),
          timestamp: Math.floor(this.now() / 1000),
        });
      } catch {
        // offline: the chat is read locally; the receipt is lost (WhatsApp behaves the same)
      }
    }
    return n;
  }

  sendTyping(to: string, state: ChatState): void {
    if (this.state !== "connected") return;
    this.sendStanza({ kind: "chatstate", state, to });
  }

  subscribePresence(user: string): void {
    this.sendStanza({ kind: "presence", type: "subscribe", to: user });
  }

  /** The 60-digit safety number with `contact` (their primary device's identity key). */
  safetyNumber(contact: string): string {
    const me = this.accountName!;
    const ours = this.store.getMeta("identityKeyPair");
    const theirs = this.store.getIdentity({ name: contact, deviceId: 1 });
    if (!ours || !theirs)
      throw new ClientError("NO_IDENTITY", `no identity key known for ${contact}: exchange a message first`);
    const enc = new TextEncoder();
    return createFingerprint(enc.encode(me), encodePublicKey(ours.slice(32)), enc.encode(contact), theirs.publicKey)
      .displayable;
  }
}
