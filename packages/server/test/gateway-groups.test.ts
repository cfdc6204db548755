// Groups on a live server, with raw protocol devices (no client SDK): the server applies only
// validly signed changes by admins, fans a group message out with its ciphertext stored once,
// answers hostile group requests with typed errors and keeps the connection.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { generateIdentityKeyPair, xeddsaSign } from "@parley/signal";
import {
  applyGroupChange,
  encodeGroupChange,
  encodeSignedGroupChange,
  type GroupChange,
  type GroupState,
  groupChangeSignedBytes,
  type Stanza,
} from "@parley/wire";
import Database from "better-sqlite3";
import { queueShardFileName } from "../src/storage/index.ts";
import {
  hex,
  type IqError,
  login,
  messageId,
  type RawClient,
  type RawIdentity,
  registerRaw,
} from "./gateway-helpers/raw-client.ts";
import { startTestServer, type TestServer } from "./gateway-helpers/server.ts";

type Fields = Omit<GroupChange, "group" | "version" | "prev" | "author" | "time">;

function sign(
  by: RawIdentity,
  group: string,
  state: GroupState | undefined,
  fields: Fields,
  key = by.keys.identity.privateKey,
) {
  const bytes = encodeGroupChange({
    group,
    version: (state?.version ?? 0) + 1,
    prev: state?.head ?? new Uint8Array(32),
    author: { user: by.user, device: by.device },
    time: Date.now(),
    ...fields,
  });
  return encodeSignedGroupChange(bytes, xeddsaSign(key, groupChangeSignedBytes(bytes)));
}

const iqError = async (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: IqError) => {
    assert.equal(e.error?.code, code, e.message);
    return true;
  });

describe("groups on the server", () => {
  let env: TestServer;
  let alice: RawIdentity;
  let bob: RawIdentity;
  let carol: RawIdentity;
  let outsider: RawIdentity;
  let ca: RawClient;
  let cb: RawClient;
  let cc: RawClient;
  let co: RawClient;
  const group = randomBytes(16).toString("hex");
  let state: GroupState | undefined;

  before(async () => {
    env = await startTestServer();
    [alice, bob, carol, outsider] = (await Promise.all(
      ["alice", "bob", "carol", "olga"].map((n) => registerRaw(env.url, n)),
    )) as [RawIdentity, RawIdentity, RawIdentity, RawIdentity];
    [ca, cb, cc, co] = (await Promise.all([alice, bob, carol, outsider].map((id) => login(env.url, id)))) as [
      RawClient,
      RawClient,
      RawClient,
      RawClient,
    ];
  });
  after(async () => {
    for (const c of [ca, cb, cc, co]) c.close();
    await env.stop();
  });

  it("creates a group from a signed change and tells every other member device, in order", async () => {
    const created = sign(alice, group, undefined, { action: "create", users: ["bob", "carol"], subject: "Team" });
    const r = await ca.iq({ op: "group-change", change: created });
    assert.deepEqual(r, { op: "groups", groups: [{ group, version: 1 }] });
    state = applyGroupChange(undefined, created).state;
    for (const c of [cb, cc]) {
      const n = await c.waitFor(
        (x) => x.received.find((s) => s.kind === "notification" && s.event.type === "group-change"),
        "the create notification",
      );
      assert.ok(n.kind === "notification" && n.event.type === "group-change");
      assert.deepEqual(n.event.change, created, "the signed bytes, untouched");
    }
    const promote = sign(alice, group, state, { action: "promote", users: ["bob"] });
    await ca.iq({ op: "group-change", change: promote });
    state = applyGroupChange(state, promote).state;
    const changes = await cc.waitFor((x) => {
      const got = x.received.filter((s) => s.kind === "notification" && s.event.type === "group-change");
      return got.length === 2 && got;
    }, "two notifications");
    assert.deepEqual(
      changes.map((s) => (s.kind === "notification" && s.event.type === "group-change" ? s.event.change : null)),
      [created, promote],
    );
    const log = await co.iq({ op: "group-log", group, after: 0 }).catch((e: IqError) => e);
    assert.equal((log as IqError).error.code, "not-found", "outsiders cannot read the log");
    assert.deepEqual(await cb.iq({ op: "group-log", group, after: 0 }), {
      op: "group-log",
      changes: [created, promote],
    });
  });

  it("refuses forged, unauthorized, stale and malformed changes with typed errors, keeping the connection", async () => {
    const add = (by: RawIdentity, key?: Uint8Array) =>
      sign(by, group, state, { action: "add", users: ["olga"] }, key ?? by.keys.identity.privateKey);
    // signed by a key that is not the device's identity key
    await iqError(
      ca.iq({ op: "group-change", change: add(alice, generateIdentityKeyPair().privateKey) }),
      "bad-request",
    );
    // bob's connection submitting a change authored as alice
    await iqError(cb.iq({ op: "group-change", change: add(alice) }), "forbidden");
    // carol is no admin
    await iqError(cc.iq({ op: "group-change", change: add(carol) }), "forbidden");
    // a change on an old head (another admin changed the group first)
    const stale = sign(alice, group, { ...state!, version: 1 }, { action: "add", users: ["olga"] });
    await iqError(ca.iq({ op: "group-change", change: stale }), "conflict");
    // garbage and an unknown user
    await iqError(ca.iq({ op: "group-change", change: randomBytes(90) }), "bad-request");
    await iqError(
      ca.iq({ op: "group-change", change: sign(alice, group, state, { action: "add", users: ["nobody-here"] }) }),
      "not-found",
    );
    await iqError(ca.iq({ op: "group-log", group: "../../etc", after: 0 }), "bad-request");
    for (const c of [ca, cb, cc]) assert.equal(c.closed, undefined, `${c.label} still connected`);
    // the group is unchanged
    assert.equal(((await ca.iq({ op: "group-log", group, after: 0 })) as { changes: Uint8Array[] }).changes.length, 2);
  });

  it("fans a group message out to every member device with the ciphertext stored once", async () => {
    await cc.close();
    await cc.waitClosed();
    const id = messageId();
    const skmsg = randomBytes(180);
    ca.send({ kind: "message", id, group, timestamp: Math.floor(Date.now() / 1000), enc: [], skmsg } as Stanza);
    const ack = await ca.waitFor((c) => c.ackFor(id), "ack");
    assert.equal(ack.error, undefined);
    const got = await cb.waitFor(
      (c) => c.deliveries().find((d) => d.kind === "delivery" && hex(d.id) === hex(id)),
      "bob's copy",
    );
    assert.ok(got.kind === "delivery");
    assert.equal(got.type, "skmsg");
    assert.equal(got.group, group);
    assert.deepEqual(got.from, { user: "alice", device: 1 });
    assert.deepEqual(got.body, new Uint8Array(skmsg));
    // Carol is offline: her entry waits, referencing the one stored payload.
    const db = new Database(join(env.dataDir, queueShardFileName(0)), { readonly: true }); // the worker's queue shard
    try {
      const rows = db
        .prepare("SELECT payload_id, COUNT(*) AS n FROM queue WHERE payload_id IS NOT NULL GROUP BY payload_id")
        .all() as { payload_id: number; n: number }[];
      assert.equal(rows.length, 1, "one shared payload");
      const payload = db
        .prepare("SELECT LENGTH(data) AS bytes, refs FROM payloads WHERE id = ?")
        .get(rows[0]!.payload_id) as {
        bytes: number;
        refs: number;
      };
      assert.ok(
        payload.bytes < skmsg.length + 80,
        `stored once (${payload.bytes} bytes for a ${skmsg.length}-byte ciphertext)`,
      );
      assert.ok(rows[0]!.n >= 1);
    } finally {
      db.close();
    }
    cc = await login(env.url, carol);
    const carolCopy = await cc.waitFor((c) => c.deliveries().find((d) => hex(d.id) === hex(id)), "carol's copy");
    assert.ok(carolCopy.kind === "delivery" && carolCopy.type === "skmsg");
  });

  it("refuses group messages from outsiders and to devices outside the group; bounds group typing", async () => {
    const id = messageId();
    co.send({ kind: "message", id, group, timestamp: 0, enc: [], skmsg: randomBytes(50) } as Stanza);
    assert.equal((await co.waitFor((c) => c.ackFor(id), "ack")).error?.code, "not-found");
    const id2 = messageId();
    ca.send({
      kind: "message",
      id: id2,
      group,
      timestamp: 0,
      enc: [{ to: { user: "olga", device: 1 }, type: "msg", body: randomBytes(40) }],
      skmsg: randomBytes(50),
    } as Stanza);
    const ack = await ca.waitFor((c) => c.ackFor(id2), "ack");
    assert.equal(ack.error?.code, "device-mismatch");
    assert.deepEqual(ack.error?.devices, [{ user: "olga", missing: [], extra: [1], stale: [] }]);

    // Typing: members hear it with the group named; an outsider's typing goes nowhere; a burst is capped.
    for (let i = 0; i < 20; i++) cb.send({ kind: "chatstate", state: "composing", group });
    co.send({ kind: "chatstate", state: "composing", group });
    await ca.waitFor((c) => c.received.some((s) => s.kind === "chatstate" && s.group === group), "typing");
    await new Promise((r) => setTimeout(r, 300));
    const typing = ca.received.filter((s) => s.kind === "chatstate" && s.group === group);
    assert.ok(typing.length <= 10, `typing bounded (${typing.length})`);
    assert.ok(typing.every((s) => s.kind === "chatstate" && s.from === "bob"));
    for (const c of [ca, cb, co]) assert.equal(c.closed, undefined, `${c.label} still connected`);
  });
});
