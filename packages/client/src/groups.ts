// Groups on the client (docs/groups.md).
//
// Membership: a signed, hash-chained change log (@parley/wire groups.ts). This device signs the
// changes it makes with its identity key, and verifies every change it receives (signature by the
// author device's key from the author's signed device list, then the shared rules: admin-only,
// version and hash chain). A change that does not verify is ignored, whatever the server says.
//
// Messages: Sender Keys. Our sender key for a group is distributed pairwise (inside the normal
// Double Ratchet sessions) to each member device that does not have it yet, in the same message
// stanza as the sender-key ciphertext, which is encrypted once; the server stores it once for
// all member devices. When a device that had our key is no longer in the group (member removed,
// left, or unlinked a device) we rotate: a new distribution id, given only to current members.
import {
  createSenderKeyDistributionMessage,
  decodePublicKey,
  decryptMessage,
  encryptMessage,
  getCrypto,
  groupDecrypt,
  groupEncrypt,
  isSignalError,
  processSenderKeyDistributionMessage,
  type SenderKeyAddress,
  SenderKeyRecord,
  type SenderKeyStore,
  type SignalStores,
  toHex,
  uuidFromBytes,
  xeddsaSign,
  xeddsaVerify,
} from "@parley/signal";
import {
  applyGroupChange,
  type ChatState,
  type DeliveryStanza,
  type DeviceCiphertext,
  decodeGroupState,
  decodeStanza,
  encodeGroupChange,
  encodeGroupState,
  encodeSignedGroupChange,
  encodeStanza,
  type GroupAction,
  type GroupChange,
  GroupRuleError,
  type GroupState,
  groupChangeSignedBytes,
  type IqRequest,
  type IqResult,
  inviteCodeHash,
  isGroupId,
  type Stanza,
  splitSignedGroupChange,
} from "@parley/wire";
import { decodeContent, encodeContent, type MessageContent } from "./payload.ts";
import { groupChatId } from "./store/chat-id.ts";
import type { ProfileStore, StoredMessage } from "./store/types.ts";

export class GroupClientError extends Error {
  override readonly name = "GroupClientError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the group engine needs from the client that owns it. */
export interface GroupHost {
  readonly store: ProfileStore;
  readonly signal: SignalStores;
  me(): { user: string; device: number };
  now(): number;
  iq(request: IqRequest): Promise<IqResult>;
  sendStanza(stanza: Stanza): void;
  /** Registers interest in the server's ack of message `id`; resolves with the server time (s). */
  expectAck(id: string): Promise<number>;
  identityKeyPair(): { privateKey: Uint8Array; publicKey: Uint8Array };
  /** The identity key (33 bytes) of `user`'s `device` from their verified device list. */
  deviceIdentityKey(user: string, device: number): Promise<Uint8Array | undefined>;
  devicesOf(user: string, refresh?: boolean): Promise<number[]>;
  ensureSessions(user: string, devices: number[]): Promise<void>;
  devack(seq: number): void;
  emitGroup(event: GroupEvent): void;
  emitMessage(message: StoredMessage, chatId: string): void;
  emitError(error: Error): void;
  /** A group message could not be decrypted yet: buffered, and its sender asked for the key. */
  emitDecryptFailed(from: { user: string; device: number }, id: string, error: string): void;
}

export interface GroupEvent {
  group: string;
  change: GroupChange;
  state: GroupView;
}

/** A group as the application sees it. */
export interface GroupView {
  id: string;
  subject: string;
  description?: string;
  version: number;
  creator: string;
  members: { user: string; role: "member" | "admin" | "creator" }[];
  /** Whether this account is a member now. */
  active: boolean;
  hasInvite: boolean;
}

const STATE_KEY = (g: string) => `group:${g}`;
const GROUP_INDEX = "group-index";
const DISTRIBUTION_KEY = (g: string) => `group-sk:${g}`;
const RECIPIENTS_KEY = (id: string) => `group-rcpt:${id}`;
const BUFFER_KEY = (user: string, device: number, id: string) => `group-buf:${user}:${device}:${id}`;
const BUFFER_INDEX = "group-buf-index";
/** Buffered undecryptable group messages kept at most (oldest dropped). */
const MAX_BUFFERED = 500;
const CHANGE_ATTEMPTS = 4;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function senderKeyStoreFor(store: ProfileStore): SenderKeyStore {
  return {
    async loadSenderKey(sender: SenderKeyAddress, distributionId: string) {
      const bytes = store.getSenderKey(sender, distributionId);
      return bytes ? SenderKeyRecord.deserialize(bytes) : undefined;
    },
    async storeSenderKey(sender: SenderKeyAddress, distributionId: string, record: SenderKeyRecord) {
      store.saveSenderKey(sender, distributionId, record.serialize());
    },
  };
}

export class GroupEngine {
  private readonly senderKeys: SenderKeyStore;
  /** Serializes changes we author and changes we apply, per profile (one chain at a time). */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly host: GroupHost) {
    this.senderKeys = senderKeyStoreFor(host.store);
  }

  // ----------------------------------------------------------------- state

  private load(group: string): GroupState | undefined {
    const raw = this.host.store.getOpaque(STATE_KEY(group));
    return raw ? decodeGroupState(fromUtf8.decode(raw)) : undefined;
  }

  private save(state: GroupState): void {
    const store = this.host.store;
    store.transaction(() => {
      store.setOpaque(STATE_KEY(state.group), utf8.encode(encodeGroupState(state)));
      const index = this.ids();
      if (!index.includes(state.group))
        store.setOpaque(GROUP_INDEX, utf8.encode(JSON.stringify([...index, state.group])));
      const chatId = groupChatId(state.group);
      store.ensureChat(chatId, { title: state.subject });
      store.setChatTitle(chatId, state.subject);
    });
  }

  private ids(): string[] {
    const raw = this.host.store.getOpaque(GROUP_INDEX);
    return raw ? (JSON.parse(fromUtf8.decode(raw)) as string[]) : [];
  }

  private view(s: GroupState): GroupView {
    return {
      id: s.group,
      subject: s.subject,
      ...(s.description !== undefined ? { description: s.description } : {}),
      version: s.version,
      creator: s.creator,
      members: [...s.members].map(([user, role]) => ({ user, role })),
      active: s.members.has(this.host.me().user),
      hasInvite: s.inviteHash !== undefined,
    };
  }

  group(id: string): GroupView | undefined {
    const s = this.load(id);
    return s ? this.view(s) : undefined;
  }

  list(): GroupView[] {
    return this.ids()
      .map((id) => this.group(id))
      .filter((g): g is GroupView => g !== undefined);
  }

  // --------------------------------------------------------------- changes

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work, work);
    this.chain = run.catch(() => {});
    return run;
  }

  /** Signs a change on top of `state` with our device identity key. */
  private sign(
    state: GroupState | undefined,
    group: string,
    fields: Omit<GroupChange, "group" | "version" | "prev" | "author" | "time">,
  ): Uint8Array {
    const me = this.host.me();
    const change: GroupChange = {
      group,
      version: (state?.version ?? 0) + 1,
      prev: state?.head ?? new Uint8Array(32),
      author: { user: me.user, device: me.device },
      time: this.host.now(),
      ...fields,
    };
    const bytes = encodeGroupChange(change);
    return encodeSignedGroupChange(
      bytes,
      xeddsaSign(this.host.identityKeyPair().privateKey, groupChangeSignedBytes(bytes)),
    );
  }

  /**
   * Makes a change: build on our latest state, sign, submit. If another admin changed the group
   * meanwhile (conflict), catch up with the log and try again while the change still makes sense.
   */
  private change(
    group: string,
    build: (state: GroupState) => Omit<GroupChange, "group" | "version" | "prev" | "author" | "time">,
  ): Promise<GroupView> {
    return this.serialize(async () => {
      for (let attempt = 1; ; attempt++) {
        const state = this.load(group);
        if (!state) throw new GroupClientError("NOT_FOUND", `unknown group ${group}`);
        const signed = this.sign(state, group, build(state));
        let next: GroupState;
        try {
          next = applyGroupChange(state, signed).state; // our own rules first: a clear local error
        } catch (err) {
          if (err instanceof GroupRuleError) throw new GroupClientError(err.code, err.message);
          throw err;
        }
        try {
          await this.host.iq({ op: "group-change", change: signed });
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === "conflict" && attempt < CHANGE_ATTEMPTS) {
            await this.catchUp(group);
            continue;
          }
          throw err;
        }
        this.save(next);
        const change = splitSignedGroupChange(signed).change;
        this.afterApply(state, next, change);
        return this.view(next);
      }
    });
  }

  async create(subject: string, members: string[], description?: string): Promise<GroupView> {
    const me = this.host.me().user;
    const users = [...new Set(members.filter((m) => m !== me))];
    const group = toHex(getCrypto().randomBytes(16));
    return this.serialize(async () => {
      const signed = this.sign(undefined, group, {
        action: "create",
        users,
        subject,
        ...(description ? { description } : {}),
      });
      const next = applyGroupChange(undefined, signed).state;
      await this.host.iq({ op: "group-change", change: signed });
      this.save(next);
      const change = splitSignedGroupChange(signed).change;
      this.host.emitGroup({ group, change, state: this.view(next) });
      return this.view(next);
    });
  }

  add(group: string, users: string[]) {
    return this.change(group, (s) => ({ action: "add", users: users.filter((u) => !s.members.has(u)) }));
  }
  remove(group: string, users: string[]) {
    return this.change(group, (s) => ({ action: "remove", users: users.filter((u) => s.members.has(u)) }));
  }
  promote(group: string, users: string[]) {
    return this.change(group, () => ({ action: "promote", users }));
  }
  demote(group: string, users: string[]) {
    return this.change(group, () => ({ action: "demote", users }));
  }
  leave(group: string) {
    return this.change(group, () => ({ action: "leave", users: [this.host.me().user] }));
  }
  setSubject(group: string, subject: string) {
    return this.change(group, () => ({ action: "subject", users: [], subject }));
  }
  /** "" clears it. */
  setDescription(group: string, description: string) {
    return this.change(group, () => ({ action: "subject", users: [], description }));
  }
  /** A new invite link (replacing any previous one). Share the returned code; members never see it. */
  async createInvite(group: string): Promise<string> {
    const code = toHex(getCrypto().randomBytes(16));
    await this.change(group, () => ({ action: "invite-set", users: [], inviteHash: inviteCodeHash(code) }));
    return code;
  }
  revokeInvite(group: string) {
    return this.change(group, () => ({ action: "invite-revoke", users: [] }));
  }

  /** Joins the group an invite code opens: verify its whole log, then sign our join on its head. */
  join(code: string): Promise<GroupView> {
    return this.serialize(async () => {
      for (let attempt = 1; ; attempt++) {
        const r = await this.host.iq({ op: "group-invite-preview", code });
        if (r.op !== "group-log") throw new GroupClientError("PROTOCOL", "unexpected answer to group-invite-preview");
        const state = await this.verifyLog(undefined, r.changes);
        const signed = this.sign(state, state.group, {
          action: "join",
          users: [this.host.me().user],
          inviteCode: code,
        });
        const next = applyGroupChange(state, signed).state;
        try {
          await this.host.iq({ op: "group-change", change: signed });
        } catch (err) {
          if ((err as { code?: string }).code === "conflict" && attempt < CHANGE_ATTEMPTS) continue;
          throw err;
        }
        this.save(next);
        this.host.emitGroup({
          group: next.group,
          change: splitSignedGroupChange(signed).change,
          state: this.view(next),
        });
        return this.view(next);
      }
    });
  }

  /** Learns every group this account is in (a newly linked device, or a missed notification). */
  sync(): Promise<void> {
    return this.serialize(async () => {
      const r = await this.host.iq({ op: "groups" });
      if (r.op !== "groups") return;
      for (const g of r.groups) {
        const local = this.load(g.group);
        if (!local || local.version < g.version) await this.catchUpUnserialized(g.group);
      }
    });
  }

  private catchUp(group: string): Promise<void> {
    return this.catchUpUnserialized(group);
  }

  /** Fetches and verifies the log after our version (from creation when we know nothing). */
  private async catchUpUnserialized(group: string): Promise<void> {
    let state = this.load(group);
    for (;;) {
      const r = await this.host.iq({ op: "group-log", group, after: state?.version ?? 0 });
      if (r.op !== "group-log") throw new GroupClientError("PROTOCOL", "unexpected answer to group-log");
      if (r.changes.length === 0) return;
      const before = state;
      state = await this.verifyLog(state, r.changes, (prev, next, change) => {
        this.save(next);
        this.afterApply(prev, next, change);
      });
      if (before && state.version === before.version) return;
    }
  }

  /** Verifies and applies `changes` in order on `state`; throws if any does not verify. */
  private async verifyLog(
    state: GroupState | undefined,
    changes: Uint8Array[],
    onApplied?: (prev: GroupState | undefined, next: GroupState, change: GroupChange) => void,
  ): Promise<GroupState> {
    let current = state;
    for (const signed of changes) {
      const { state: next, change } = await this.verifyOne(current, signed);
      onApplied?.(current, next, change);
      current = next;
    }
    if (!current) throw new GroupClientError("NOT_FOUND", "empty group log");
    return current;
  }

  private async verifyOne(state: GroupState | undefined, signed: Uint8Array) {
    const parts = splitSignedGroupChange(signed);
    const { change } = parts;
    const me = this.host.me();
    const key =
      change.author.user === me.user && change.author.device === me.device
        ? this.host.identityKeyPair().publicKey
        : await this.host
            .deviceIdentityKey(change.author.user, change.author.device)
            .then((k) => (k ? decodePublicKey(k) : undefined));
    if (!key || !xeddsaVerify(key, groupChangeSignedBytes(parts.bytes), parts.signature)) {
      throw new GroupClientError(
        "FORGED",
        `group change ${change.version} is not signed by ${change.author.user}.${change.author.device}`,
      );
    }
    return applyGroupChange(state, signed); // throws GroupRuleError: not an admin, gap, fork
  }

  /** A group-change notification: verify and apply in order, or catch up with the log on a gap. */
  onNotification(signed: Uint8Array): Promise<void> {
    return this.serialize(async () => {
      let change: GroupChange;
      try {
        change = splitSignedGroupChange(signed).change;
      } catch (err) {
        this.host.emitError(new GroupClientError("MALFORMED", `malformed group change: ${(err as Error).message}`));
        return;
      }
      const state = this.load(change.group);
      if (state && change.version <= state.version) return; // already applied (our own, or a repeat)
      if ((state === undefined && change.action !== "create") || (state && change.version > state.version + 1)) {
        // Added to a group we do not know, or missed changes: the log from where we are.
        try {
          await this.catchUpUnserialized(change.group);
        } catch (err) {
          if ((err as { code?: string }).code !== "not-found") this.host.emitError(err as Error);
          // not a member any more: apply this one if it follows from what we know (our removal)
          if (state && change.version === state.version + 1) await this.applyVerified(state, signed);
        }
        return;
      }
      await this.applyVerified(state, signed);
    });
  }

  private async applyVerified(state: GroupState | undefined, signed: Uint8Array): Promise<void> {
    try {
      const { state: next, change } = await this.verifyOne(state, signed);
      this.save(next);
      this.afterApply(state, next, change);
    } catch (err) {
      // A forged or out-of-rule change is dropped: the group stays as the admins left it.
      this.host.emitError(
        err instanceof GroupRuleError
          ? new GroupClientError(`REJECTED_${err.code}`, `ignored group change: ${err.message}`)
          : (err as Error),
      );
    }
  }

  private afterApply(prev: GroupState | undefined, next: GroupState, change: GroupChange): void {
    if (change.action === "remove" || change.action === "leave") {
      // Anyone who had our key and is gone must not read what we send next: rotate before sending.
      this.host.store.deleteOpaque(DISTRIBUTION_KEY(next.group));
    }
    void prev;
    this.host.emitGroup({ group: next.group, change, state: this.view(next) });
  }

  // --------------------------------------------------------------- sending

  private distributionId(group: string): string {
    const raw = this.host.store.getOpaque(DISTRIBUTION_KEY(group));
    if (raw) return fromUtf8.decode(raw);
    const id = uuidFromBytes(getCrypto().randomBytes(16));
    this.host.store.setOpaque(DISTRIBUTION_KEY(group), utf8.encode(id));
    return id;
  }

  /** Every member device but this one, from verified device lists. */
  private async targets(state: GroupState, refresh: boolean): Promise<{ user: string; device: number }[]> {
    const me = this.host.me();
    const out: { user: string; device: number }[] = [];
    for (const user of state.members.keys()) {
      for (const device of await this.host.devicesOf(user, refresh)) {
        if (user === me.user && device === me.device) continue;
        out.push({ user, device });
      }
    }
    return out;
  }

  /**
   * Encrypts `content` once with our sender key and sends it with the key distribution for the
   * devices that lack it. Resolves with the ack's server time (first tick).
   */
  async send(group: string, id: string, content: MessageContent, attempt = 0): Promise<number> {
    // Encrypting and handing to the connection are serialized (one sender-key chain, queue order);
    // waiting for the ack is not, so several messages are in flight at once.
    const prepared = this.sendChain.then(() => this.encryptAndSend(group, id, content, attempt > 0));
    this.sendChain = prepared.catch(() => {});
    const { ack, distributionId, need } = await prepared;
    try {
      const ts = await ack;
      if (need.length > 0)
        this.host.store.markSenderKeyShared(
          distributionId,
          need.map((t) => ({ name: t.user, deviceId: t.device })),
        );
      return ts;
    } catch (err) {
      if ((err as { code?: string }).code === "device-mismatch" && attempt < 2)
        return this.send(group, id, content, attempt + 1);
      throw err;
    }
  }

  private sendChain: Promise<unknown> = Promise.resolve();

  private async encryptAndSend(group: string, id: string, content: MessageContent, refresh: boolean) {
    const state = this.load(group);
    const me = this.host.me();
    if (!state) throw new GroupClientError("NOT_FOUND", `unknown group ${group}`);
    if (!state.members.has(me.user)) throw new GroupClientError("not-member", "we are not a member of this group");
    const targets = await this.targets(state, refresh);
    const key = (a: { name: string; deviceId: number } | { user: string; device: number }) =>
      "name" in a ? `${a.name}\u0000${a.deviceId}` : `${a.user}\u0000${a.device}`;
    let distributionId = this.distributionId(group);
    const current = new Set(targets.map(key));
    const shared = this.host.store.listSenderKeyShared(distributionId);
    if (shared.some((a) => !current.has(key(a)))) {
      // A device that had our key left the group: rotate so it learns nothing from now on.
      this.host.store.deleteOpaque(DISTRIBUTION_KEY(group));
      distributionId = this.distributionId(group);
    }
    const have = new Set(this.host.store.listSenderKeyShared(distributionId).map(key));
    const sender = { name: me.user, deviceId: me.device };
    const skdm = await createSenderKeyDistributionMessage(this.senderKeys, sender, distributionId);
    const need = targets.filter((t) => !have.has(key(t)));
    const enc = await this.encryptPairwise(need, {
      text: "",
      sentAt: content.sentAt,
      group,
      senderKey: skdm,
      keyOnly: true,
    });
    const skmsg = await groupEncrypt(this.senderKeys, sender, distributionId, encodeContent({ ...content, group }));
    this.host.store.setOpaque(
      RECIPIENTS_KEY(id),
      utf8.encode(JSON.stringify([...state.members.keys()].filter((u) => u !== me.user))),
    );
    const ack = this.host.expectAck(id);
    this.host.sendStanza({
      kind: "message",
      id: hexBytes(id),
      group,
      timestamp: Math.floor(content.sentAt / 1000),
      enc,
      skmsg,
    });
    return { ack, distributionId, need };
  }

  private async encryptPairwise(
    targets: { user: string; device: number }[],
    content: MessageContent,
  ): Promise<DeviceCiphertext[]> {
    const byUser = new Map<string, number[]>();
    for (const t of targets) byUser.set(t.user, [...(byUser.get(t.user) ?? []), t.device]);
    for (const [user, devices] of byUser) await this.host.ensureSessions(user, devices);
    const plaintext = encodeContent(content);
    const enc: DeviceCiphertext[] = [];
    for (const t of targets) {
      const c = await encryptMessage({ name: t.user, deviceId: t.device }, plaintext, this.host.signal);
      enc.push({ to: { user: t.user, device: t.device }, type: c.type === "prekey" ? "pkmsg" : "msg", body: c.body });
    }
    return enc;
  }

  /**
   * A member device could not decrypt our message `id` (retry receipt): send it that message
   * pairwise, with our current sender key, so it reads this one and the ones after.
   */
  async resend(group: string, target: { user: string; device: number }, message: StoredMessage): Promise<void> {
    const state = this.load(group);
    const me = this.host.me();
    if (!state?.members.has(target.user) || message.body === null) return;
    this.host.store.deleteSession({ name: target.user, deviceId: target.device });
    const distributionId = this.distributionId(group);
    const skdm = await createSenderKeyDistributionMessage(
      this.senderKeys,
      { name: me.user, deviceId: me.device },
      distributionId,
    );
    const enc = await this.encryptPairwise([target], {
      text: message.body,
      sentAt: message.sentAt,
      group,
      senderKey: skdm,
    });
    const ack = this.host.expectAck(message.id);
    this.host.sendStanza({
      kind: "message",
      id: hexBytes(message.id),
      group,
      timestamp: Math.floor(message.sentAt / 1000),
      enc,
    });
    await ack;
    this.host.store.markSenderKeyShared(distributionId, [{ name: target.user, deviceId: target.device }]);
  }

  /** The members a message of ours went to (for per-member receipts); undefined if not a group message. */
  recipientsOf(id: string): string[] | undefined {
    const raw = this.host.store.getOpaque(RECIPIENTS_KEY(id));
    return raw ? (JSON.parse(fromUtf8.decode(raw)) as string[]) : undefined;
  }

  typing(group: string, state: ChatState): void {
    this.host.sendStanza({ kind: "chatstate", state, group });
  }

  // ------------------------------------------------------------- receiving

  /**
   * A delivery with `group` set. Pairwise (pkmsg/msg): a sender key (and maybe a resent message).
   * skmsg: decrypt with the sender's key, or buffer it and ask for the key (retry receipt).
   * Acks the queue entry once the outcome is stored.
   */
  async onDelivery(d: DeliveryStanza): Promise<void> {
    const group = d.group!;
    const sender = { name: d.from.user, deviceId: d.from.device };
    const id = toHex(d.id);
    if (!isGroupId(group)) {
      this.host.devack(d.seq);
      return;
    }
    if (d.type !== "skmsg") {
      let content: MessageContent;
      try {
        const plain = await decryptMessage(sender, d.type === "pkmsg" ? "prekey" : "whisper", d.body, this.host.signal);
        content = decodeContent(plain);
      } catch (err) {
        if (!isSignalError(err, "DUPLICATE_MESSAGE")) this.host.emitError(err as Error);
        this.host.devack(d.seq);
        return;
      }
      if (content.group !== group) {
        this.host.emitError(new GroupClientError("MISROUTED", "a group key arrived for another group than it names"));
        this.host.devack(d.seq);
        return;
      }
      if (content.senderKey) {
        try {
          await processSenderKeyDistributionMessage(this.senderKeys, sender, content.senderKey);
        } catch (err) {
          this.host.emitError(err as Error);
        }
      }
      if (!content.keyOnly) this.store(d, id, content);
      this.host.devack(d.seq);
      await this.drainBuffered(d.from.user, d.from.device);
      return;
    }
    const content = await this.decryptGroup(d);
    if (content === undefined) {
      this.buffer(d, id);
      this.requestKey(d);
      this.host.emitDecryptFailed(d.from, id, "no sender key yet: buffered, key requested");
    } else if (content !== null) this.store(d, id, content);
    this.host.devack(d.seq);
  }

  /** undefined: no key (buffer it); null: nothing to store (duplicate or bad). */
  private async decryptGroup(d: DeliveryStanza): Promise<MessageContent | undefined | null> {
    try {
      const plain = await groupDecrypt(this.senderKeys, { name: d.from.user, deviceId: d.from.device }, d.body);
      const content = decodeContent(plain);
      if (content.group !== d.group) {
        this.host.emitError(
          new GroupClientError("MISROUTED", "a group message arrived for another group than it names"),
        );
        return null;
      }
      return content;
    } catch (err) {
      if (isSignalError(err, "DUPLICATE_MESSAGE")) return null;
      if (isSignalError(err, "NO_SENDER_KEY")) return undefined;
      this.host.emitError(err as Error);
      return undefined;
    }
  }

  private store(d: DeliveryStanza, id: string, content: MessageContent): void {
    const me = this.host.me().user;
    // Only members (as the verified log says) speak in a group: queue order puts a member's "add"
    // before anything they send, and a remove after anything they sent while a member.
    if (!this.load(d.group!)?.members.has(d.from.user)) {
      this.host.emitError(new GroupClientError("NOT_A_MEMBER", `${d.from.user} is not a member of group ${d.group}`));
      return;
    }
    const chatId = groupChatId(d.group!);
    const store = this.host.store;
    store.ensureChat(chatId);
    if (d.from.user === me) {
      // Sent from another of our devices.
      const r = store.transaction(() => {
        const inserted = store.queueOutgoing({
          id,
          chatId,
          body: content.text,
          sentAt: content.sentAt,
          senderDevice: d.from.device,
        });
        if (inserted.isNew) store.markSent(id, d.timestamp * 1000);
        return inserted;
      });
      const stored = store.getMessage(me, id);
      if (r.isNew && stored) this.host.emitMessage(stored, chatId);
      return;
    }
    const r = store.insertIncoming({
      id,
      chatId,
      sender: d.from.user,
      senderDevice: d.from.device,
      body: content.text,
      sentAt: content.sentAt,
      serverAt: d.timestamp * 1000,
      receivedAt: this.host.now(),
    });
    if (r.isNew) this.host.emitMessage(r.message, chatId);
  }

  private bufferIndex(): string[] {
    const raw = this.host.store.getOpaque(BUFFER_INDEX);
    return raw ? (JSON.parse(fromUtf8.decode(raw)) as string[]) : [];
  }

  private buffer(d: DeliveryStanza, id: string): void {
    const key = BUFFER_KEY(d.from.user, d.from.device, id);
    const store = this.host.store;
    store.transaction(() => {
      store.setOpaque(key, encodeStanza(d));
      const index = this.bufferIndex().filter((k) => k !== key);
      index.push(key);
      while (index.length > MAX_BUFFERED) store.deleteOpaque(index.shift()!);
      store.setOpaque(BUFFER_INDEX, utf8.encode(JSON.stringify(index)));
    });
  }

  /** A sender's key arrived: decrypt what we buffered from it, in arrival order. */
  private async drainBuffered(user: string, device: number): Promise<void> {
    const prefix = `group-buf:${user}:${device}:`;
    const keys = this.bufferIndex().filter((k) => k.startsWith(prefix));
    if (keys.length === 0) return;
    const done: string[] = [];
    for (const key of keys) {
      const raw = this.host.store.getOpaque(key);
      if (!raw) {
        done.push(key);
        continue;
      }
      const d = decodeStanza(raw) as DeliveryStanza;
      const content = await this.decryptGroup(d);
      if (content === undefined) continue; // still no key for this one: the pairwise resend will bring it
      if (content !== null) this.store(d, toHex(d.id), content);
      done.push(key);
    }
    const store = this.host.store;
    store.transaction(() => {
      for (const k of done) store.deleteOpaque(k);
      store.setOpaque(BUFFER_INDEX, utf8.encode(JSON.stringify(this.bufferIndex().filter((k) => !done.includes(k)))));
    });
  }

  private requestKey(d: DeliveryStanza): void {
    try {
      this.host.sendStanza({
        kind: "receipt",
        type: "retry",
        ids: [d.id],
        to: { user: d.from.user, device: d.from.device },
        group: d.group!,
        timestamp: Math.floor(this.host.now() / 1000),
        retry: { count: 1, registrationId: this.host.store.getMeta("registrationId") ?? 0 },
      });
    } catch {
      // offline: the next message from this sender asks again
    }
  }

  /** Buffered group messages waiting for a sender key (for status displays and tests). */
  bufferedCount(): number {
    return this.bufferIndex().length;
  }
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

export type { GroupAction };
