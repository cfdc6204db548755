// fast-check arbitraries for every stanza kind (shared by the round-trip, fuzz and long-run tests).
import fc from "fast-check";
import { PRIMARY_TOKENS } from "../src/codec/dictionary.ts";
import type {
  Address,
  AttrValue,
  ClientHello,
  DeviceCiphertext,
  IqRequest,
  IqResult,
  Node,
  NotificationEvent,
  PreKey,
  ServerHello,
  SignedPreKey,
  Stanza,
} from "../src/index.ts";

/** fc.record, but producing ordinary objects (the codec decodes to ordinary objects). */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

/** Optional field: either absent (key omitted) or present. */
function opt<T>(key: string, arb: fc.Arbitrary<T>): fc.Arbitrary<Record<string, T>> {
  return fc.option(arb, { nil: undefined }).map((v) => (v === undefined ? {} : { [key]: v }));
}

const token = fc.constantFrom(...PRIMARY_TOKENS.filter((t) => t.length > 0));
export const text = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.string({ maxLength: 24, unit: "binary" }),
  token,
  fc.stringMatching(/^[0-9a-f]{1,40}$/),
  fc.stringMatching(/^[+0-9.-]{1,20}$/),
);
export const name = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9._-]{0,15}$/),
  fc.stringMatching(/^\+[1-9][0-9]{6,14}$/),
  fc.string({ minLength: 1, maxLength: 20, unit: "binary" }),
  fc.stringMatching(/^[0-9a-f]{32}$/),
  token,
);
export const u32 = fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([a, b]) => a * 0x10000 + b);
export const uint = fc.oneof(fc.nat(300), u32, fc.maxSafeNat());
export const time = fc.oneof(
  fc.integer({ min: 1_700_000_000, max: 2_000_000_000 }),
  fc.maxSafeNat().map((n) => n % 2 ** 50),
  fc.integer({ min: -2_000_000_000, max: 0 }),
);
export const bytes = fc.uint8Array({ maxLength: 48 });
export const msgId = fc.oneof(
  fc.uint8Array({ minLength: 8, maxLength: 8 }),
  fc.uint8Array({ minLength: 1, maxLength: 32 }),
);
export const address: fc.Arbitrary<Address> = rec({ user: name, device: fc.oneof(fc.nat(8), u32) });

const attrValue: fc.Arbitrary<AttrValue> = fc.oneof(text, fc.maxSafeInteger(), fc.integer(), bytes, address);
const attrName = text.filter((s) => s !== "__proto__");

export const node: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc
    .tuple(
      text,
      fc.dictionary(attrName, attrValue, { maxKeys: 4, noNullPrototype: true }),
      fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.constant(undefined),
        bytes,
        text,
        fc.array(tie("node"), { maxLength: 3 }),
      ),
    )
    .map(([tag, attrs, content]) => (content === undefined ? { tag, attrs } : { tag, attrs, content })),
})).node;

const ext = opt("ext", fc.array(node, { minLength: 0, maxLength: 2 }));

const deviceCiphertext: fc.Arbitrary<DeviceCiphertext> = rec({
  to: address,
  type: fc.constantFrom("pkmsg" as const, "msg" as const),
  body: bytes,
});

const message = fc
  .tuple(
    rec({ kind: fc.constant("message" as const), id: msgId, timestamp: time }),
    fc.oneof(
      rec({ to: name, enc: fc.array(deviceCiphertext, { minLength: 1, maxLength: 4 }) }),
      rec({ group: name, enc: fc.array(deviceCiphertext, { maxLength: 3 }), skmsg: bytes }),
      rec({ group: name, enc: fc.array(deviceCiphertext, { minLength: 1, maxLength: 3 }) }),
    ),
    ext,
  )
  .map(([a, b, c]) => ({ ...a, ...b, ...c }) as Stanza);

const delivery = fc
  .tuple(
    rec({
      kind: fc.constant("delivery" as const),
      id: msgId,
      from: address,
      timestamp: time,
      seq: uint,
      body: bytes,
    }),
    fc.oneof(
      rec({ type: fc.constantFrom("pkmsg" as const, "msg" as const) }),
      rec({ type: fc.constant("skmsg" as const), group: name }),
    ),
    opt("to", name),
    opt("group", name),
    ext,
  )
  .map((parts) => Object.assign({}, ...parts) as Stanza);

const deviceMismatch = rec({
  user: name,
  missing: fc.array(u32, { maxLength: 3 }),
  extra: fc.array(u32, { maxLength: 3 }),
  stale: fc.array(u32, { maxLength: 3 }),
});
const ack = fc
  .tuple(
    rec({ kind: fc.constant("ack" as const), id: msgId, timestamp: time }),
    opt(
      "error",
      fc
        .tuple(rec({ code: text }), opt("text", text), opt("devices", fc.array(deviceMismatch, { maxLength: 3 })))
        .map((p) => Object.assign({}, ...p)),
    ),
    ext,
  )
  .map((p) => Object.assign({}, ...p) as Stanza);

const devack = fc
  .tuple(
    rec({
      kind: fc.constant("devack" as const),
      seqs: fc.array(fc.oneof(u32, fc.nat(2 ** 51)), { minLength: 1, maxLength: 20 }),
    }),
    ext,
  )
  .map((p) => Object.assign({}, ...p) as Stanza);

const recipient = fc.tuple(rec({ user: name }), opt("device", u32)).map((p) => Object.assign({}, ...p));
const receipt = fc
  .tuple(
    rec({
      kind: fc.constant("receipt" as const),
      ids: fc.array(msgId, { minLength: 1, maxLength: 5 }),
      timestamp: time,
    }),
    fc.oneof(
      rec({ type: fc.constantFrom("delivered" as const, "read" as const) }),
      rec({
        type: fc.constant("retry" as const),
        retry: rec({ count: uint, registrationId: u32 }),
      }),
    ),
    opt("from", address),
    opt("to", recipient),
    opt("group", name),
    ext,
  )
  .map((p) => Object.assign({}, ...p) as Stanza);

const presence = fc
  .tuple(
    rec({
      kind: fc.constant("presence" as const),
      type: fc.constantFrom("available" as const, "unavailable" as const, "subscribe" as const, "unsubscribe" as const),
    }),
    opt("from", name),
    opt("to", name),
    opt("lastSeen", time),
    ext,
  )
  .map((p) => Object.assign({}, ...p) as Stanza);

const chatstate = fc
  .tuple(
    rec({ kind: fc.constant("chatstate" as const), state: fc.constantFrom("composing" as const, "paused" as const) }),
    opt("from", name),
    opt("to", name),
    opt("group", name),
    ext,
  )
  .map((p) => Object.assign({}, ...p) as Stanza);

const preKey: fc.Arbitrary<PreKey> = rec({ id: u32, key: bytes });
const signedPreKey: fc.Arbitrary<SignedPreKey> = rec({ id: u32, key: bytes, signature: bytes });
const names = fc.array(name, { maxLength: 4 });

const iqRequest: fc.Arbitrary<IqRequest> = fc.oneof(
  rec({ op: fc.constant("register-account" as const), name, code: text }),
  fc
    .tuple(
      rec({
        op: fc.constant("register-device" as const),
        noiseKey: bytes,
        registrationId: u32,
        identityKey: bytes,
        signedPreKey,
        kyberPreKey: signedPreKey,
        oneTimePreKeys: fc.array(preKey, { maxLength: 3 }),
        kyberOneTimePreKeys: fc.array(signedPreKey, { maxLength: 3 }),
      }),
      opt("name", text),
    )
    .map((p) => Object.assign({}, ...p)),
  fc
    .tuple(
      rec({
        op: fc.constant("upload-prekeys" as const),
        oneTimePreKeys: fc.array(preKey, { maxLength: 3 }),
        kyberOneTimePreKeys: fc.array(signedPreKey, { maxLength: 3 }),
      }),
      opt("signedPreKey", signedPreKey),
      opt("kyberPreKey", signedPreKey),
    )
    .map((p) => Object.assign({}, ...p)),
  fc.constant({ op: "prekey-count" as const }),
  rec({
    op: fc.constant("fetch-bundles" as const),
    users: fc.array(
      fc
        .tuple(rec({ user: name }), opt("devices", fc.array(u32, { maxLength: 3 })))
        .map((p) => Object.assign({}, ...p)),
      { maxLength: 3 },
    ),
  }),
  rec({ op: fc.constant("get-devices" as const), users: names }),
  rec({ op: fc.constant("set-devices" as const), list: bytes }),
  fc.constant({ op: "delete-account" as const }),
  rec({
    op: fc.constant("set-privacy" as const),
    setting: fc.constantFrom(
      "last-seen" as const,
      "presence" as const,
      "read-receipts" as const,
      "groups-add" as const,
    ),
    value: fc.constantFrom("all" as const, "contacts" as const, "nobody" as const),
  }),
  rec({ op: fc.constant("group-change" as const), change: bytes }),
  rec({ op: fc.constant("group-log" as const), group: name, after: uint }),
  rec({ op: fc.constant("group-invite-preview" as const), code: text }),
  fc.constant({ op: "groups" as const }),
  rec({ op: fc.constant("ext" as const), node }),
) as fc.Arbitrary<IqRequest>;

const bundle = fc
  .tuple(
    rec({
      user: name,
      device: u32,
      registrationId: u32,
      identityKey: bytes,
      signedPreKey,
      kyberPreKey: signedPreKey,
    }),
    opt("oneTimePreKey", preKey),
  )
  .map((p) => Object.assign({}, ...p));
const iqResult: fc.Arbitrary<IqResult> = fc.oneof(
  fc.constant({ op: "ok" as const }),
  rec({ op: fc.constant("account" as const), user: name }),
  rec({ op: fc.constant("device" as const), device: u32 }),
  rec({ op: fc.constant("prekey-count" as const), oneTime: uint, kyberOneTime: uint }),
  rec({ op: fc.constant("bundles" as const), bundles: fc.array(bundle, { maxLength: 3 }) }),
  rec({
    op: fc.constant("devices" as const),
    lists: fc.array(rec({ user: name, devices: fc.array(u32, { maxLength: 4 }), list: bytes }), { maxLength: 3 }),
  }),
  rec({ op: fc.constant("group-log" as const), changes: fc.array(bytes, { maxLength: 3 }) }),
  rec({ op: fc.constant("groups" as const), groups: fc.array(rec({ group: name, version: uint }), { maxLength: 3 }) }),
  rec({ op: fc.constant("ext" as const), node }),
) as fc.Arbitrary<IqResult>;

const notificationEvent: fc.Arbitrary<NotificationEvent> = fc.oneof(
  rec({ type: fc.constant("prekeys-low" as const), oneTime: uint, kyberOneTime: uint }),
  rec({ type: fc.constant("devices-changed" as const), user: name }),
  rec({ type: fc.constant("group-change" as const), change: bytes }),
  fc
    .tuple(
      rec({
        type: fc.constant("account" as const),
        event: fc.constantFrom(
          "device-added" as const,
          "device-removed" as const,
          "logged-out" as const,
          "deleted" as const,
          "privacy-changed" as const,
        ),
      }),
      opt("device", u32),
    )
    .map((p) => Object.assign({}, ...p)),
  fc.constant({ type: "queue-empty" as const }),
  rec({ type: fc.constant("ext" as const), node }),
) as fc.Arbitrary<NotificationEvent>;

const iq = fc
  .tuple(rec({ kind: fc.constant("iq" as const), id: uint, request: iqRequest }), ext)
  .map((p) => Object.assign({}, ...p) as Stanza);
const iqResultStanza = fc
  .tuple(rec({ kind: fc.constant("iq-result" as const), id: uint, result: iqResult }), ext)
  .map((p) => Object.assign({}, ...p) as Stanza);
const iqError = fc
  .tuple(
    rec({
      kind: fc.constant("iq-error" as const),
      id: uint,
      error: fc.tuple(rec({ code: text }), opt("text", text)).map((p) => Object.assign({}, ...p)),
    }),
    ext,
  )
  .map((p) => Object.assign({}, ...p) as Stanza);
const notification = fc
  .tuple(rec({ kind: fc.constant("notification" as const), id: uint, timestamp: time, event: notificationEvent }), ext)
  .map((p) => Object.assign({}, ...p) as Stanza);
const nodeStanza = rec({ kind: fc.constant("node" as const), node }) as fc.Arbitrary<Stanza>;

export const stanzaByKind: Record<Stanza["kind"], fc.Arbitrary<Stanza>> = {
  message,
  delivery,
  ack,
  devack,
  receipt,
  presence,
  chatstate,
  iq,
  "iq-result": iqResultStanza,
  "iq-error": iqError,
  notification,
  node: nodeStanza,
};

export const stanza: fc.Arbitrary<Stanza> = fc.oneof(...Object.values(stanzaByKind));

export const clientHello: fc.Arbitrary<ClientHello> = fc
  .tuple(
    rec({
      protocolVersion: fc.nat(100),
      dictionaryVersion: fc.nat(100),
      device: fc.oneof(u32, fc.constant("registering" as const)),
      passive: fc.boolean(),
      userAgent: text,
    }),
    opt("user", name),
  )
  .map((p) => Object.assign({}, ...p));

export const serverHello: fc.Arbitrary<ServerHello> = fc.oneof(
  rec({ result: fc.constant("ok" as const), serverTime: time, queueCount: uint }),
  rec({
    result: fc.constant("error" as const),
    serverTime: time,
    error: fc.tuple(rec({ code: text }), opt("text", text)).map((p) => Object.assign({}, ...p)),
  }),
) as fc.Arbitrary<ServerHello>;
