import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  applyGroupChange,
  decodeGroupChange,
  decodeGroupState,
  encodeGroupChange,
  encodeGroupState,
  encodeSignedGroupChange,
  type GroupChange,
  GroupRuleError,
  type GroupState,
  groupChangeHash,
  inviteCodeHash,
  MAX_GROUP_MEMBERS,
  splitSignedGroupChange,
  WireError,
} from "../src/index.ts";

const GROUP = "0123456789abcdef0123456789abcdef";
const SIG = new Uint8Array(64).fill(7);
const ZERO = new Uint8Array(32);

/** Builds the next signed change on `state` (signature is a placeholder: wire does not check it). */
function next(
  state: GroupState | undefined,
  author: string,
  fields: Partial<GroupChange> & Pick<GroupChange, "action">,
) {
  const change: GroupChange = {
    group: GROUP,
    version: (state?.version ?? 0) + 1,
    prev: state?.head ?? ZERO,
    author: { user: author, device: 1 },
    time: 1_700_000_000_000,
    users: [],
    ...fields,
  };
  return encodeSignedGroupChange(encodeGroupChange(change), SIG);
}
const apply = (state: GroupState | undefined, signed: Uint8Array) => applyGroupChange(state, signed).state;
const rejects = (f: () => unknown, code: string) =>
  assert.throws(f, (e: unknown) => e instanceof GroupRuleError && e.code === code);

describe("group change layout", () => {
  test("encode → decode is the identity, also with every optional field", () => {
    const change: GroupChange = {
      group: GROUP,
      version: 7,
      prev: new Uint8Array(32).fill(1),
      author: { user: "alice", device: 3 },
      time: 2 ** 40 + 5,
      action: "join",
      users: ["alice"],
      subject: "Ünïcode subject",
      inviteHash: new Uint8Array(32).fill(9),
      inviteCode: "abc_DEF-123",
      description: "what we talk about",
    };
    assert.deepEqual(decodeGroupChange(encodeGroupChange(change)), change);
    const signed = encodeSignedGroupChange(encodeGroupChange(change), SIG);
    const split = splitSignedGroupChange(signed);
    assert.deepEqual(split.change, change);
    assert.deepEqual(split.signature, SIG);
    assert.equal(groupChangeHash(signed).length, 32);
  });

  test("hostile bytes only ever raise WireError", () => {
    const valid = encodeSignedGroupChange(
      encodeGroupChange({
        group: GROUP,
        version: 1,
        prev: ZERO,
        author: { user: "a", device: 1 },
        time: 1,
        action: "create",
        users: ["b", "c"],
        subject: "s",
      }),
      SIG,
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (random, at, byte) => {
        for (const input of [
          random,
          (() => {
            const m = valid.slice();
            m[at % m.length] = byte;
            return m;
          })(),
          valid.slice(0, at % valid.length),
        ]) {
          try {
            splitSignedGroupChange(input);
          } catch (err) {
            assert.ok(err instanceof WireError, String(err));
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("refuses bad ids, lengths and actions when encoding", () => {
    const base: GroupChange = {
      group: GROUP,
      version: 1,
      prev: ZERO,
      author: { user: "a", device: 1 },
      time: 1,
      action: "create",
      users: [],
      subject: "s",
    };
    assert.throws(() => encodeGroupChange({ ...base, group: "../etc" }), WireError);
    assert.throws(() => encodeGroupChange({ ...base, prev: new Uint8Array(3) }), WireError);
    assert.throws(() => encodeGroupChange({ ...base, subject: "x".repeat(401) }), WireError);
    assert.throws(() => encodeGroupChange({ ...base, action: "explode" as never }), WireError);
  });
});

describe("group rules", () => {
  const created = apply(
    undefined,
    next(undefined, "alice", { action: "create", users: ["bob", "carol"], subject: "Team" }),
  );

  test("create makes the author creator and the others members", () => {
    assert.equal(created.version, 1);
    assert.deepEqual(
      [...created.members],
      [
        ["alice", "creator"],
        ["bob", "member"],
        ["carol", "member"],
      ],
    );
    assert.equal(created.subject, "Team");
    assert.deepEqual(decodeGroupState(encodeGroupState(created)), created);
  });

  test("description: set at create, changed or cleared by a subject change", () => {
    const g = apply(
      undefined,
      next(undefined, "alice", { action: "create", users: [], subject: "S", description: "about" }),
    );
    assert.equal(g.description, "about");
    const changed = apply(g, next(g, "alice", { action: "subject", description: "new" }));
    assert.equal(changed.subject, "S");
    assert.equal(changed.description, "new");
    const cleared = apply(changed, next(changed, "alice", { action: "subject", description: "" }));
    assert.equal(cleared.description, undefined);
    assert.deepEqual(decodeGroupState(encodeGroupState(changed)), changed);
  });

  test("only admins change membership; promoted members can", () => {
    rejects(() => apply(created, next(created, "bob", { action: "add", users: ["dave"] })), "FORBIDDEN");
    const promoted = apply(created, next(created, "alice", { action: "promote", users: ["bob"] }));
    const added = apply(promoted, next(promoted, "bob", { action: "add", users: ["dave"] }));
    assert.equal(added.members.get("dave"), "member");
    rejects(() => apply(added, next(added, "bob", { action: "remove", users: ["alice"] })), "FORBIDDEN");
    rejects(() => apply(added, next(added, "bob", { action: "demote", users: ["alice"] })), "INVALID");
    const demoted = apply(added, next(added, "alice", { action: "demote", users: ["bob"] }));
    rejects(() => apply(demoted, next(demoted, "bob", { action: "subject", subject: "mine" })), "FORBIDDEN");
  });

  test("a change must extend the current head: concurrent changes conflict", () => {
    const a = next(created, "alice", { action: "add", users: ["dave"] });
    const b = next(created, "alice", { action: "remove", users: ["bob"] });
    const afterA = apply(created, a);
    rejects(() => apply(afterA, b), "STALE");
    rejects(() => apply(afterA, a), "STALE"); // replay
    rejects(() => apply(created, next(undefined, "alice", { action: "create", users: [], subject: "again" })), "STALE");
  });

  test("leave: the oldest member takes over when the last admin leaves", () => {
    const left = apply(created, next(created, "alice", { action: "leave", users: ["alice"] }));
    assert.equal(left.members.get("bob"), "admin");
    assert.equal(left.members.has("alice"), false);
    rejects(() => apply(left, next(left, "carol", { action: "leave", users: ["bob"] })), "INVALID");
  });

  test("invite links: join needs the current code; revoke closes it", () => {
    const code = "s3cret-code";
    const invited = apply(created, next(created, "alice", { action: "invite-set", inviteHash: inviteCodeHash(code) }));
    rejects(
      () => apply(invited, next(invited, "eve", { action: "join", users: ["eve"], inviteCode: "guess" })),
      "FORBIDDEN",
    );
    const joined = apply(invited, next(invited, "eve", { action: "join", users: ["eve"], inviteCode: code }));
    assert.equal(joined.members.get("eve"), "member");
    const revoked = apply(joined, next(joined, "alice", { action: "invite-revoke" }));
    rejects(
      () => apply(revoked, next(revoked, "mallory", { action: "join", users: ["mallory"], inviteCode: code })),
      "FORBIDDEN",
    );
    rejects(
      () => apply(created, next(created, "bob", { action: "invite-set", inviteHash: inviteCodeHash("x") })),
      "FORBIDDEN",
    );
  });

  test("no join into a group everyone has left (found by the property test below, seed 1867715603)", () => {
    const code = "c";
    let state = apply(created, next(created, "alice", { action: "invite-set", inviteHash: inviteCodeHash(code) }));
    for (const user of [...state.members.keys()]) {
      state = apply(state, next(state, user, { action: "leave", users: [user] }));
    }
    assert.equal(state.members.size, 0);
    rejects(
      () => apply(state, next(state, "alice", { action: "join", users: ["alice"], inviteCode: code })),
      "FORBIDDEN",
    );
  });

  test(`at most ${MAX_GROUP_MEMBERS} members`, () => {
    const many = Array.from({ length: MAX_GROUP_MEMBERS - 1 }, (_, i) => `u${i}`);
    const full = apply(undefined, next(undefined, "alice", { action: "create", users: many, subject: "big" }));
    assert.equal(full.members.size, MAX_GROUP_MEMBERS);
    rejects(() => apply(full, next(full, "alice", { action: "add", users: ["one-more"] })), "INVALID");
  });

  test("any sequence of random changes either applies or raises GroupRuleError, never corrupts the state", () => {
    const users = ["alice", "bob", "carol", "dave", "eve"];
    const actions = [
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
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom(...actions), fc.constantFrom(...users), fc.subarray(users, { maxLength: 3 })),
          { maxLength: 30 },
        ),
        (steps) => {
          let state = created;
          for (const [action, author, targets] of steps) {
            const signed = next(state, author, {
              action,
              users:
                action === "leave" || action === "join"
                  ? [author]
                  : action === "subject" || action.startsWith("invite")
                    ? []
                    : targets,
              ...(action === "subject" ? { subject: "s" } : {}),
              ...(action === "invite-set" ? { inviteHash: inviteCodeHash("c") } : {}),
              ...(action === "join" ? { inviteCode: "c" } : {}),
            });
            try {
              const before = encodeGroupState(state);
              const after = apply(state, signed);
              assert.equal(encodeGroupState(state), before, "input state untouched");
              assert.equal(after.version, state.version + 1);
              if (after.members.size > 0)
                assert.ok(
                  [...after.members.values()].some((r) => r !== "member"),
                  "an admin remains",
                );
              state = after;
            } catch (err) {
              assert.ok(err instanceof GroupRuleError, String(err));
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
