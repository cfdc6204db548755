// The gateway of one worker process: authenticates logins, keeps one
// lightweight ClientSession per connection, and reacts to routing events
// (wake-ups, claims, presence, ephemeral stanzas) for the devices it holds.
//
// Everything a session needs across connections (queues, accounts, keys) is in
// ServerStorage; everything that must reach another process goes through the
// Router. A worker therefore never needs to know where a device is connected.
import { randomUUID } from "node:crypto";
import {
  type ClientHello,
  CloseCode,
  type Connection,
  decodeClientHello,
  decodeStanza,
  encodeServerHello,
  encodeStanza,
  LoginRejectedError,
  PROTOCOL_VERSION,
  type Stanza,
} from "@parley/wire";
import type { Logger } from "pino";
import type { Clock } from "../clock.ts";
import type { ServerConfig } from "../config.ts";
import type { Metrics } from "../metrics.ts";
import { KeyedRateLimiter } from "../rate-limit.ts";
import type { RouteEvent, Router } from "../routing/types.ts";
import type {
  Account,
  AccountId,
  Device,
  EnqueueItem,
  QueueRecipient,
  QueueSeq,
  RemoteCommit,
  ServerStorage,
} from "../storage/index.ts";
import type { Verifier } from "../verifier.ts";
import { CompactMultiMap } from "./compact-multimap.ts";
import { GroupDirectory } from "./groups.ts";
import { LinkRegistry } from "./links.ts";
import { ClientSession, sameBytes } from "./session.ts";

/** What authenticate() hands to onConnection(). */
export type LoginContext =
  | { mode: "device"; account: Account; device: Device; passive: boolean }
  | { mode: "registering"; userAgent: string };

export interface GatewayOptions {
  storage: ServerStorage;
  router: Router;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  verifier: Verifier;
  config: Pick<ServerConfig, "dev" | "deliveryWindow">;
  /** Identifies this worker in claims (which connection is the newest for a device). */
  workerId?: string;
}

const deviceKey = (user: string, device: number) => `${user}\u0000${device}`;

export class Gateway {
  readonly storage: ServerStorage;
  readonly router: Router;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly clock: Clock;
  readonly verifier: Verifier;
  readonly config: GatewayOptions["config"];
  readonly workerId: string;

  /** Sessions of this worker by device. */
  private readonly byDevice = new Map<string, ClientSession>();
  /** Sessions of this worker by the user they are logged in as (for ephemeral stanzas). */
  private readonly byUser = new CompactMultiMap<string, ClientSession>();
  /** Presence subscriptions of this worker's sessions: watched user → sessions. */
  private readonly watchers = new Map<string, Set<ClientSession>>();
  /** Devices online anywhere (learned from presence events of all workers): user → device ids. */
  private readonly online = new CompactMultiMap<string, number>();
  private readonly accountNames = new Map<AccountId, string>();

  readonly registrationLimiter = new KeyedRateLimiter(5, 5 / 3600); // per name: 5 codes, then one per 12 min
  readonly globalRegistrationLimiter = new KeyedRateLimiter(100, 10); // per worker
  readonly keyFetchLimiter = new KeyedRateLimiter(200, 20); // per account: bundle fetches
  readonly links: LinkRegistry;
  readonly groups: GroupDirectory;

  constructor(options: GatewayOptions) {
    this.storage = options.storage;
    this.router = options.router;
    this.metrics = options.metrics;
    this.log = options.log;
    this.clock = options.clock;
    this.verifier = options.verifier;
    this.config = options.config;
    this.workerId = options.workerId ?? randomUUID();
    this.links = new LinkRegistry(this.router, () => this.clock.now());
    this.groups = new GroupDirectory(this);
    this.router.subscribe((e) => this.onRouteEvent(e));
    this.storage.onRemoteCommit?.((commit, seqs) => this.onRemoteCommit(commit, seqs));
  }

  /** Is `accountId`'s queue shard this process's (then this worker delivers its new entries)? */
  ownsQueue(accountId: AccountId): boolean {
    const owner = this.storage.queueOwner?.(accountId);
    return owner === undefined || owner === this.storage.shardIndex;
  }

  // ------------------------------------------------------------------ login

  /** The transport's authenticate callback: decides the login from the client's static key and hello. */
  async authenticate(
    remoteStatic: Uint8Array,
    loginPayload: Uint8Array,
  ): Promise<{ loginResult: Uint8Array; context: LoginContext }> {
    let hello: ClientHello;
    try {
      hello = decodeClientHello(loginPayload);
    } catch {
      throw new LoginRejectedError("bad-request: malformed login");
    }
    const serverTime = Math.floor(this.clock.now() / 1000);
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      throw new LoginRejectedError(`version-mismatch: server speaks protocol ${PROTOCOL_VERSION}`);
    }
    if (hello.device === "registering") {
      return {
        loginResult: encodeServerHello({ result: "ok", serverTime, queueCount: 0 }),
        context: { mode: "registering", userAgent: hello.userAgent },
      };
    }
    const device = await this.storage.getDeviceByNoiseKey(remoteStatic);
    if (!device || device.deviceId !== hello.device) throw new LoginRejectedError("not-registered: unknown device key");
    const account = await this.storage.getAccount(device.accountId);
    if (!account || (hello.user !== undefined && hello.user !== account.name)) {
      throw new LoginRejectedError("unauthorized: device key does not belong to that account");
    }
    const queueCount = await this.storage.depth(account.id, device.deviceId);
    return {
      loginResult: encodeServerHello({ result: "ok", serverTime, queueCount }),
      context: { mode: "device", account, device, passive: hello.passive },
    };
  }

  /**
   * A connection handed over by another worker right after its login (see ../handoff.ts): the login
   * was checked there; the device is looked up again here, in case it was removed meanwhile.
   */
  async adopt(connection: Connection, login: { accountId: AccountId; deviceId: number; passive: boolean }) {
    const device = await this.storage.getDevice(login.accountId, login.deviceId);
    const account = device ? await this.storage.getAccount(login.accountId) : null;
    if (!device || !account || !sameBytes(device.noiseStaticKey, connection.remoteStaticPublicKey)) {
      connection.close(CloseCode.AUTH_FAILED, "this device is not registered any more");
      return;
    }
    this.accept(connection, { mode: "device", account, device, passive: login.passive });
  }

  /** The transport's onConnection callback. */
  accept(connection: Connection, context: LoginContext | undefined): void {
    if (!context) {
      connection.close(1010, "internal error: no login context");
      return;
    }
    this.metrics.handshakes.inc();
    const session = new ClientSession(this, connection, context);
    if (context.mode === "device") this.attach(session);
  }

  // -------------------------------------------------------- session registry

  /** Registers a logged-in session and displaces any older connection of the same device, everywhere. */
  attach(session: ClientSession): void {
    const user = session.user!;
    const device = session.device!;
    this.accountNames.set(session.accountId!, user);
    const key = deviceKey(user, device);
    const old = this.byDevice.get(key);
    if (old && old !== session) old.replaced();
    this.byDevice.set(key, session);
    this.byUser.add(user, session);
    this.metrics.connections.inc();
    // One event for both: the claim also tells every worker the device is online (one IPC message
    // per worker per login instead of two).
    this.router.publish({ type: "claim", user, device, owner: this.claimOwner(session) });
    session.start();
  }

  /** Names a session across workers in claims (session ids are unique per process only). */
  private claimOwner(session: ClientSession): string {
    return `${this.workerId}/${session.id}`;
  }

  detach(session: ClientSession): void {
    for (const set of this.watchers.values()) set.delete(session);
    this.links.drop(session);
    if (session.user === undefined || session.device === undefined) return;
    const key = deviceKey(session.user, session.device);
    if (this.byDevice.get(key) !== session) return; // already replaced
    this.byDevice.delete(key);
    this.byUser.delete(session.user, session);
    this.metrics.connections.dec();
    const now = this.clock.now();
    this.router.publish({ type: "offline", user: session.user, device: session.device, lastSeen: now });
    this.storage.touchDevice(session.accountId!, session.device, now).catch(() => {});
  }

  sessionCount(): number {
    return this.byDevice.size;
  }

  // ---------------------------------------------------------- routing events

  private onRouteEvent(e: RouteEvent): void {
    switch (e.type) {
      case "wake": {
        const session = this.byDevice.get(deviceKey(e.user, e.device));
        if (!session) break;
        if (e.entry) session.deliverEnvelope(e.entry.seq, e.entry.envelope, e.entry.createdAt);
        else session.wake();
        break;
      }
      case "wake-shared": {
        let stanza: Stanza | undefined;
        for (const t of e.targets) {
          const session = this.byDevice.get(deviceKey(t.user, t.device));
          if (!session) continue;
          stanza ??= decodeStanza(e.envelope); // only the server writes envelopes
          session.deliver(t.seq, stanza, e.createdAt);
        }
        break;
      }
      case "link":
        this.links.onEvent(e);
        break;
      case "receipt": {
        let stanza: Stanza;
        try {
          stanza = decodeStanza(e.stanza); // only servers write these
        } catch {
          break;
        }
        this.routeDeliveredReceipt(e.accountId, stanza, e.device).catch((err) =>
          this.log.error({ err }, "could not route a delivered receipt"),
        );
        break;
      }
      case "revoke":
        this.byDevice.get(deviceKey(e.user, e.device))?.close(CloseCode.AUTH_FAILED, "this device was unlinked");
        break;
      case "devices":
        this.deviceIdCache.delete(e.accountId);
        this.accountCache.delete(e.user);
        break;
      case "group":
        this.groups.forget(e.group);
        break;
      case "claim": {
        const s = this.byDevice.get(deviceKey(e.user, e.device));
        if (s && this.claimOwner(s) !== e.owner) s.replaced();
        this.deviceOnline(e.user, e.device);
        break;
      }
      case "ephemeral":
        for (const s of this.byUser.values(e.user)) {
          if (s.device !== e.exceptDevice) s.sendRaw(e.stanza);
        }
        break;
      case "offline":
        if (this.online.count(e.user) > 0 && this.online.delete(e.user, e.device) === 0) {
          this.notifyWatchers(e.user, {
            kind: "presence",
            type: "unavailable",
            from: e.user,
            lastSeen: Math.floor(e.lastSeen / 1000),
          });
        }
        break;
    }
  }

  private deviceOnline(user: string, device: number): void {
    const wasOnline = this.online.add(user, device) > 0;
    if (!wasOnline) this.notifyWatchers(user, { kind: "presence", type: "available", from: user });
  }

  private notifyWatchers(user: string, stanza: Stanza): void {
    for (const s of this.watchers.get(user) ?? []) s.send(stanza);
  }

  isOnline(user: string): boolean {
    return this.online.count(user) > 0;
  }

  watch(session: ClientSession, user: string): void {
    let set = this.watchers.get(user);
    if (!set) {
      set = new Set();
      this.watchers.set(user, set);
    }
    set.add(session);
  }

  unwatch(session: ClientSession, user: string): void {
    this.watchers.get(user)?.delete(session);
  }

  /** Sends an ephemeral (never stored) stanza to every online device of `user`. */
  publishEphemeral(user: string, stanza: Stanza, exceptDevice?: number): void {
    const bytes = encodeStanza(stanza);
    this.router.publish({
      type: "ephemeral",
      user,
      stanza: bytes,
      ...(exceptDevice !== undefined ? { exceptDevice } : {}),
    });
  }

  // ------------------------------------------------------------ store + wake

  /**
   * Commits envelopes to device queues (durable on return) and delivers them as soon as they are
   * committed, while the disk syncs (OnCommitted): a recipient connected to this worker gets the
   * entry pushed straight from memory (`stanzas[i]` is item i's stanza); any other device's worker
   * is woken through the router and pushes it or reads its queue.
   */
  async enqueueAndWake(items: EnqueueItem[], names: Map<AccountId, string>, stanzas?: Stanza[]): Promise<number[]> {
    const seqs = await this.storage.enqueue(items, (committed) =>
      this.deliverCommitted(items, committed, names, stanzas),
    );
    this.metrics.envelopesQueued.inc(items.length);
    return seqs;
  }

  private deliverCommitted(
    items: EnqueueItem[],
    seqs: readonly (number | undefined)[],
    names: Map<AccountId, string>,
    stanzas: Stanza[] | undefined,
  ): void {
    const createdAt = this.clock.now();
    const woken = new Set<string>();
    items.forEach((it, i) => {
      // Stored by another shard's owner, which delivers it (onRemoteCommit).
      if (seqs[i] === undefined || !this.ownsQueue(it.accountId)) return;
      const user = names.get(it.accountId);
      if (user === undefined) return;
      const k = deviceKey(user, it.deviceId);
      const local = this.byDevice.get(k);
      if (local && stanzas?.[i] && !woken.has(k)) {
        local.deliver(seqs[i]!, stanzas[i]!, createdAt);
        return;
      }
      if (woken.has(k)) return;
      if (local) {
        woken.add(k);
        local.wake();
      } else if (stanzas?.[i]) {
        // The entry travels with the wake (one per entry), so the holder can push it from memory.
        this.router.publish({
          type: "wake",
          user,
          device: it.deviceId,
          entry: { seq: seqs[i]!, createdAt, envelope: it.envelope },
        });
      } else {
        woken.add(k);
        this.router.publish({ type: "wake", user, device: it.deviceId });
      }
    });
  }

  /**
   * Like enqueueAndWake for one payload stored once for many recipients (group messages, group
   * notifications): one queue entry per device references it.
   */
  async enqueueSharedAndWake(
    payload: Uint8Array,
    recipients: QueueRecipient[],
    names: Map<AccountId, string>,
    stanza: Stanza,
  ): Promise<number[]> {
    const seqs = await this.storage.enqueueShared(payload, recipients, (committed) => {
      const createdAt = this.clock.now();
      const remote: { user: string; device: number; seq: number }[] = [];
      recipients.forEach((r, i) => {
        const seq = committed[i];
        // Stored by another shard's owner, which delivers it (onRemoteCommit).
        if (seq === undefined || !this.ownsQueue(r.accountId)) return;
        const user = names.get(r.accountId);
        if (user === undefined) return;
        const local = this.byDevice.get(deviceKey(user, r.deviceId));
        if (local) local.deliver(seq, stanza, createdAt);
        else remote.push({ user, device: r.deviceId, seq });
      });
      // One event for all the devices this worker does not hold, carrying the payload once.
      if (remote.length > 0)
        this.router.publish({ type: "wake-shared", targets: remote, createdAt, envelope: payload });
    });
    this.metrics.envelopesQueued.inc(recipients.length);
    return seqs;
  }

  /**
   * Routes a delivered receipt (second tick) to the devices of `accountId` (only `onlyDevice` if
   * given). A device connected here, whose queue seqs this process assigns, and that is caught up
   * gets it pushed from memory under a fresh seq, with no queue row: the receipt is stored only if
   * the connection closes before the device acknowledges it (ClientSession.storeUnacked). This
   * saves an insert, a delete and a commit per message on the busiest path. The price: a receipt
   * in that short window is lost if the process crashes (stored receipts survive a process crash;
   * neither is fsynced).
   */
  async routeDeliveredReceipt(accountId: AccountId, receipt: Stanza, onlyDevice?: number): Promise<void> {
    if (!this.ownsQueue(accountId)) {
      // The worker owning the sender's queues decides (with handoff, the sender is connected there).
      this.router.sendTo(this.storage.queueOwner!(accountId), {
        type: "receipt",
        accountId,
        ...(onlyDevice !== undefined ? { device: onlyDevice } : {}),
        stanza: encodeStanza(receipt),
      });
      return;
    }
    const name = await this.accountName(accountId);
    if (name === null) return; // account deleted meanwhile
    const items: EnqueueItem[] = [];
    const stanzas: Stanza[] = [];
    let envelope: Uint8Array | undefined;
    for (const d of await this.deviceIds(accountId)) {
      if (onlyDevice !== undefined && d !== onlyDevice) continue;
      const local = this.byDevice.get(deviceKey(name, d));
      if (local?.canPushNow()) {
        const seq = this.storage.memorySeq?.(accountId) ?? null;
        if (seq !== null) {
          local.pushFromMemory(seq, receipt);
          continue;
        }
      }
      envelope ??= encodeStanza(receipt);
      items.push({ accountId, deviceId: d, envelope, durable: false });
      stanzas.push(receipt);
    }
    if (items.length > 0) await this.enqueueAndWake(items, new Map([[accountId, name]]), stanzas);
  }

  /**
   * This worker owns the shard and just committed entries another worker sent (a message to, or a
   * receipt for, an account of this shard): it delivers them, as enqueueAndWake does for its own.
   * With connection handoff the device is usually connected right here.
   */
  private onRemoteCommit(commit: RemoteCommit, seqs: QueueSeq[]): void {
    const createdAt = this.clock.now();
    if (commit.op === "enqueue") {
      commit.items.forEach((it, i) => {
        const session = this.localSession(it.accountId, it.deviceId);
        if (session) session.deliverEnvelope(seqs[i]!, it.envelope, createdAt);
        else
          this.accountName(it.accountId).then((user) => {
            if (user !== null)
              this.router.publish({
                type: "wake",
                user,
                device: it.deviceId,
                entry: { seq: seqs[i]!, createdAt, envelope: it.envelope },
              });
          }, this.wakeFailed);
      });
      return;
    }
    let stanza: Stanza | undefined;
    const remote: { accountId: AccountId; device: number; seq: number }[] = [];
    commit.recipients.forEach((r, i) => {
      const session = this.localSession(r.accountId, r.deviceId);
      if (!session) {
        remote.push({ accountId: r.accountId, device: r.deviceId, seq: seqs[i]! });
        return;
      }
      stanza ??= decodeStanza(commit.payload); // only the server writes envelopes
      session.deliver(seqs[i]!, stanza, createdAt);
    });
    if (remote.length === 0) return;
    Promise.all(remote.map((r) => this.accountName(r.accountId))).then((users) => {
      const targets = remote.flatMap((r, i) => (users[i] ? [{ user: users[i]!, device: r.device, seq: r.seq }] : []));
      if (targets.length > 0)
        this.router.publish({ type: "wake-shared", targets, createdAt, envelope: commit.payload });
    }, this.wakeFailed);
  }

  /**
   * A committed entry's wake could not be sent (its account name could not be read, e.g. storage
   * closing): the entry stays queued and reaches the device at its next fetch (next wake, ack or
   * login). Logged rather than left as an unhandled rejection, which would end the worker.
   */
  private readonly wakeFailed = (err: unknown): void => {
    this.log.error({ err }, "could not wake the holder of a committed entry");
  };

  /** The session of a device on this worker, by account id. */
  private localSession(accountId: AccountId, deviceId: number): ClientSession | undefined {
    const name = this.accountNames.get(accountId); // set for every account with a session here
    return name === undefined ? undefined : this.byDevice.get(deviceKey(name, deviceId));
  }

  // ------------------------------------------------------------------ caches

  /** Accounts by name (id and name never change; deletion is announced as a "devices" event). */
  private readonly accountCache = new Map<string, { id: AccountId; name: string }>();
  /** Device ids by account, dropped on every "devices" event. */
  private readonly deviceIdCache = new Map<AccountId, number[]>();

  /**
   * The cached answers of accountByName and deviceIds, without a promise: the send path asks both
   * for every message, and almost always hits (an await per lookup was a promise and a microtask).
   */
  cachedAccountByName(name: string): { id: AccountId; name: string } | undefined {
    return this.accountCache.get(name);
  }

  cachedDeviceIds(accountId: AccountId): number[] | undefined {
    return this.deviceIdCache.get(accountId);
  }

  async accountByName(name: string): Promise<{ id: AccountId; name: string } | null> {
    const hit = this.accountCache.get(name);
    if (hit) return hit;
    const a = await this.storage.getAccountByName(name);
    if (!a) return null;
    if (this.accountCache.size > 100_000) this.accountCache.clear();
    const entry = { id: a.id, name: a.name };
    this.accountCache.set(name, entry);
    if (a.name !== name) this.accountCache.set(a.name, entry);
    return entry;
  }

  async deviceIds(accountId: AccountId): Promise<number[]> {
    const hit = this.deviceIdCache.get(accountId);
    if (hit) return hit;
    const ids = (await this.storage.listDevices(accountId)).map((d) => d.deviceId);
    if (this.deviceIdCache.size > 100_000) this.deviceIdCache.clear();
    this.deviceIdCache.set(accountId, ids);
    return ids;
  }

  /** Tells every worker that an account's devices changed (call after the storage write). */
  devicesChanged(accountId: AccountId, user: string): void {
    this.deviceIdCache.delete(accountId);
    this.accountCache.delete(user);
    this.router.publish({ type: "devices", accountId, user });
  }

  /** Account name for an id, cached (names never change). */
  async accountName(id: AccountId): Promise<string | null> {
    const cached = this.accountNames.get(id);
    if (cached !== undefined) return cached;
    const account = await this.storage.getAccount(id);
    if (!account) return null;
    if (this.accountNames.size > 200_000) this.accountNames.clear();
    this.accountNames.set(id, account.name);
    return account.name;
  }

  /** Closes every session (server shutdown). */
  closeAll(reason: string): void {
    for (const s of [...this.byDevice.values()]) s.close(1001, reason);
  }
}
