// Group membership as a signed, hash-chained log (docs/groups.md).
//
// Every change to a group (create, add, remove, promote, demote, leave, subject, invite, join) is
// a GroupChange authored by one device and signed with that device's identity key (XEdDSA, done
// by the caller: wire has no Signal code). Each change names the state version it produces and
// the hash of the previous signed change, so the log is a chain. The server applies the same pure
// rules (applyGroupChange) to decide what it accepts and stores; every member device applies them
// again to each change it receives and ignores anything that does not follow: a change by a
// non-admin, a forged signature, a gap or a fork. The server routes by this membership, but it
// cannot invent a change an admin did not sign.
import { sha256 } from "@noble/hashes/sha2.js";
import { WireError } from "./errors.ts";

const FORMAT_VERSION = 1;
export const GROUP_ID_BYTES = 16;
/** Members including the creator (WhatsApp's limit). */
export const MAX_GROUP_MEMBERS = 1024;
export const MAX_GROUP_SUBJECT_BYTES = 400;
export const MAX_GROUP_DESCRIPTION_BYTES = 2048;
const MAX_USER_BYTES = 128;
const HASH_BYTES = 32;
const SIGNATURE_BYTES = 64;
const MAX_INVITE_CODE_BYTES = 64;
/** Domain separation of group-change signatures (see SIGNATURE_PREFIX in multidevice.ts). */
export const GROUP_CHANGE_SIGNATURE_PREFIX = Uint8Array.of(0x06, 0x03);

export type GroupRole = "member" | "admin" | "creator";
export const GROUP_ACTIONS = [
  "create",
  "add",
  "remove",
  "promote",
  "demote",
  "leave",
  "subject",
  "invite-set",
  "invite-revoke",
  "join",
] as const;
export type GroupAction = (typeof GROUP_ACTIONS)[number];

export interface GroupChange {
  /** 32 lowercase hex characters (16 random bytes chosen by the creator). */
  group: string;
  /** The state version this change produces: 1 for create, then +1 per change. */
  version: number;
  /** SHA-256 of the previous signed change (32 zero bytes for create). */
  prev: Uint8Array;
  author: { user: string; device: number };
  /** Author's clock, ms since the epoch (informational). */
  time: number;
  action: GroupAction;
  /** create: the initial members besides the author; add/remove/promote/demote: targets; leave/join: [author]. */
  users: string[];
  /** create, subject */
  subject?: string;
  /** create, subject: the group's description ("" clears it) */
  description?: string;
  /** invite-set: SHA-256 of the invite code (the code itself travels only to people invited). */
  inviteHash?: Uint8Array;
  /** join: the invite code that proves the author was invited. */
  inviteCode?: string;
}

/** The state a chain of changes leads to. Members keep join order (the oldest member is first). */
export interface GroupState {
  group: string;
  version: number;
  /** SHA-256 of the last signed change: what the next change must name as `prev`. */
  head: Uint8Array;
  subject: string;
  description?: string;
  creator: string;
  created: number;
  members: Map<string, GroupRole>;
  inviteHash?: Uint8Array;
}

/** Why a change does not follow from the state: the server answers it, clients ignore the change. */
export type GroupRuleCode = "FORBIDDEN" | "STALE" | "INVALID";
export class GroupRuleError extends Error {
  override readonly name = "GroupRuleError";
  constructor(
    readonly code: GroupRuleCode,
    message: string,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------------------ bytes

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

class Out {
  readonly parts: Uint8Array[] = [];
  u8(v: number) {
    this.parts.push(Uint8Array.of(v));
  }
  u16(v: number) {
    this.parts.push(Uint8Array.of(v >>> 8, v & 0xff));
  }
  u32(v: number) {
    this.parts.push(Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
  }
  raw(b: Uint8Array) {
    this.parts.push(b);
  }
  shortStr(s: string, max: number, what: string) {
    const b = utf8.encode(s);
    if (b.length === 0 || b.length > max) throw new WireError("INVALID_STANZA", `${what} must be 1..${max} bytes`);
    this.u8(b.length);
    this.raw(b);
  }
}

class In {
  private pos = 0;
  constructor(private readonly b: Uint8Array) {}
  private need(n: number) {
    if (this.pos + n > this.b.length) throw new WireError("TRUNCATED", "group change is truncated");
  }
  u8() {
    this.need(1);
    return this.b[this.pos++]!;
  }
  u16() {
    return (this.u8() << 8) | this.u8();
  }
  u32() {
    return ((this.u16() << 16) | this.u16()) >>> 0;
  }
  raw(n: number) {
    this.need(n);
    const out = this.b.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  str(n: number, what: string) {
    if (n === 0) throw new WireError("INVALID_STANZA", `group change: empty ${what}`);
    try {
      return fromUtf8.decode(this.raw(n));
    } catch (err) {
      if (err instanceof WireError) throw err;
      throw new WireError("BAD_UTF8", `group change: ${what} is not UTF-8`);
    }
  }
  end() {
    if (this.pos !== this.b.length) throw new WireError("INVALID_STANZA", "group change has trailing bytes");
  }
}

const GROUP_ID = /^[0-9a-f]{32}$/;
export function isGroupId(s: unknown): s is string {
  return typeof s === "string" && GROUP_ID.test(s);
}
const hexToBytes = (s: string) =>
  Uint8Array.from({ length: s.length / 2 }, (_, i) => parseInt(s.slice(2 * i, 2 * i + 2), 16));
const bytesToHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

const FLAG_SUBJECT = 1;
const FLAG_INVITE_HASH = 2;
const FLAG_INVITE_CODE = 4;
const FLAG_DESCRIPTION = 8;

/**
 * Layout (all integers big-endian):
 * u8 format=1 ‖ group 16 ‖ u32 version ‖ prev 32 ‖ u8 len ‖ author user ‖ u32 author device ‖
 * u32 time-high ‖ u32 time-low ‖ u8 action ‖ u16 n ‖ n × (u8 len ‖ user) ‖ u8 flags ‖
 * [subject: u16 len ‖ utf8] ‖ [inviteHash 32] ‖ [inviteCode: u8 len ‖ ascii] ‖ [description: u16 len ‖ utf8]
 */
export function encodeGroupChange(c: GroupChange): Uint8Array {
  if (!isGroupId(c.group)) throw new WireError("INVALID_STANZA", "group id must be 32 lowercase hex characters");
  if (!Number.isInteger(c.version) || c.version < 1 || c.version > 0xffffffff)
    throw new WireError("INVALID_STANZA", "group version out of range");
  if (c.prev.length !== HASH_BYTES) throw new WireError("INVALID_STANZA", "prev must be 32 bytes");
  if (!Number.isInteger(c.time) || c.time < 0 || c.time > Number.MAX_SAFE_INTEGER)
    throw new WireError("INVALID_STANZA", "bad time");
  const action = GROUP_ACTIONS.indexOf(c.action);
  if (action < 0) throw new WireError("UNKNOWN_TYPE", `unknown group action ${String(c.action)}`);
  if (c.users.length > MAX_GROUP_MEMBERS) throw new WireError("LIMIT_EXCEEDED", "too many users in a group change");
  const o = new Out();
  o.u8(FORMAT_VERSION);
  o.raw(hexToBytes(c.group));
  o.u32(c.version);
  o.raw(c.prev);
  o.shortStr(c.author.user, MAX_USER_BYTES, "author");
  o.u32(c.author.device);
  o.u32(Math.floor(c.time / 2 ** 32));
  o.u32(c.time >>> 0);
  o.u8(action);
  o.u16(c.users.length);
  for (const u of c.users) o.shortStr(u, MAX_USER_BYTES, "user");
  let flags = 0;
  if (c.subject !== undefined) flags |= FLAG_SUBJECT;
  if (c.inviteHash !== undefined) flags |= FLAG_INVITE_HASH;
  if (c.inviteCode !== undefined) flags |= FLAG_INVITE_CODE;
  if (c.description !== undefined) flags |= FLAG_DESCRIPTION;
  o.u8(flags);
  if (c.subject !== undefined) {
    const b = utf8.encode(c.subject);
    if (b.length === 0 || b.length > MAX_GROUP_SUBJECT_BYTES)
      throw new WireError("INVALID_STANZA", `subject must be 1..${MAX_GROUP_SUBJECT_BYTES} bytes`);
    o.u16(b.length);
    o.raw(b);
  }
  if (c.inviteHash !== undefined) {
    if (c.inviteHash.length !== HASH_BYTES) throw new WireError("INVALID_STANZA", "inviteHash must be 32 bytes");
    o.raw(c.inviteHash);
  }
  if (c.inviteCode !== undefined) o.shortStr(c.inviteCode, MAX_INVITE_CODE_BYTES, "invite code");
  if (c.description !== undefined) {
    const b = utf8.encode(c.description);
    if (b.length > MAX_GROUP_DESCRIPTION_BYTES)
      throw new WireError("INVALID_STANZA", `description must be at most ${MAX_GROUP_DESCRIPTION_BYTES} bytes`);
    o.u16(b.length);
    o.raw(b);
  }
  return concat(o.parts);
}

export function decodeGroupChange(bytes: Uint8Array): GroupChange {
  const i = new In(bytes);
  const format = i.u8();
  if (format !== FORMAT_VERSION) throw new WireError("UNKNOWN_TYPE", `unsupported group change format ${format}`);
  const group = bytesToHex(i.raw(GROUP_ID_BYTES));
  const version = i.u32();
  if (version < 1) throw new WireError("INVALID_STANZA", "group version must be ≥ 1");
  const prev = i.raw(HASH_BYTES);
  const user = i.str(i.u8(), "author");
  const device = i.u32();
  const time = i.u32() * 2 ** 32 + i.u32();
  if (time > Number.MAX_SAFE_INTEGER) throw new WireError("INVALID_STANZA", "bad time");
  const actionIndex = i.u8();
  const action = GROUP_ACTIONS[actionIndex];
  if (action === undefined) throw new WireError("UNKNOWN_TYPE", `unknown group action ${actionIndex}`);
  const n = i.u16();
  if (n > MAX_GROUP_MEMBERS) throw new WireError("LIMIT_EXCEEDED", "too many users in a group change");
  const users: string[] = [];
  for (let k = 0; k < n; k++) users.push(i.str(i.u8(), "user"));
  const flags = i.u8();
  if (flags & ~(FLAG_SUBJECT | FLAG_INVITE_HASH | FLAG_INVITE_CODE | FLAG_DESCRIPTION))
    throw new WireError("INVALID_STANZA", "unknown group change flags");
  const change: GroupChange = { group, version, prev, author: { user, device }, time, action, users };
  if (flags & FLAG_SUBJECT) {
    const len = i.u16();
    if (len > MAX_GROUP_SUBJECT_BYTES) throw new WireError("LIMIT_EXCEEDED", "subject too long");
    change.subject = i.str(len, "subject");
  }
  if (flags & FLAG_INVITE_HASH) change.inviteHash = i.raw(HASH_BYTES);
  if (flags & FLAG_INVITE_CODE) change.inviteCode = i.str(i.u8(), "invite code");
  if (flags & FLAG_DESCRIPTION) {
    const len = i.u16();
    if (len > MAX_GROUP_DESCRIPTION_BYTES) throw new WireError("LIMIT_EXCEEDED", "description too long");
    change.description = len === 0 ? "" : i.str(len, "description");
  }
  i.end();
  return change;
}

/** What the author's identity key signs: a domain prefix and the change bytes. */
export function groupChangeSignedBytes(change: Uint8Array): Uint8Array {
  return concat([GROUP_CHANGE_SIGNATURE_PREFIX, change]);
}

/** Signed change = u16 len ‖ change ‖ signature 64. The unit stored, routed and hashed. */
export function encodeSignedGroupChange(change: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_BYTES) throw new WireError("INVALID_STANZA", "signature must be 64 bytes");
  if (change.length > 0xffff) throw new WireError("LIMIT_EXCEEDED", "group change too large");
  return concat([Uint8Array.of(change.length >>> 8, change.length & 0xff), change, signature]);
}

export function splitSignedGroupChange(signed: Uint8Array): {
  bytes: Uint8Array;
  change: GroupChange;
  signature: Uint8Array;
} {
  if (signed.length < 2) throw new WireError("TRUNCATED", "signed group change is truncated");
  const len = (signed[0]! << 8) | signed[1]!;
  if (signed.length !== 2 + len + SIGNATURE_BYTES)
    throw new WireError("INVALID_STANZA", "signed group change has the wrong length");
  const bytes = signed.slice(2, 2 + len);
  return { bytes, change: decodeGroupChange(bytes), signature: signed.slice(2 + len) };
}

export function groupChangeHash(signed: Uint8Array): Uint8Array {
  return sha256(signed);
}

/** The hash an invite-set change commits to (so the server and members can check a join). */
export function inviteCodeHash(code: string): Uint8Array {
  return sha256(utf8.encode(`parley-group-invite:${code}`));
}

// ------------------------------------------------------------------------------ rules

const isAdmin = (role: GroupRole | undefined) => role === "admin" || role === "creator";
const ZERO_HASH = new Uint8Array(HASH_BYTES);

function rule(ok: unknown, code: GroupRuleCode, message: string): asserts ok {
  if (!ok) throw new GroupRuleError(code, message);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let k = 0; k < a.length; k++) d |= a[k]! ^ b[k]!;
  return d === 0;
}

/**
 * Applies one signed change to `state` (undefined before create) and returns the new state. Pure:
 * `state` is not modified. Checks everything except the signature, which the caller verifies
 * against the author device's identity key. Throws GroupRuleError: STALE when the change does not
 * extend this state (wrong version or prev: refresh and retry), FORBIDDEN when the author may not
 * do it, INVALID when it is malformed for its action.
 */
export function applyGroupChange(
  state: GroupState | undefined,
  signed: Uint8Array,
): { state: GroupState; change: GroupChange } {
  let change: GroupChange;
  try {
    change = splitSignedGroupChange(signed).change;
  } catch (err) {
    throw new GroupRuleError("INVALID", `malformed group change: ${(err as Error).message}`);
  }
  const a = change.author.user;
  const users = change.users;
  rule(new Set(users).size === users.length, "INVALID", "a user is named twice");
  const head = groupChangeHash(signed);

  if (change.action === "create") {
    rule(state === undefined, "STALE", "the group already exists");
    rule(
      change.version === 1 && equalBytes(change.prev, ZERO_HASH),
      "INVALID",
      "create must be version 1 with no prev",
    );
    rule(change.subject !== undefined, "INVALID", "create needs a subject");
    rule(!users.includes(a), "INVALID", "the creator is a member already");
    rule(users.length + 1 <= MAX_GROUP_MEMBERS, "INVALID", `a group has at most ${MAX_GROUP_MEMBERS} members`);
    const members = new Map<string, GroupRole>([[a, "creator"]]);
    for (const u of users) members.set(u, "member");
    return {
      change,
      state: {
        group: change.group,
        version: 1,
        head,
        subject: change.subject!,
        ...(change.description ? { description: change.description } : {}),
        creator: a,
        created: change.time,
        members,
      },
    };
  }

  rule(state !== undefined, "STALE", "no such group");
  rule(change.group === state.group, "INVALID", "the change is for another group");
  rule(
    change.version === state.version + 1 && equalBytes(change.prev, state.head),
    "STALE",
    `the group is at version ${state.version}`,
  );
  const members = new Map(state.members);
  const next: GroupState = { ...state, version: change.version, head, members };
  const role = state.members.get(a);
  const adminOnly = () => rule(isAdmin(role), "FORBIDDEN", `${a} is not an admin of the group`);
  const targetsNonEmpty = () => rule(users.length > 0, "INVALID", `${change.action} names no user`);

  switch (change.action) {
    case "add":
      adminOnly();
      targetsNonEmpty();
      for (const u of users) rule(!members.has(u), "INVALID", `${u} is already a member`);
      rule(
        members.size + users.length <= MAX_GROUP_MEMBERS,
        "INVALID",
        `a group has at most ${MAX_GROUP_MEMBERS} members`,
      );
      for (const u of users) members.set(u, "member");
      break;
    case "remove":
      adminOnly();
      targetsNonEmpty();
      for (const u of users) {
        rule(members.has(u), "INVALID", `${u} is not a member`);
        rule(u !== a, "INVALID", "leave instead of removing yourself");
        rule(members.get(u) !== "creator", "FORBIDDEN", "the creator cannot be removed");
        members.delete(u);
      }
      break;
    case "promote":
      adminOnly();
      targetsNonEmpty();
      for (const u of users) {
        rule(members.get(u) === "member", "INVALID", `${u} is not a plain member`);
        members.set(u, "admin");
      }
      break;
    case "demote":
      adminOnly();
      targetsNonEmpty();
      for (const u of users) {
        rule(members.get(u) === "admin", "INVALID", `${u} is not an admin (the creator cannot be demoted)`);
        rule(u !== a, "INVALID", "an admin cannot demote themselves (the group would keep no admin)");
        members.set(u, "member");
      }
      break;
    case "leave": {
      rule(role !== undefined, "FORBIDDEN", `${a} is not a member`);
      rule(users.length === 1 && users[0] === a, "INVALID", "leave names exactly its author");
      members.delete(a);
      // A group never loses its last admin while it has members: the oldest member takes over.
      if (members.size > 0 && ![...members.values()].some(isAdmin)) {
        const [oldest] = members.keys();
        members.set(oldest!, "admin");
      }
      break;
    }
    case "subject":
      adminOnly();
      rule(
        change.subject !== undefined || change.description !== undefined,
        "INVALID",
        "a subject change sets the subject, the description or both",
      );
      rule(users.length === 0, "INVALID", "subject names no users");
      if (change.subject !== undefined) next.subject = change.subject;
      if (change.description === "") delete next.description;
      else if (change.description !== undefined) next.description = change.description;
      break;
    case "invite-set":
      adminOnly();
      rule(change.inviteHash !== undefined, "INVALID", "invite-set without a hash");
      next.inviteHash = change.inviteHash!;
      break;
    case "invite-revoke":
      adminOnly();
      rule(state.inviteHash !== undefined, "INVALID", "the group has no invite link");
      delete next.inviteHash;
      break;
    case "join":
      rule(role === undefined, "INVALID", `${a} is already a member`);
      rule(users.length === 1 && users[0] === a, "INVALID", "join names exactly its author");
      rule(
        change.inviteCode !== undefined &&
          state.inviteHash !== undefined &&
          equalBytes(inviteCodeHash(change.inviteCode), state.inviteHash),
        "FORBIDDEN",
        "the invite link is not valid (revoked or wrong)",
      );
      // Everyone left: the group is over, and a join would leave it with a member and no admin.
      rule(members.size > 0, "FORBIDDEN", "the group has no members any more");
      rule(members.size + 1 <= MAX_GROUP_MEMBERS, "INVALID", `a group has at most ${MAX_GROUP_MEMBERS} members`);
      members.set(a, "member");
      break;
  }
  return { change, state: next };
}

/** Users that left the group with this change (remove / leave): whose devices must stop getting keys. */
export function usersRemovedBy(change: GroupChange): string[] {
  return change.action === "remove" || change.action === "leave" ? change.users : [];
}

// ------------------------------------------------------------- state snapshots (storage)

/** A JSON snapshot of a state, for storage on the server and in client profiles. */
export function encodeGroupState(s: GroupState): string {
  return JSON.stringify({
    v: 1,
    group: s.group,
    version: s.version,
    head: bytesToHex(s.head),
    subject: s.subject,
    ...(s.description !== undefined ? { description: s.description } : {}),
    creator: s.creator,
    created: s.created,
    members: [...s.members],
    ...(s.inviteHash ? { invite: bytesToHex(s.inviteHash) } : {}),
  });
}

export function decodeGroupState(json: string): GroupState {
  let o: {
    v: number;
    group: string;
    version: number;
    head: string;
    subject: string;
    description?: string;
    creator: string;
    created: number;
    members: [string, GroupRole][];
    invite?: string;
  };
  try {
    o = JSON.parse(json);
  } catch {
    throw new WireError("INVALID_STANZA", "group state is not JSON");
  }
  if (o?.v !== 1 || !isGroupId(o.group) || !Array.isArray(o.members))
    throw new WireError("INVALID_STANZA", "not a group state snapshot");
  return {
    group: o.group,
    version: o.version,
    head: hexToBytes(o.head),
    subject: o.subject,
    ...(o.description !== undefined ? { description: o.description } : {}),
    creator: o.creator,
    created: o.created,
    members: new Map(o.members),
    ...(o.invite !== undefined ? { inviteHash: hexToBytes(o.invite) } : {}),
  };
}
