import {
  type CUnion,
  compileStruct,
  compileUnion,
  type FieldSpec,
  type FieldType,
  type VariantSpec,
} from "./schema.ts";

/**
 * The layout of every typed stanza. The ORDER of variants and fields is the wire format: the
 * variant's index is its code and fields are written in the listed order. Changing anything here
 * changes the protocol: bump PROTOCOL_VERSION (src/version.ts).
 */

const ext: FieldSpec = { name: "ext", type: "nodes", optional: true };

const preKey: FieldType = {
  struct: [
    { name: "id", type: "u32" },
    { name: "key", type: "bytes" },
  ],
};
const signedPreKey: FieldType = {
  struct: [
    { name: "id", type: "u32" },
    { name: "key", type: "bytes" },
    { name: "signature", type: "bytes" },
  ],
};
const stanzaError: readonly FieldSpec[] = [
  { name: "code", type: "str" },
  { name: "text", type: "str", optional: true },
];
const deviceList: FieldType = { list: "u32" };
const names: FieldType = { list: "name" };

/** What a new device registers with (primary registration and linked companions alike). */
function deviceKeyFields(): FieldSpec[] {
  return [
    { name: "noiseKey", type: "bytes" },
    { name: "registrationId", type: "u32" },
    { name: "identityKey", type: "bytes" },
    { name: "signedPreKey", type: signedPreKey },
    { name: "kyberPreKey", type: signedPreKey },
    { name: "oneTimePreKeys", type: { list: preKey } },
    { name: "kyberOneTimePreKeys", type: { list: signedPreKey } },
    { name: "name", type: "str", optional: true },
  ];
}

export const IQ_REQUEST_VARIANTS: readonly VariantSpec[] = [
  {
    tag: "register-account",
    fields: [
      { name: "name", type: "name" },
      { name: "code", type: "str" },
    ],
  },
  {
    tag: "register-device",
    fields: [
      ...deviceKeyFields(),
      { name: "registrationId", type: "u32" },
      { name: "identityKey", type: "bytes" },
      { name: "signedPreKey", type: signedPreKey },
      { name: "kyberPreKey", type: signedPreKey },
      { name: "oneTimePreKeys", type: { list: preKey } },
    ],
  },
  {
    tag: "upload-prekeys",
    fields: [
      { name: "signedPreKey", type: signedPreKey, optional: true },
      { name: "kyberPreKey", type: signedPreKey, optional: true },
      { name: "oneTimePreKeys", type: { list: preKey } },
      { name: "kyberOneTimePreKeys", type: { list: signedPreKey } },
    ],
  },
  { tag: "prekey-count", fields: [] },
  {
    tag: "fetch-bundles",
    fields: [
      {
        name: "users",
        type: {
          list: {
            struct: [
              { name: "user", type: "name" },
              { name: "devices", type: deviceList, optional: true },
            ],
          },
        },
      },
    ],
  },
  { tag: "get-devices", fields: [{ name: "users", type: names }] },
  { tag: "set-devices", fields: [{ name: "list", type: "bytes" }] },
  { tag: "delete-account", fields: [] },
  {
    tag: "set-privacy",
    fields: [
      { name: "setting", type: { enum: ["last-seen", "presence", "read-receipts", "groups-add"] } },
      { name: "value", type: { enum: ["all", "contacts", "nobody"] } },
    ],
  },
  // Groups (docs/groups.md): every membership change is one signed change of the group's log.
  /** a signed group change (create, add, remove, promote, demote, leave, subject, invite, join) */
  { tag: "group-change", fields: [{ name: "change", type: "bytes" }] },
  /** the group's signed changes after version `after` (members only) */
  {
    tag: "group-log",
    fields: [
      { name: "group", type: "name" },
      { name: "after", type: "uint" },
    ],
  },
  /** the log of the group an invite code opens (to build a join change); no membership needed */
  { tag: "group-invite-preview", fields: [{ name: "code", type: "str" }] },
  /** the groups this account is a member of, with their versions */
  { tag: "groups", fields: [] },
  { tag: "ext", fields: [{ name: "node", type: "node" }] },
  // Appended after "ext" so existing variant codes keep their values (codes are list positions).
  /** replaces the account's contact list (used for presence privacy "contacts") */
  { tag: "set-contacts", fields: [{ name: "users", type: names }] },
  // Multi-device linking (docs/multi-device.md).
  /** companion, on a registering connection: wait for the primary's offer for link `ref` */
  { tag: "link-wait", fields: [{ name: "ref", type: "bytes" }] },
  /** primary: hand the signed offer to the waiting companion; answered once the companion completes */
  {
    tag: "link-offer",
    fields: [
      { name: "ref", type: "bytes" },
      { name: "payload", type: "bytes" },
    ],
  },
  /** companion: register as a linked device with the countersigned identity */
  {
    tag: "link-complete",
    fields: [
      { name: "ref", type: "bytes" },
      { name: "deviceIdentity", type: "bytes" },
      { name: "accountSignature", type: "bytes" },
      { name: "deviceSignature", type: "bytes" },
      ...deviceKeyFields(),
    ],
  },
  /** primary: unlink a companion (its queue and keys are deleted, its connection closed) */
  { tag: "remove-device", fields: [{ name: "device", type: "u32" }] },
];

export const IQ_RESULT_VARIANTS: readonly VariantSpec[] = [
  { tag: "ok", fields: [] },
  { tag: "account", fields: [{ name: "user", type: "name" }] },
  { tag: "device", fields: [{ name: "device", type: "u32" }] },
  {
    tag: "prekey-count",
    fields: [
      { name: "oneTime", type: "uint" },
      { name: "kyberOneTime", type: "uint" },
    ],
  },
  {
    tag: "bundles",
    fields: [
      {
        name: "bundles",
        type: {
          list: {
            struct: [
              { name: "user", type: "name" },
              { name: "device", type: "u32" },
              { name: "registrationId", type: "u32" },
              { name: "identityKey", type: "bytes" },
              { name: "signedPreKey", type: signedPreKey },
              { name: "kyberPreKey", type: signedPreKey },
              { name: "oneTimePreKey", type: preKey, optional: true },
            ],
          },
        },
      },
    ],
  },
  {
    tag: "devices",
    fields: [
      {
        name: "lists",
        type: {
          list: {
            struct: [
              { name: "user", type: "name" },
              { name: "devices", type: deviceList },
              { name: "list", type: "bytes" },
            ],
          },
        },
      },
    ],
  },
  { tag: "group-log", fields: [{ name: "changes", type: { list: "bytes" } }] },
  {
    tag: "groups",
    fields: [
      {
        name: "groups",
        type: {
          list: {
            struct: [
              { name: "group", type: "name" },
              { name: "version", type: "uint" },
            ],
          },
        },
      },
    ],
  },
  { tag: "ext", fields: [{ name: "node", type: "node" }] },
  {
    tag: "linked",
    fields: [
      { name: "user", type: "name" },
      { name: "device", type: "u32" },
    ],
  },
];

export const NOTIFICATION_VARIANTS: readonly VariantSpec[] = [
  {
    tag: "prekeys-low",
    fields: [
      { name: "oneTime", type: "uint" },
      { name: "kyberOneTime", type: "uint" },
    ],
  },
  { tag: "devices-changed", fields: [{ name: "user", type: "name" }] },
  /** a signed change of a group we are (or were, for remove/leave) a member of; the group id is inside */
  { tag: "group-change", fields: [{ name: "change", type: "bytes" }] },
  {
    tag: "account",
    fields: [
      {
        name: "event",
        type: { enum: ["device-added", "device-removed", "logged-out", "deleted", "privacy-changed"] },
      },
      { name: "device", type: "u32", optional: true },
    ],
  },
  { tag: "queue-empty", fields: [] },
  { tag: "ext", fields: [{ name: "node", type: "node" }] },
  {
    tag: "link-offer",
    fields: [
      { name: "ref", type: "bytes" },
      { name: "payload", type: "bytes" },
    ],
  },
];

export const STANZA_VARIANTS: readonly VariantSpec[] = [
  {
    tag: "message",
    fields: [
      { name: "id", type: "msgid" },
      { name: "to", type: "name", optional: true },
      { name: "group", type: "name", optional: true },
      { name: "timestamp", type: "time" },
      { name: "enc", type: "enc" },
      { name: "skmsg", type: "bytes", optional: true },
      ext,
    ],
  },
  {
    tag: "delivery",
    fields: [
      { name: "id", type: "msgid" },
      { name: "from", type: "addr" },
      { name: "to", type: "name", optional: true },
      { name: "group", type: "name", optional: true },
      { name: "timestamp", type: "time" },
      { name: "seq", type: "uint" },
      { name: "type", type: { enum: ["pkmsg", "msg", "skmsg"] } },
      { name: "body", type: "bytes" },
      ext,
    ],
  },
  {
    tag: "ack",
    fields: [
      { name: "id", type: "msgid" },
      { name: "timestamp", type: "time" },
      {
        name: "error",
        optional: true,
        type: {
          struct: [
            ...stanzaError,
            {
              name: "devices",
              optional: true,
              type: {
                list: {
                  struct: [
                    { name: "user", type: "name" },
                    { name: "missing", type: deviceList },
                    { name: "extra", type: deviceList },
                    { name: "stale", type: deviceList },
                  ],
                },
              },
            },
          ],
        },
      },
      ext,
    ],
  },
  { tag: "devack", fields: [{ name: "seqs", type: "seqs" }, ext] },
  {
    tag: "receipt",
    fields: [
      { name: "type", type: { enum: ["delivered", "read", "retry"] } },
      { name: "ids", type: "ids" },
      { name: "from", type: "addr", optional: true },
      {
        name: "to",
        optional: true,
        type: {
          struct: [
            { name: "user", type: "name" },
            { name: "device", type: "u32", optional: true },
          ],
        },
      },
      { name: "group", type: "name", optional: true },
      { name: "timestamp", type: "time" },
      {
        name: "retry",
        optional: true,
        type: {
          struct: [
            { name: "count", type: "uint" },
            { name: "registrationId", type: "u32" },
          ],
        },
      },
      { name: "seq", type: "uint", optional: true },
      ext,
    ],
  },
  {
    tag: "presence",
    fields: [
      { name: "type", type: { enum: ["available", "unavailable", "subscribe", "unsubscribe"] } },
      { name: "from", type: "name", optional: true },
      { name: "to", type: "name", optional: true },
      { name: "lastSeen", type: "time", optional: true },
      ext,
    ],
  },
  {
    tag: "chatstate",
    fields: [
      { name: "state", type: { enum: ["composing", "paused"] } },
      { name: "from", type: "name", optional: true },
      { name: "to", type: "name", optional: true },
      { name: "group", type: "name", optional: true },
      ext,
    ],
  },
  {
    tag: "iq",
    fields: [
      { name: "id", type: "uint" },
      { name: "request", type: { union: "op", variants: IQ_REQUEST_VARIANTS } },
      ext,
    ],
  },
  {
    tag: "iq-result",
    fields: [
      { name: "id", type: "uint" },
      { name: "result", type: { union: "op", variants: IQ_RESULT_VARIANTS } },
      ext,
    ],
  },
  {
    tag: "iq-error",
    fields: [{ name: "id", type: "uint" }, { name: "error", type: { struct: stanzaError } }, ext],
  },
  {
    tag: "notification",
    fields: [
      { name: "id", type: "uint" },
      { name: "timestamp", type: "time" },
      { name: "event", type: { union: "type", variants: NOTIFICATION_VARIANTS } },
      ext,
    ],
  },
  { tag: "node", fields: [{ name: "node", type: "node" }] },
];

export const STANZA_UNION: CUnion = compileUnion("kind", STANZA_VARIANTS);

export const CLIENT_HELLO_FIELDS: readonly FieldSpec[] = [
  { name: "protocolVersion", type: "uint" },
  { name: "dictionaryVersion", type: "uint" },
  { name: "user", type: "name", optional: true },
  // absent = "registering"
  { name: "device", type: "u32", optional: true },
  { name: "passive", type: "bool" },
  { name: "userAgent", type: "str" },
];
export const CLIENT_HELLO_STRUCT = compileStruct(CLIENT_HELLO_FIELDS);

export const SERVER_HELLO_VARIANTS: readonly VariantSpec[] = [
  {
    tag: "ok",
    fields: [
      { name: "serverTime", type: "time" },
      { name: "queueCount", type: "uint" },
    ],
  },
  {
    tag: "error",
    fields: [
      { name: "serverTime", type: "time" },
      { name: "error", type: { struct: stanzaError } },
    ],
  },
];
export const SERVER_HELLO_UNION: CUnion = compileUnion("result", SERVER_HELLO_VARIANTS);
