// One ClientSession per connection: the whole per-connection state of the
// server (a few fields and two small sets), and the handlers of the stanzas a
// client may send. Nothing here blocks: storage calls are awaited per stanza,
// and any failure is confined to this connection (closed with a reason).
import {
  type AckStanza,
  type ChatStateStanza,
  CloseCode,
  type Connection,
  type DeliveryStanza,
  type DeviceAckStanza,
  type DeviceMismatch,
  decodeStanza,
  encodeStanza,
  type MessageStanza,
  type PresenceStanza,
  type ReceiptStanza,
  type Stanza,
  WireContext,
  WireError,
} from "@parley/wire";
import { TokenBucket } from "../rate-limit.ts";
import type { Account, AccountId, EnqueueItem, QueueEntry, QueueRecipient } from "../storage/index.ts";
import { isStorageError } from "../storage/index.ts";
import type { Gateway, LoginContext } from "./gateway.ts";
import { handleIq } from "./iq.ts";
import { addressesExactly, deviceMismatches } from "./sesame.ts";

/** Sends that arrived but are not yet committed; past this a client is flooding. */
const MAX_PENDING_SENDS = 2_000;
/** Largest stanza a client may send (an E2E message with many device ciphertexts). */
const MAX_CLIENT_STANZA = 512 * 1024;

export const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
export const fromHex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
/** Byte-wise equality of two public values (keys), without copying them. */
export const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
const seconds = (ms: number) => Math.floor(ms / 1000);
/**
 * The in-flight map of every session that has not pushed anything yet (an idle connection): never
 * written (pushStanza replaces it before its first set); reads and deletes on it are no-ops.
 */
const NO_ENTRIES = new Map<number, number>();

/** Session numbers, unique within this process (claims add the worker's id). */
let sessionCounter = 0;

export class ClientSession {
  /** A number, not a UUID: a UUID string is a rope of ~14 pieces, ~450 bytes per idle connection. */
  readonly id = ++sessionCounter;
  /** Set once logged in as a device (at login, or after registering on this connection). */
  account: Account | undefined;
  /**
   * The logged-in device's id. Only the id: the login's full record also holds the identity key and
   * prekeys (~2 KiB of buffers an idle connection should not keep); `identityKey()` reads the key
   * for the few requests that need it.
   */
  device: number | undefined;
  /** Name verified during registration on this connection. */
  verifiedName: string | undefined;
  private readonly passive: boolean;
  private readonly ctx = new WireContext();
  private closed = false;

  // Delivery state: entries pushed and not yet acknowledged, and where the next fetch starts.
  /** Pushed, unacknowledged entries: seq → when the entry was committed (for the delivery latency). */
  private inflight: Map<number, number> = NO_ENTRIES;
  /** Pushed entries that have no queue row (Gateway.routeDeliveredReceipt), until acknowledged. */
  private memoryEntries: Map<number, Stanza> | undefined;
  /**
   * Queue reads resume after this seq. It only advances through entries a fetch has seen, never
   * through entries pushed straight from memory: another worker may commit a lower seq for this
   * device whose wake is still on its way, and the next fetch must not skip it.
   */
  private fetchWatermark = 0;
  /** The queue may hold entries this connection has not pushed yet. */
  private needsFetch = true;
  private pumping = false;
  private pumpAgain = false;
  private backlogDone = false;
  /** Serializes the pre-commit part of sends so queue order equals arrival order. */
  private sendChain: Promise<void> | undefined;
  private pendingSends = 0;

  // Created on first use: an idle connection sends nothing after its login, and most connections
  // never type or send requests.
  private stanzaBucket: TokenBucket | undefined;
  private typingBucket: TokenBucket | undefined;
  private iqBucket: TokenBucket | undefined;

  constructor(
    readonly gateway: Gateway,
    readonly connection: Connection,
    context: LoginContext,
  ) {
    if (context.mode === "device") {
      this.account = context.account;
      this.device = context.device.deviceId;
      this.passive = context.passive;
    } else {
      this.passive = false;
    }
    connection.onStanza((bytes) => this.onBytes(bytes));
    connection.onDrain(() => this.pump()); // pushes paused at the high-water mark resume here (needsFetch is set)
    connection.onClose((code, reason) => {
      this.closed = true;
      this.storeUnacked();
      this.gateway.log.debug({ session: this.id, user: this.user, code, reason }, "connection closed");
      this.gateway.detach(this);
    });
  }

  get user(): string | undefined {
    return this.account?.name;
  }
  get accountId(): AccountId | undefined {
    return this.account?.id;
  }

  /**
   * The logged-in device's identity key, read from storage (only a few requests need it); undefined
   * if the device is no longer registered.
   */
  async identityKey(): Promise<Uint8Array | undefined> {
    if (this.account === undefined || this.device === undefined) return undefined;
    return (await this.gateway.storage.getDevice(this.account.id, this.device))?.identityKey;
  }

  /** Called by the gateway once this session is registered as the device's connection. */
  start(): void {
    if (!this.passive) this.pump();
  }

  // ----------------------------------------------------------------- output

  /** Sends a stanza; false if it could not be sent (connection closing, or larger than a frame). */
  send(stanza: Stanza): boolean {
    if (this.closed || this.connection.state !== "open") return false;
    try {
      this.connection.send(
        encodeStanza(stanza, this.ctx, this.connection.maxStanzaSize),
        stanza.kind === "ack" || stanza.kind === "receipt",
      );
      return true;
    } catch (err) {
      this.gateway.log.error({ err, session: this.id }, "failed to send stanza");
      return false;
    }
  }

  /** Sends pre-encoded, context-free stanza bytes (ephemeral stanzas from other workers). */
  sendRaw(bytes: Uint8Array): void {
    if (this.closed || this.connection.state !== "open") return;
    try {
      this.connection.send(bytes);
    } catch {
      // closing: nothing to do
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.close(code, reason);
  }

  /** A newer connection of the same device logged in. */
  replaced(): void {
    this.close(CloseCode.REPLACED, "replaced by a newer connection of this device");
  }

  private abuse(code: number, reason: string): void {
    this.gateway.metrics.disconnectsForAbuse.inc();
    this.gateway.log.warn({ session: this.id, user: this.user, reason }, "disconnecting client");
    this.close(code, reason);
  }

  // ------------------------------------------------------------------ input

  private onBytes(bytes: Uint8Array): void {
    if (this.closed) return;
    this.stanzaBucket ??= new TokenBucket(5_000, 2_500);
    if (!this.stanzaBucket.take()) {
      this.abuse(CloseCode.RATE_LIMITED, "rate limited: too many stanzas");
      return;
    }
    let stanza: Stanza;
    try {
      stanza = decodeStanza(bytes, { maxStanzaBytes: MAX_CLIENT_STANZA }, this.ctx);
    } catch (err) {
      const detail = err instanceof WireError ? `${err.code}: ${err.message}` : "undecodable stanza";
      this.abuse(CloseCode.PROTOCOL_VIOLATION, `malformed stanza (${detail})`.slice(0, 120));
      return;
    }
    if (this.account === undefined && stanza.kind !== "iq") {
      this.abuse(CloseCode.PROTOCOL_VIOLATION, `not logged in: ${stanza.kind} before registration`);
      return;
    }
    switch (stanza.kind) {
      case "message":
        this.onMessage(stanza);
        return;
      case "devack":
        return void this.onDeviceAck(stanza).catch((err) => this.fail(err));
      case "receipt":
        return void this.onReceipt(stanza).catch((err) => this.fail(err));
      case "presence":
        return void this.onPresence(stanza).catch((err) => this.fail(err));
      case "chatstate":
        this.onChatState(stanza);
        return;
      case "iq":
        this.iqBucket ??= new TokenBucket(200, 50);
        if (!this.iqBucket.take()) {
          this.abuse(CloseCode.RATE_LIMITED, "rate limited: too many requests");
          return;
        }
        return void handleIq(this, stanza).catch((err) => this.fail(err));
      case "node":
        return; // an extension this server does not know: skip it, as the protocol says
      default:
        this.abuse(CloseCode.PROTOCOL_VIOLATION, `a client may not send ${stanza.kind} stanzas`);
        return;
    }
  }

  /** An unexpected failure while handling a stanza: log it, keep serving others. */
  fail(err: unknown): void {
    this.gateway.log.error({ err, session: this.id, user: this.user }, "stanza handler failed");
    this.close(CloseCode.INTERNAL_ERROR, "internal error");
  }

  // -------------------------------------------------------------- messages

  private onMessage(m: MessageStanza): void {
    if (++this.pendingSends > MAX_PENDING_SENDS) {
      this.abuse(CloseCode.RATE_LIMITED, "rate limited: too many unacknowledged sends");
      return;
    }
    const arrived = performance.now();
    // Preparation runs in arrival order and ends by calling enqueue (which fixes the queue order);
    // the wait for the durable commit is outside the chain, so sends pipeline into group commits.
    this.sendChain = (this.sendChain ?? Promise.resolve()).then(async () => {
      let commit: Promise<unknown>;
      try {
        const prepared = await this.prepareMessage(m);
        if ("error" in prepared) {
          this.pendingSends--;
          this.gateway.metrics.stanzasRejected.inc();
          this.send(prepared.error);
          return;
        }
        // Per-device entries first, then the shared one: same group commit, queue order as listed.
        const parts: Promise<unknown>[] = [];
        if (prepared.items.length > 0)
          parts.push(this.gateway.enqueueAndWake(prepared.items, prepared.names, prepared.stanzas));
        if (prepared.shared) {
          const { payload, recipients, stanza } = prepared.shared;
          parts.push(this.gateway.enqueueSharedAndWake(payload, recipients, prepared.names, stanza));
        }
        commit = parts.length === 1 ? parts[0]! : Promise.all(parts);
      } catch (err) {
        this.pendingSends--;
        this.fail(err);
        return;
      }
      commit.then(
        () => {
          this.pendingSends--;
          this.gateway.metrics.messagesIn.inc();
          this.gateway.metrics.commitLatency.observe(performance.now() - arrived);
          this.send({ kind: "ack", id: m.id, timestamp: seconds(this.gateway.clock.now()) });
        },
        (err) => {
          this.pendingSends--;
          if (isStorageError(err) && err.code === "NOT_FOUND") {
            // a device vanished between the check and the commit: the client re-fetches and retries
            this.send(this.errorAck(m, "conflict", "device set changed, retry"));
          } else this.fail(err);
        },
      );
    });
  }

  private errorAck(m: MessageStanza, code: string, text: string, devices?: DeviceMismatch[]): AckStanza {
    return {
      kind: "ack",
      id: m.id,
      timestamp: seconds(this.gateway.clock.now()),
      error: { code, text, ...(devices ? { devices } : {}) },
    };
  }

  private async prepareMessage(m: MessageStanza): Promise<
    | { error: AckStanza }
    | {
        items: EnqueueItem[];
        names: Map<AccountId, string>;
        stanzas: Stanza[];
        shared?: { payload: Uint8Array; recipients: QueueRecipient[]; stanza: Stanza };
      }
  > {
    const me = this.account!;
    const myDevice = this.device!;
    if (m.group !== undefined) {
      const r = await this.gateway.groups.prepareMessage(m, me, myDevice, seconds(this.gateway.clock.now()));
      if ("error" in r) return { error: this.errorAck(m, r.error.code, r.error.text, r.error.devices) };
      return r;
    }
    if (m.to === undefined) return { error: this.errorAck(m, "bad-request", "a message needs to or group") };
    const gw = this.gateway;
    const peer = m.to === me.name ? me : (gw.cachedAccountByName(m.to) ?? (await gw.accountByName(m.to)));
    if (!peer) return { error: this.errorAck(m, "not-found", `no account named ${m.to}`) };

    // Sesame: the sender must address exactly every device of the peer and its own other devices.
    const peerDevices = gw.cachedDeviceIds(peer.id) ?? (await gw.deviceIds(peer.id));
    const ownDevices = gw.cachedDeviceIds(me.id) ?? (await gw.deviceIds(me.id));
    const expected = { peerName: peer.name, peerDevices, myName: me.name, ownDevices, myDevice };
    if (!addressesExactly(m.enc, expected)) {
      const mismatches = deviceMismatches(m.enc, expected);
      if (mismatches === "duplicate") return { error: this.errorAck(m, "bad-request", "a device is addressed twice") };
      if (mismatches.length > 0) {
        return { error: this.errorAck(m, "device-mismatch", "the device set is stale", mismatches) };
      }
    }
    if (m.enc.length === 0) return { error: this.errorAck(m, "bad-request", "no ciphertext") };

    const now = seconds(this.gateway.clock.now());
    const messageId = toHex(m.id);
    const names = new Map<AccountId, string>([
      [peer.id, peer.name],
      [me.id, me.name],
    ]);
    const stanzas: Stanza[] = [];
    // (object literals without spreads: one shape each, and no temporary objects per device)
    const from = { user: me.name, device: myDevice };
    const items: EnqueueItem[] = m.enc.map((e) => {
      const ownCopy = e.to.user === me.name && peer.id !== me.id;
      const delivery: DeliveryStanza = ownCopy
        ? { kind: "delivery", id: m.id, from, to: peer.name, timestamp: now, seq: 0, type: e.type, body: e.body }
        : { kind: "delivery", id: m.id, from, timestamp: now, seq: 0, type: e.type, body: e.body };
      stanzas.push(delivery);
      const envelope = encodeStanza(delivery);
      // Only recipient copies produce a delivered receipt; copies to our own devices do not.
      return ownCopy
        ? { accountId: me.id, deviceId: e.to.device, envelope }
        : {
            accountId: peer.id,
            deviceId: e.to.device,
            envelope,
            senderAccountId: me.id,
            senderDeviceId: myDevice,
            messageId,
          };
    });
    return { items, names, stanzas };
  }

  // -------------------------------------------------------------- delivery

  /** The queue got entries this worker did not see committed (another worker's, or a backlog). */
  wake(): void {
    this.needsFetch = true;
    this.pump();
  }

  /**
   * Delivers a just-committed entry of this device from memory. Only when the connection is caught
   * up (no backlog, nothing fetching, window open); otherwise the entry is read from the queue in
   * order by the next fetch.
   */
  deliver(seq: number, stanza: Stanza, createdAt: number): void {
    if (this.closed || this.passive || this.account === undefined) return;
    // A fetch already saw this entry (pushed it, or it is in flight, or it was pushed and acked): a
    // wake from another worker can reach this device after a fetch that read the committed row.
    if (seq <= this.fetchWatermark || this.inflight.has(seq)) return;
    if (!this.caughtUp()) {
      this.wake();
      return;
    }
    this.pushStanza(seq, stanza, createdAt);
  }

  /** Nothing older is waiting to be pushed and the window is open: a new entry may go out now. */
  private caughtUp(): boolean {
    return (
      this.backlogDone &&
      !this.needsFetch &&
      !this.pumping &&
      this.inflight.size < this.gateway.config.deliveryWindow &&
      this.connection.writable
    );
  }

  /** May an entry without a queue row be pushed to this connection now? */
  canPushNow(): boolean {
    return !this.closed && !this.passive && this.account !== undefined && this.caughtUp();
  }

  /** Pushes an entry that has no queue row; it is stored if this connection ends before it is acked. */
  pushFromMemory(seq: number, stanza: Stanza): void {
    this.memoryEntries ??= new Map();
    this.memoryEntries.set(seq, stanza);
    this.pushStanza(seq, stanza, this.gateway.clock.now());
    if (!this.inflight.has(seq)) {
      // not sent (closing): the queue keeps it
      this.memoryEntries.delete(seq);
      this.storeInQueue(new Map([[seq, stanza]]));
    }
  }

  /** Moves pushed, unacknowledged memory entries into the device's queue (the connection ended). */
  private storeUnacked(): void {
    const entries = this.memoryEntries;
    if (entries === undefined || entries.size === 0) return;
    this.memoryEntries = undefined;
    this.storeInQueue(entries);
  }

  private storeInQueue(entries: Map<number, Stanza>): void {
    const accountId = this.account!.id;
    const deviceId = this.device!;
    const stanzas = [...entries.values()];
    const items: EnqueueItem[] = stanzas.map((stanza) => ({
      accountId,
      deviceId,
      envelope: encodeStanza(stanza),
      durable: false,
    }));
    for (const seq of entries.keys()) this.inflight.delete(seq);
    this.gateway
      .enqueueAndWake(items, new Map([[accountId, this.user!]]), stanzas)
      .catch((err) => this.gateway.log.error({ err, user: this.user }, "could not store unacknowledged receipts"));
  }

  /** deliver() for an entry committed by another worker, as its envelope bytes. */
  deliverEnvelope(seq: number, envelope: Uint8Array, createdAt: number): void {
    if (this.closed || this.passive || this.account === undefined) return;
    let stanza: Stanza;
    try {
      stanza = decodeStanza(envelope);
    } catch {
      this.wake(); // only the server writes envelopes; read it from the queue instead
      return;
    }
    this.deliver(seq, stanza, createdAt);
  }

  /** Pushes queued entries, oldest first, keeping at most `deliveryWindow` unacknowledged. */
  pump(): void {
    if (this.closed || this.account === undefined || this.passive || !this.needsFetch) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.pumpLoop()
      .catch((err) => this.fail(err))
      .finally(() => {
        this.pumping = false;
      });
  }

  private async pumpLoop(): Promise<void> {
    const window = this.gateway.config.deliveryWindow;
    do {
      this.pumpAgain = false;
      while (!this.closed && this.needsFetch && this.inflight.size < window && this.connection.writable) {
        this.needsFetch = false;
        // Entries already in flight come back from the read too (they stay queued until acked): skip them.
        const limit = window + this.inflight.size;
        const entries = await this.gateway.storage.fetch(this.account!.id, this.device!, this.fetchWatermark, limit);
        let i = 0;
        for (; i < entries.length; i++) {
          const e = entries[i]!;
          if (this.inflight.has(e.seq)) {
            this.fetchWatermark = e.seq;
            continue;
          }
          // Stop at the window or the transport's high-water mark instead of queueing everything: a
          // window of large envelopes would overflow the transport's hard cap and cut off a healthy
          // device as a slow consumer. The rest is read again on ack or drain.
          if (this.inflight.size >= window || !this.connection.writable) break;
          this.fetchWatermark = e.seq;
          this.push(e);
        }
        if (i < entries.length || entries.length === limit) {
          this.needsFetch = true;
          continue;
        }
        if (!this.backlogDone) {
          this.backlogDone = true;
          this.send({
            kind: "notification",
            id: 0,
            timestamp: seconds(this.gateway.clock.now()),
            event: { type: "queue-empty" },
          });
        }
      }
    } while (this.pumpAgain && !this.closed);
  }

  private push(entry: QueueEntry): void {
    let stanza: Stanza;
    try {
      stanza = decodeStanza(entry.envelope);
    } catch (err) {
      // Only the server writes envelopes; an undecodable one is a bug. Skip it rather than wedge the queue.
      this.gateway.log.error({ err, seq: entry.seq }, "undecodable queue entry");
      return;
    }
    this.pushStanza(entry.seq, stanza, entry.createdAt);
  }

  private pushStanza(seq: number, stanza: Stanza, createdAt: number): void {
    let out = stanza;
    if (out.kind === "delivery" || out.kind === "receipt") out = { ...out, seq };
    else if (out.kind === "notification") out = { ...out, id: seq };
    if (this.inflight === NO_ENTRIES) this.inflight = new Map();
    this.inflight.set(seq, createdAt);
    this.gateway.metrics.envelopesPushed.inc();
    if (!this.send(out)) {
      // Not sent (closing, or it did not fit): not in flight, so a later fetch pushes it again.
      this.inflight.delete(seq);
      this.needsFetch = true;
    }
  }

  private async onDeviceAck(a: DeviceAckStanza): Promise<void> {
    if (a.seqs.length === 0) return;
    let stored = a.seqs;
    const memory = this.memoryEntries;
    if (memory !== undefined && memory.size > 0) {
      stored = [];
      const now = this.gateway.clock.now();
      for (const s of a.seqs) {
        if (!memory.delete(s)) {
          stored.push(s);
          continue;
        }
        const pushedAt = this.inflight.get(s);
        this.inflight.delete(s);
        if (pushedAt !== undefined) this.gateway.metrics.deliveryLatency.observe(Math.max(0, now - pushedAt));
        this.gateway.metrics.envelopesAcked.inc();
      }
      if (stored.length === 0) {
        this.pump();
        return;
      }
    }
    const acked = await this.gateway.storage.ack(this.account!.id, this.device!, stored);
    const now = this.gateway.clock.now();
    for (const e of acked) {
      const committedAt = this.inflight.get(e.seq);
      if (committedAt !== undefined) this.gateway.metrics.deliveryLatency.observe(Math.max(0, now - committedAt));
    }
    for (const s of stored) this.inflight.delete(s);
    this.gateway.metrics.envelopesAcked.inc(acked.length);
    // Delivered receipts (second tick), batched per sender account. A group message's receipts go
    // to the sending device only: a 1,024-member group makes 2,047 of them per message, and the
    // sender's other devices would queue them ahead of their own messages.
    const bySender = new Map<string, { account: AccountId; device: number | undefined; ids: Uint8Array[] }>();
    for (const e of acked) {
      if (e.senderAccountId === null || e.messageId === null) continue;
      const device = e.shared && e.senderDeviceId !== null ? e.senderDeviceId : undefined;
      const key = `${e.senderAccountId}\u0000${device ?? ""}`;
      let entry = bySender.get(key);
      if (!entry) {
        entry = { account: e.senderAccountId, device, ids: [] };
        bySender.set(key, entry);
      }
      entry.ids.push(fromHex(e.messageId));
    }
    if (bySender.size > 0) {
      const now = seconds(this.gateway.clock.now());
      const from = { user: this.user!, device: this.device! };
      for (const { account, device, ids } of bySender.values()) {
        const receipt: ReceiptStanza = { kind: "receipt", type: "delivered", ids, from, timestamp: now };
        await this.gateway.routeDeliveredReceipt(account, receipt, device);
      }
      this.gateway.metrics.receiptsRouted.inc(bySender.size);
    }
    this.pump();
  }

  /** Queues `stanzas[i]` for every device of `accounts[i]` and wakes them. */
  private async routeToAccounts(
    accounts: AccountId[],
    stanzas: Stanza[],
    only?: (account: AccountId, device: number) => boolean,
  ) {
    const items: EnqueueItem[] = [];
    const itemStanzas: Stanza[] = [];
    const names = new Map<AccountId, string>();
    for (let i = 0; i < accounts.length; i++) {
      const id = accounts[i]!;
      const name = await this.gateway.accountName(id);
      if (name === null) continue; // account deleted meanwhile
      names.set(id, name);
      const envelope = encodeStanza(stanzas[i]!);
      for (const d of await this.gateway.deviceIds(id)) {
        if (only && !only(id, d)) continue;
        // Receipts are not fsynced on their own (they survive a process crash, not a power cut):
        // the fsync budget goes to messages, whose first tick promises durability.
        items.push({ accountId: id, deviceId: d, envelope, durable: stanzas[i]!.kind !== "receipt" });
        itemStanzas.push(stanzas[i]!);
      }
    }
    if (items.length > 0) await this.gateway.enqueueAndWake(items, names, itemStanzas);
  }

  // -------------------------------------------------------------- receipts

  private async onReceipt(r: ReceiptStanza): Promise<void> {
    if (r.to === undefined || r.ids.length === 0) {
      this.abuse(CloseCode.PROTOCOL_VIOLATION, "a receipt needs a recipient and at least one id");
      return;
    }
    const target = await this.gateway.accountByName(r.to.user);
    if (!target) return; // unknown user: nothing to route; receipts get no error answer
    const routed: ReceiptStanza = {
      kind: "receipt",
      type: r.type,
      ids: r.ids,
      from: { user: this.user!, device: this.device! },
      timestamp: seconds(this.gateway.clock.now()),
      ...(r.group !== undefined ? { group: r.group } : {}),
      ...(r.retry !== undefined ? { retry: r.retry } : {}),
    };
    const me = this.account!.id;
    const targetDevice = r.to.device;
    const accounts = [target.id];
    const stanzas: Stanza[] = [routed];
    // Read state syncs across one's own devices: they get our read receipts too, with the chat named.
    if (r.type === "read" && target.id !== me) {
      accounts.push(me);
      stanzas.push({ ...routed, to: { user: target.name } });
    }
    await this.routeToAccounts(accounts, stanzas, (account, device) => {
      if (account === me) return device !== this.device;
      return targetDevice === undefined || device === targetDevice;
    });
    this.gateway.metrics.receiptsRouted.inc();
  }

  // ------------------------------------------------------ presence / typing

  private async onPresence(p: PresenceStanza): Promise<void> {
    if (p.type === "available" || p.type === "unavailable") return; // online state follows the connection
    if (p.to === undefined) {
      this.abuse(CloseCode.PROTOCOL_VIOLATION, "presence subscription without a target");
      return;
    }
    if (p.type === "unsubscribe") return this.gateway.unwatch(this, p.to);
    const target = await this.gateway.storage.getAccountByName(p.to);
    if (!target) return;
    const allowed = await this.gateway.storage.canSeePresence(this.account!.id, target.id);
    if (!allowed) {
      // Say nothing that distinguishes "hidden" from "never seen".
      this.send({ kind: "presence", type: "unavailable", from: target.name });
      return;
    }
    this.gateway.watch(this, target.name);
    if (this.gateway.isOnline(target.name)) this.send({ kind: "presence", type: "available", from: target.name });
    else {
      this.send({
        kind: "presence",
        type: "unavailable",
        from: target.name,
        ...(target.lastSeenAt !== null ? { lastSeen: seconds(target.lastSeenAt) } : {}),
      });
    }
  }

  private onChatState(c: ChatStateStanza): void {
    if (c.group !== undefined) {
      void this.onGroupChatState(c).catch((err) => this.fail(err));
      return;
    }
    if (c.to === undefined) {
      this.abuse(CloseCode.PROTOCOL_VIOLATION, "chat state without a recipient");
      return;
    }
    this.typingBucket ??= new TokenBucket(10, 2);
    if (!this.typingBucket.take()) return; // typing storms are dropped, never queued
    if (c.to === this.user) return;
    this.gateway.publishEphemeral(c.to, { kind: "chatstate", state: c.state, from: this.user! });
  }

  /** Typing in a group: to members' online devices only, bounded per sender and per group. */
  private async onGroupChatState(c: ChatStateStanza): Promise<void> {
    this.typingBucket ??= new TokenBucket(10, 2);
    if (!this.typingBucket.take()) return;
    const group = await this.gateway.groups.get(c.group!);
    if (!group?.memberIds.has(this.account!.id)) return;
    if (!this.gateway.groups.typingAllowed(c.group!)) return;
    const stanza: Stanza = { kind: "chatstate", state: c.state, from: this.user!, group: c.group! };
    for (const m of group.members) {
      if (m.id === this.account!.id) continue;
      if (this.gateway.isOnline(m.name)) this.gateway.publishEphemeral(m.name, stanza);
    }
  }
}
