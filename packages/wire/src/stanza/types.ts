/**
 * Parley's typed stanza model. Every stanza is a plain object discriminated on `kind`; the codec
 * (stanza/codec.ts) turns it into compact bytes and back, and decode(encode(x)) deep-equals x.
 *
 * Conventions:
 * - Optional fields are omitted (never set to `undefined`) in decoded objects.
 * - Timestamps are integer seconds since the Unix epoch.
 * - Users and group ids are strings (interned per connection by the codec when a WireContext is used).
 * - Devices are small non-negative integers (uint32); 0 is conventionally the primary device.
 * - Message ids are client-generated random bytes: 8 bytes is the compact default, 1..32 allowed.
 * - Keys, signatures, ciphertexts and signed device lists are opaque bytes: the wire layer never parses them.
 * - `ext` carries extension nodes (generic form) that a peer not knowing them simply ignores.
 */

/** One device of one account. */
export interface Address {
  user: string;
  device: number;
}

/** A generic node: the extension form. Unknown tags always decode to this, never to an error. */
export type AttrValue = string | number | Uint8Array | Address;
export interface Node {
  tag: string;
  attrs: Record<string, AttrValue>;
  content?: Uint8Array | string | Node[];
}

/** Signal ciphertext types: pkmsg = PreKeySignalMessage, msg = SignalMessage, skmsg = SenderKeyMessage. */
export type DeviceCiphertextType = "pkmsg" | "msg";
export type CiphertextType = DeviceCiphertextType | "skmsg";

/** One ciphertext for one device (recipient devices and the sender's own other devices). */
export interface DeviceCiphertext {
  to: Address;
  type: DeviceCiphertextType;
  body: Uint8Array;
}

/** Error codes used by acks, iq errors and login results; free-form strings are allowed too. */
export type KnownErrorCode =
  | "bad-request"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "conflict"
  | "device-mismatch"
  | "stale-devices"
  | "rate-limited"
  | "too-large"
  | "gone"
  | "internal"
  | "unavailable"
  | "version-mismatch"
  | "bad-code"
  | "name-taken"
  | "not-registered"
  | "replaced";
export type ErrorCode = KnownErrorCode | (string & {});

export interface StanzaError {
  code: ErrorCode;
  text?: string;
}

/** Per-user device set mismatch (Sesame): what the sender must fix before retrying. */
export interface DeviceMismatch {
  user: string;
  /** devices the account has but the message did not address */
  missing: number[];
  /** devices the message addressed that the account does not have */
  extra: number[];
  /** devices whose registration id changed (re-registered): sessions must be rebuilt */
  stale: number[];
}

// ---------------------------------------------------------------------------------------------
// Messaging

/**
 * client → server: one logical message. 1:1: `to` is the peer user and `enc` has one entry per
 * device of the peer and of the sender's other devices. Group: `group` is set, `skmsg` holds the
 * sender-key ciphertext, and `enc` may carry pkmsg/msg entries (sender-key distribution) for
 * devices that need them. Exactly one of `to` / `group` is set.
 */
export interface MessageStanza {
  kind: "message";
  id: Uint8Array;
  to?: string;
  group?: string;
  /** client clock, seconds */
  timestamp: number;
  enc: DeviceCiphertext[];
  skmsg?: Uint8Array;
  ext?: Node[];
}

/**
 * server → client: one queue entry carrying the ciphertext for THIS device (the recipient is the
 * connection's device, so it is omitted). `to` is set only on copies delivered to the sender's own
 * other devices (so they know the conversation). The device acks by `seq`.
 */
export interface DeliveryStanza {
  kind: "delivery";
  id: Uint8Array;
  from: Address;
  to?: string;
  group?: string;
  /** server clock when the server accepted the message, seconds */
  timestamp: number;
  /** per-device queue sequence number */
  seq: number;
  type: CiphertextType;
  body: Uint8Array;
  ext?: Node[];
}

/** server → client: the message `id` is durably queued (first tick), or why it was refused. */
export interface AckStanza {
  kind: "ack";
  id: Uint8Array;
  /** server clock, seconds */
  timestamp: number;
  /** absent = ok */
  error?: StanzaError & { devices?: DeviceMismatch[] };
  ext?: Node[];
}

/** client → server: these queue entries are stored on the device; delete them. Not a receipt. */
export interface DeviceAckStanza {
  kind: "devack";
  seqs: number[];
  ext?: Node[];
}

export type ReceiptType = "delivered" | "read" | "retry";

/** The target of a receipt: a user (all devices) or one device. */
export interface Recipient {
  user: string;
  device?: number;
}

/**
 * Receipts, batched over message ids. client → server sets `to` (the original sender); server →
 * client sets `from` (the device that produced the receipt) and omits `to`.
 * A retry receipt (decryption failed) carries `retry`.
 */
export interface ReceiptStanza {
  kind: "receipt";
  type: ReceiptType;
  ids: Uint8Array[];
  from?: Address;
  to?: Recipient;
  group?: string;
  timestamp: number;
  retry?: { count: number; registrationId: number };
  /**
   * server → client only: the queue sequence number when the receipt was queued for this device
   * (receipts are stored and forwarded like messages); the device acks it with a devack.
   */
  seq?: number;
  ext?: Node[];
}

export type PresenceType = "available" | "unavailable" | "subscribe" | "unsubscribe";

/** Presence. server → client sets `from`; `lastSeen` accompanies "unavailable". */
export interface PresenceStanza {
  kind: "presence";
  type: PresenceType;
  from?: string;
  to?: string;
  lastSeen?: number;
  ext?: Node[];
}

export type ChatState = "composing" | "paused";

export interface ChatStateStanza {
  kind: "chatstate";
  state: ChatState;
  from?: string;
  to?: string;
  group?: string;
  ext?: Node[];
}

// ---------------------------------------------------------------------------------------------
// iq: request / result / error, correlated by a connection-scoped numeric id

export interface PreKey {
  id: number;
  key: Uint8Array;
}
export interface SignedPreKey {
  id: number;
  key: Uint8Array;
  signature: Uint8Array;
}

export interface PreKeyBundle {
  user: string;
  device: number;
  registrationId: number;
  identityKey: Uint8Array;
  signedPreKey: SignedPreKey;
  kyberPreKey: SignedPreKey;
  oneTimePreKey?: PreKey;
}

export type PrivacySetting = "last-seen" | "presence" | "read-receipts" | "groups-add";
export type PrivacyValue = "all" | "contacts" | "nobody";

export type IqRequest =
  | { op: "register-account"; name: string; code: string }
  | {
      op: "register-device";
      noiseKey: Uint8Array;
      registrationId: number;
      identityKey: Uint8Array;
      signedPreKey: SignedPreKey;
      kyberPreKey: SignedPreKey;
      oneTimePreKeys: PreKey[];
      kyberOneTimePreKeys: SignedPreKey[];
      /** human-readable device name, e.g. "laptop" */
      name?: string;
    }
  | {
      op: "upload-prekeys";
      signedPreKey?: SignedPreKey;
      /** last-resort KEM prekey */
      kyberPreKey?: SignedPreKey;
      oneTimePreKeys: PreKey[];
      kyberOneTimePreKeys: SignedPreKey[];
    }
  | { op: "prekey-count" }
  /** bundles for each listed user: all devices, or only `devices` */
  | { op: "fetch-bundles"; users: { user: string; devices?: number[] }[] }
  | { op: "get-devices"; users: string[] }
  | { op: "set-devices"; list: Uint8Array }
  | { op: "delete-account" }
  | { op: "set-privacy"; setting: PrivacySetting; value: PrivacyValue }
  /** a signed group change (docs/groups.md); answered ok, or error conflict / forbidden / bad-request */
  | { op: "group-change"; change: Uint8Array }
  /** the group's signed changes after version `after` (members only) */
  | { op: "group-log"; group: string; after: number }
  /** the log of the group an invite code opens (to build the join change) */
  | { op: "group-invite-preview"; code: string }
  /** the groups this account belongs to */
  | { op: "groups" }
  /** extension request in generic form */
  | { op: "ext"; node: Node }
  /** replaces the account's contact list (who counts as a contact for privacy "contacts") */
  | { op: "set-contacts"; users: string[] }
  /** companion (registering connection): wait for the primary's offer for link `ref` */
  | { op: "link-wait"; ref: Uint8Array }
  /** primary: deliver the signed link offer; answered with `device` once the companion completes */
  | { op: "link-offer"; ref: Uint8Array; payload: Uint8Array }
  /** companion: register as a linked device (see docs/multi-device.md for what is signed) */
  | ({
      op: "link-complete";
      ref: Uint8Array;
      deviceIdentity: Uint8Array;
      accountSignature: Uint8Array;
      deviceSignature: Uint8Array;
    } & DeviceKeys)
  /** primary: unlink a companion device */
  | { op: "remove-device"; device: number };

/** What a new device registers with. */
export interface DeviceKeys {
  noiseKey: Uint8Array;
  registrationId: number;
  identityKey: Uint8Array;
  signedPreKey: SignedPreKey;
  kyberPreKey: SignedPreKey;
  oneTimePreKeys: PreKey[];
  kyberOneTimePreKeys: SignedPreKey[];
  /** human-readable device name, e.g. "laptop" */
  name?: string;
}

export type IqResult =
  | { op: "ok" }
  | { op: "account"; user: string }
  | { op: "device"; device: number }
  | { op: "prekey-count"; oneTime: number; kyberOneTime: number }
  | { op: "bundles"; bundles: PreKeyBundle[] }
  | { op: "devices"; lists: { user: string; devices: number[]; list: Uint8Array }[] }
  | { op: "group-log"; changes: Uint8Array[] }
  | { op: "groups"; groups: { group: string; version: number }[] }
  | { op: "ext"; node: Node }
  /** a companion is linked: its account and device id */
  | { op: "linked"; user: string; device: number };

export interface IqStanza {
  kind: "iq";
  id: number;
  request: IqRequest;
  ext?: Node[];
}
export interface IqResultStanza {
  kind: "iq-result";
  id: number;
  result: IqResult;
  ext?: Node[];
}
export interface IqErrorStanza {
  kind: "iq-error";
  id: number;
  error: StanzaError;
  ext?: Node[];
}

// ---------------------------------------------------------------------------------------------
// Notifications: server → client, ordered by `id` (per device)

export type AccountEventType = "device-added" | "device-removed" | "logged-out" | "deleted" | "privacy-changed";

export type NotificationEvent =
  | { type: "prekeys-low"; oneTime: number; kyberOneTime: number }
  | { type: "devices-changed"; user: string }
  /** a signed change of a group (membership, subject, invite): apply in order, verify first */
  | { type: "group-change"; change: Uint8Array }
  | { type: "account"; event: AccountEventType; device?: number }
  /** the backlog queued while the device was offline has been fully pushed */
  | { type: "queue-empty" }
  | { type: "ext"; node: Node }
  /** to a waiting companion: the primary's signed link offer */
  | { type: "link-offer"; ref: Uint8Array; payload: Uint8Array };

export interface NotificationStanza {
  kind: "notification";
  id: number;
  timestamp: number;
  event: NotificationEvent;
  ext?: Node[];
}

/** Extension stanza: any tag, decoded generically. */
export interface NodeStanza {
  kind: "node";
  node: Node;
}

export type Stanza =
  | MessageStanza
  | DeliveryStanza
  | AckStanza
  | DeviceAckStanza
  | ReceiptStanza
  | PresenceStanza
  | ChatStateStanza
  | IqStanza
  | IqResultStanza
  | IqErrorStanza
  | NotificationStanza
  | NodeStanza;

export type StanzaKind = Stanza["kind"];

// ---------------------------------------------------------------------------------------------
// Login payloads, carried inside the Noise handshake messages (not stanzas)

/** Sent by the client in its handshake payload. */
export interface ClientHello {
  protocolVersion: number;
  dictionaryVersion: number;
  /** absent while registering a new account */
  user?: string;
  device: number | "registering";
  /** passive: connect without taking delivery (e.g. a background sync check) */
  passive: boolean;
  userAgent: string;
}

/** Sent by the server in its handshake payload: the login outcome. */
export type ServerHello =
  | { result: "ok"; serverTime: number; queueCount: number }
  | { result: "error"; serverTime: number; error: StanzaError };
