// Groups on the server (docs/groups.md): membership as a signed change log the
// server checks and stores but cannot forge, a per-worker cache of who is in
// each group (for routing), and the fan-out of group messages: the sender-key
// ciphertext is stored once and referenced from every member device's queue.
import { decodePublicKey, isSignalError, xeddsaVerify } from "@parley/signal/verify";
import {
  applyGroupChange,
  type DeliveryStanza,
  decodeGroupState,
  encodeGroupState,
  encodeStanza,
  GroupRuleError,
  type GroupState,
  groupChangeSignedBytes,
  inviteCodeHash,
  isGroupId,
  type MessageStanza,
  type NotificationStanza,
  type Stanza,
  splitSignedGroupChange,
} from "@parley/wire";
import { TokenBucket } from "../rate-limit.ts";
import type { AccountId, EnqueueItem, QueueRecipient } from "../storage/index.ts";
import type { Gateway } from "./gateway.ts";

/** Changes handed out per group-log answer (a log entry is < 70 KB even for a 1,023-user add). */
const LOG_PAGE = 64;
/** Group typing events per group per worker: a group of 1,024 cannot turn typing into a storm. */
const GROUP_TYPING_BURST = 5;
const GROUP_TYPING_PER_SECOND = 2;

export class GroupError extends Error {
  constructor(
    readonly code: "bad-request" | "forbidden" | "conflict" | "not-found",
    message: string,
  ) {
    super(message);
  }
}

/** What the gateway keeps per group: the members with their names, for routing. */
export interface CachedGroup {
  version: number;
  members: { id: AccountId; name: string }[];
  memberIds: Set<AccountId>;
}

export class GroupDirectory {
  private readonly cache = new Map<string, Promise<CachedGroup | null>>();
  private readonly typing = new Map<string, TokenBucket>();

  constructor(private readonly gw: Gateway) {}

  /** The group's members (cached until a "group" route event). */
  get(group: string): Promise<CachedGroup | null> {
    let hit = this.cache.get(group);
    if (!hit) {
      hit = this.load(group);
      if (this.cache.size > 50_000) this.cache.clear();
      this.cache.set(group, hit);
      hit.catch(() => this.cache.delete(group));
    }
    return hit;
  }

  private async load(group: string): Promise<CachedGroup | null> {
    const stored = await this.gw.storage.getGroup(group);
    if (!stored) return null;
    const members: { id: AccountId; name: string }[] = [];
    for (const id of stored.members) {
      const name = await this.gw.accountName(id);
      if (name !== null) members.push({ id, name }); // a deleted account stays in the log, not in routing
    }
    return { version: stored.version, members, memberIds: new Set(members.map((m) => m.id)) };
  }

  forget(group: string): void {
    this.cache.delete(group);
  }

  typingAllowed(group: string): boolean {
    let bucket = this.typing.get(group);
    if (!bucket) {
      if (this.typing.size > 10_000) this.typing.clear();
      bucket = new TokenBucket(GROUP_TYPING_BURST, GROUP_TYPING_PER_SECOND);
      this.typing.set(group, bucket);
    }
    return bucket.take();
  }

  // ------------------------------------------------------------------ changes

  /**
   * A signed change from the device logged in as `author`: verify the signature with that device's
   * identity key, apply the shared rules to the stored state, store (durable), then tell every
   * device of every member (old and new, so the removed hear it too) with one shared queue entry.
   */
  async applyChange(
    author: { accountId: AccountId; user: string; device: number; identityKey: Uint8Array },
    signed: Uint8Array,
  ): Promise<number> {
    let parts: ReturnType<typeof splitSignedGroupChange>;
    try {
      parts = splitSignedGroupChange(signed);
    } catch (err) {
      throw new GroupError("bad-request", `malformed group change: ${(err as Error).message}`);
    }
    const { change } = parts;
    if (change.author.user !== author.user || change.author.device !== author.device) {
      throw new GroupError("forbidden", "a device signs group changes only as itself");
    }
    let ok = false;
    try {
      ok = xeddsaVerify(decodePublicKey(author.identityKey), groupChangeSignedBytes(parts.bytes), parts.signature);
    } catch (err) {
      if (!isSignalError(err)) throw err;
    }
    if (!ok) throw new GroupError("bad-request", "the group change signature does not verify");

    const stored = await this.gw.storage.getGroup(change.group);
    const before: GroupState | undefined = stored ? decodeGroupState(stored.state) : undefined;
    let after: GroupState;
    try {
      after = applyGroupChange(before, signed).state;
    } catch (err) {
      if (err instanceof GroupRuleError) {
        throw new GroupError(
          err.code === "STALE" ? "conflict" : err.code === "FORBIDDEN" ? "forbidden" : "bad-request",
          err.message,
        );
      }
      throw err;
    }
    const ids = new Map<string, AccountId>();
    for (const name of after.members.keys()) {
      const a = name === author.user ? { id: author.accountId } : await this.gw.accountByName(name);
      if (!a) throw new GroupError("not-found", `no account named ${name}`);
      ids.set(name, a.id);
    }
    await this.gw.storage.applyGroupUpdate({
      group: change.group,
      version: after.version,
      state: encodeGroupState(after),
      members: [...ids.values()],
      inviteHash: after.inviteHash ?? null,
      change: signed,
    });
    this.forget(change.group);
    this.gw.router.publish({ type: "group", group: change.group });

    // Everyone who was or is a member hears of it, except the authoring device (it has applied it).
    const audience = new Map<AccountId, string>();
    for (const [name, id] of ids) audience.set(id, name);
    if (stored) {
      for (const id of stored.members) {
        if (audience.has(id)) continue;
        const name = await this.gw.accountName(id);
        if (name !== null) audience.set(id, name);
      }
    }
    const notification: NotificationStanza = {
      kind: "notification",
      id: 0,
      timestamp: Math.floor(this.gw.clock.now() / 1000),
      event: { type: "group-change", change: signed },
    };
    const recipients: QueueRecipient[] = [];
    for (const [id] of audience) {
      for (const d of await this.gw.deviceIds(id)) {
        if (id === author.accountId && d === author.device) continue;
        recipients.push({ accountId: id, deviceId: d });
      }
    }
    if (recipients.length > 0)
      await this.gw.enqueueSharedAndWake(encodeStanza(notification), recipients, audience, notification);
    return after.version;
  }

  /** The signed log after `after`, for a member (or, with `viaInvite`, for someone holding the invite). */
  async log(group: string, after: number, requester: AccountId | null): Promise<Uint8Array[]> {
    if (!isGroupId(group)) throw new GroupError("bad-request", "not a group id");
    const g = await this.gw.storage.getGroup(group);
    if (!g || (requester !== null && !g.members.includes(requester))) {
      // Same answer for "no such group" and "not a member": group ids are not probeable.
      throw new GroupError("not-found", "no such group");
    }
    return this.gw.storage.getGroupLog(group, after, LOG_PAGE);
  }

  async groupForInvite(code: string): Promise<string> {
    if (code.length === 0 || code.length > 64) throw new GroupError("bad-request", "bad invite code");
    const group = await this.gw.storage.findGroupByInvite(inviteCodeHash(code));
    if (group === null) throw new GroupError("not-found", "the invite link is not valid (revoked or wrong)");
    return group;
  }

  // ----------------------------------------------------------------- messages

  /**
   * Checks a group message and builds its queue entries: `enc` entries (sender-key distribution or
   * a pairwise resend) go to the listed member devices only; the sender-key ciphertext goes once to
   * every device of every member but the sending device, stored once.
   */
  async prepareMessage(
    m: MessageStanza,
    me: { id: AccountId; name: string },
    myDevice: number,
    now: number,
  ): Promise<
    | {
        error: {
          code: string;
          text: string;
          devices?: { user: string; missing: number[]; extra: number[]; stale: number[] }[];
        };
      }
    | {
        items: EnqueueItem[];
        stanzas: Stanza[];
        names: Map<AccountId, string>;
        shared?: { payload: Uint8Array; recipients: QueueRecipient[]; stanza: Stanza };
      }
  > {
    const group = m.group!;
    const g = isGroupId(group) ? await this.get(group) : null;
    if (!g?.memberIds.has(me.id)) return { error: { code: "not-found", text: "no such group (or not a member)" } };
    const names = new Map<AccountId, string>();
    const byName = new Map<string, AccountId>();
    const devices = new Map<AccountId, number[]>();
    for (const member of g.members) {
      names.set(member.id, member.name);
      byName.set(member.name, member.id);
      devices.set(
        member.id,
        (await this.gw.deviceIds(member.id)).filter((d) => !(member.id === me.id && d === myDevice)),
      );
    }
    const messageId = Buffer.from(m.id).toString("hex");
    const groupDelivery = (type: DeliveryStanza["type"], body: Uint8Array): DeliveryStanza => ({
      kind: "delivery",
      id: m.id,
      from: { user: me.name, device: myDevice },
      group,
      timestamp: now,
      seq: 0,
      type,
      body,
    });
    const items: EnqueueItem[] = [];
    const stanzas: Stanza[] = [];
    const seen = new Set<string>();
    const extra = new Map<string, number[]>();
    for (const e of m.enc) {
      const key = `${e.to.user}\u0000${e.to.device}`;
      if (seen.has(key)) return { error: { code: "bad-request", text: "a device is addressed twice" } };
      seen.add(key);
      const account = byName.get(e.to.user);
      if (account === undefined || !devices.get(account)!.includes(e.to.device)) {
        const list = extra.get(e.to.user) ?? [];
        list.push(e.to.device);
        extra.set(e.to.user, list);
        continue;
      }
      const delivery = groupDelivery(e.type, e.body);
      stanzas.push(delivery);
      // No delivered receipt for key distribution: the sender-key copy produces the receipt. A
      // pairwise resend (no skmsg) does, since it is the message.
      items.push({
        accountId: account,
        deviceId: e.to.device,
        envelope: encodeStanza(delivery),
        ...(m.skmsg === undefined && account !== me.id
          ? { senderAccountId: me.id, senderDeviceId: myDevice, messageId }
          : {}),
      });
    }
    if (extra.size > 0) {
      return {
        error: {
          code: "device-mismatch",
          text: "the message addresses devices that are not in the group",
          devices: [...extra].map(([user, ds]) => ({ user, missing: [], extra: ds.sort((a, b) => a - b), stale: [] })),
        },
      };
    }
    if (m.skmsg === undefined) return { items, stanzas, names };
    const shared = groupDelivery("skmsg", m.skmsg);
    const recipients: QueueRecipient[] = [];
    for (const [account, ds] of devices) {
      for (const d of ds) {
        recipients.push(
          account === me.id
            ? { accountId: account, deviceId: d }
            : { accountId: account, deviceId: d, senderAccountId: me.id, senderDeviceId: myDevice, messageId },
        );
      }
    }
    if (recipients.length === 0) return { items, stanzas, names };
    return { items, stanzas, names, shared: { payload: encodeStanza(shared), recipients, stanza: shared } };
  }
}
