// Signal wire messages with libsignal's exact layouts
// (rust/protocol/src/protocol.rs, rust/protocol/src/proto/wire.proto):
//
//   SignalMessage                version ‖ protobuf ‖ MAC(8)
//   PreKeySignalMessage          version ‖ protobuf
//   SenderKeyMessage             version ‖ protobuf ‖ XEdDSA signature(64)
//   SenderKeyDistributionMessage version ‖ protobuf
//
// Version byte: high nibble = message (session) version, low nibble = the
// writer's current version. libsignal writes (v << 4) | 4 for 1:1 messages
// (CIPHERTEXT_MESSAGE_CURRENT_VERSION = 4; so a v3 session writes 0x34 and a
// v4 one 0x44; pre-Kyber releases wrote 0x33) and (3 << 4) | 3 = 0x33 for
// sender-key messages. Readers, like libsignal's, look only at the high nibble.

import { constantTimeEqual, getCrypto } from "../crypto/index.ts";
import { SignalError } from "../errors.ts";
import { DEFAULT_MAX_MESSAGE_SIZE, decodeProto, encodeProto } from "./protobuf.ts";

/** Lowest and highest 1:1 session versions accepted (3 = X3DH, 4 = PQXDH + SPQR). */
export const MIN_SESSION_VERSION = 3;
export const CURRENT_SESSION_VERSION = 4;
/** Sender-key messages have their own version, 3. */
export const SENDER_KEY_MESSAGE_VERSION = 3;
export const SIGNAL_MESSAGE_MAC_LENGTH = 8;
export const SENDER_KEY_SIGNATURE_LENGTH = 64;
export const DISTRIBUTION_ID_LENGTH = 16;
const SERIALIZED_KEY_LENGTH = 33;
const DJB_TYPE = 0x05;
const CHAIN_KEY_LENGTH = 32;

export type DecodeOptions = { maxSize?: number };

function invalid(reason: string): SignalError {
  return new SignalError("INVALID_MESSAGE", reason);
}

function versionByte(version: number, current: number): number {
  if (!Number.isInteger(version) || version < 0 || version > 15) throw new RangeError("version must be 0..15");
  return ((version & 0x0f) << 4) | current;
}

function checkSize(bytes: Uint8Array, options: DecodeOptions | undefined, minLength: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw invalid(`${what}: input is not bytes`);
  const maxSize = options?.maxSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  if (bytes.length > maxSize) throw invalid(`${what}: ${bytes.length} bytes exceeds the ${maxSize}-byte limit`);
  if (bytes.length < minLength) throw invalid(`${what}: too short (${bytes.length} bytes)`);
}

function readVersion(bytes: Uint8Array, min: number, max: number, what: string): number {
  const version = bytes[0]! >> 4;
  if (version < min || version > max) {
    throw new SignalError("UNSUPPORTED_VERSION", `${what}: unsupported version ${version}`, { version });
  }
  return version;
}

function requireKey(value: Uint8Array | undefined, what: string): Uint8Array {
  if (value === undefined) throw invalid(`${what} missing`);
  if (value.length !== SERIALIZED_KEY_LENGTH || value[0] !== DJB_TYPE) {
    throw invalid(`${what} is not a 33-byte type-0x05 public key`);
  }
  return value;
}

function requirePresent<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw invalid(`${what} missing`);
  return value;
}

function requireEncodedKey(value: Uint8Array, what: string): void {
  if (!(value instanceof Uint8Array) || value.length !== SERIALIZED_KEY_LENGTH || value[0] !== DJB_TYPE) {
    throw new SignalError("INVALID_KEY", `${what} must be a 33-byte serialized (0x05-prefixed) public key`);
  }
}

// ---------- SignalMessage ----------

const SIGNAL_MESSAGE_SCHEMA = {
  ratchetKey: { field: 1, type: "bytes" },
  counter: { field: 2, type: "uint32" },
  previousCounter: { field: 3, type: "uint32" },
  ciphertext: { field: 4, type: "bytes" },
  pqRatchet: { field: 5, type: "bytes" },
} as const;

export interface SignalMessageFields {
  /** Sender's current ratchet public key, serialized (33 bytes, 0x05 ‖ raw). */
  ratchetKey: Uint8Array;
  counter: number;
  previousCounter: number;
  ciphertext: Uint8Array;
  /** SPQR (sparse post-quantum ratchet) message, v4 sessions only; omitted when absent or empty. */
  pqRatchet?: Uint8Array;
}

export interface DecodedSignalMessage {
  /** Session version (high nibble of the first byte): 3 or 4. */
  version: number;
  fields: SignalMessageFields;
  /** The complete serialized message, MAC included (the MAC covers all but its last 8 bytes). */
  serialized: Uint8Array;
}

function signalMessageMac(
  macKey: Uint8Array,
  senderIdentity: Uint8Array,
  receiverIdentity: Uint8Array,
  versionAndProto: Uint8Array,
): Uint8Array {
  if (!(macKey instanceof Uint8Array) || macKey.length !== 32) {
    throw new SignalError("INVALID_KEY", "MAC key must be 32 bytes");
  }
  requireEncodedKey(senderIdentity, "sender identity key");
  requireEncodedKey(receiverIdentity, "receiver identity key");
  return getCrypto()
    .hmacSha256(macKey, senderIdentity, receiverIdentity, versionAndProto)
    .slice(0, SIGNAL_MESSAGE_MAC_LENGTH);
}

export function encodeSignalMessage(
  version: number,
  fields: SignalMessageFields,
  macKey: Uint8Array,
  senderIdentity: Uint8Array,
  receiverIdentity: Uint8Array,
): Uint8Array {
  requireEncodedKey(fields.ratchetKey, "ratchet key");
  const proto = encodeProto(SIGNAL_MESSAGE_SCHEMA, {
    ratchetKey: fields.ratchetKey,
    counter: fields.counter,
    previousCounter: fields.previousCounter,
    ciphertext: fields.ciphertext,
    pqRatchet: fields.pqRatchet !== undefined && fields.pqRatchet.length > 0 ? fields.pqRatchet : undefined,
  });
  const out = new Uint8Array(1 + proto.length + SIGNAL_MESSAGE_MAC_LENGTH);
  out[0] = versionByte(version, CURRENT_SESSION_VERSION);
  out.set(proto, 1);
  const mac = signalMessageMac(macKey, senderIdentity, receiverIdentity, out.subarray(0, 1 + proto.length));
  out.set(mac, 1 + proto.length);
  return out;
}

export function decodeSignalMessage(bytes: Uint8Array, options?: DecodeOptions): DecodedSignalMessage {
  checkSize(bytes, options, 1 + SIGNAL_MESSAGE_MAC_LENGTH, "SignalMessage");
  const version = readVersion(bytes, MIN_SESSION_VERSION, CURRENT_SESSION_VERSION, "SignalMessage");
  const proto = decodeProto(bytes.subarray(1, bytes.length - SIGNAL_MESSAGE_MAC_LENGTH), SIGNAL_MESSAGE_SCHEMA);
  const fields: SignalMessageFields = {
    ratchetKey: requireKey(proto.ratchetKey, "SignalMessage ratchet key"),
    counter: requirePresent(proto.counter, "SignalMessage counter"),
    previousCounter: proto.previousCounter ?? 0,
    ciphertext: requirePresent(proto.ciphertext, "SignalMessage ciphertext"),
  };
  if (proto.pqRatchet !== undefined && proto.pqRatchet.length > 0) fields.pqRatchet = proto.pqRatchet;
  return { version, fields, serialized: bytes.slice() };
}

/** Constant-time check of the 8-byte MAC; false (never a throw) on mismatch. */
export function verifySignalMessageMac(
  message: DecodedSignalMessage,
  macKey: Uint8Array,
  senderIdentity: Uint8Array,
  receiverIdentity: Uint8Array,
): boolean {
  const body = message.serialized.subarray(0, message.serialized.length - SIGNAL_MESSAGE_MAC_LENGTH);
  const theirs = message.serialized.subarray(message.serialized.length - SIGNAL_MESSAGE_MAC_LENGTH);
  return constantTimeEqual(signalMessageMac(macKey, senderIdentity, receiverIdentity, body), theirs);
}

// ---------- PreKeySignalMessage ----------

const PREKEY_MESSAGE_SCHEMA = {
  preKeyId: { field: 1, type: "uint32" },
  baseKey: { field: 2, type: "bytes" },
  identityKey: { field: 3, type: "bytes" },
  message: { field: 4, type: "bytes" },
  registrationId: { field: 5, type: "uint32" },
  signedPreKeyId: { field: 6, type: "uint32" },
  kyberPreKeyId: { field: 7, type: "uint32" },
  kyberCiphertext: { field: 8, type: "bytes" },
} as const;

export interface PreKeySignalMessageFields {
  registrationId: number;
  preKeyId?: number;
  signedPreKeyId: number;
  /** Present (with kyberCiphertext) in v4 messages, absent in v3. */
  kyberPreKeyId?: number;
  /** Serialized KEM ciphertext: type byte ‖ raw (see kem/). */
  kyberCiphertext?: Uint8Array;
  /** Alice's base (ephemeral) key, serialized 33 bytes. */
  baseKey: Uint8Array;
  /** Alice's identity key, serialized 33 bytes. */
  identityKey: Uint8Array;
  /** The embedded serialized SignalMessage. */
  message: Uint8Array;
}

export interface DecodedPreKeySignalMessage {
  version: number;
  fields: PreKeySignalMessageFields;
  serialized: Uint8Array;
}

export function encodePreKeySignalMessage(version: number, fields: PreKeySignalMessageFields): Uint8Array {
  requireEncodedKey(fields.baseKey, "base key");
  requireEncodedKey(fields.identityKey, "identity key");
  if ((fields.kyberPreKeyId === undefined) !== (fields.kyberCiphertext === undefined)) {
    throw new TypeError("kyberPreKeyId and kyberCiphertext go together");
  }
  const proto = encodeProto(PREKEY_MESSAGE_SCHEMA, {
    preKeyId: fields.preKeyId,
    baseKey: fields.baseKey,
    identityKey: fields.identityKey,
    message: fields.message,
    registrationId: fields.registrationId,
    signedPreKeyId: fields.signedPreKeyId,
    kyberPreKeyId: fields.kyberPreKeyId,
    kyberCiphertext: fields.kyberCiphertext,
  });
  const out = new Uint8Array(1 + proto.length);
  out[0] = versionByte(version, CURRENT_SESSION_VERSION);
  out.set(proto, 1);
  return out;
}

/**
 * Decode a PreKeySignalMessage. As in libsignal: base key, identity key,
 * message and signed prekey id are required; registration id defaults to 0;
 * the Kyber id and ciphertext must be both present or both absent, and both
 * present when version >= 4. The embedded SignalMessage is also decoded
 * (structure only) so a malformed one is rejected here.
 */
export function decodePreKeySignalMessage(bytes: Uint8Array, options?: DecodeOptions): DecodedPreKeySignalMessage {
  checkSize(bytes, options, 1, "PreKeySignalMessage");
  const version = readVersion(bytes, MIN_SESSION_VERSION, CURRENT_SESSION_VERSION, "PreKeySignalMessage");
  const proto = decodeProto(bytes.subarray(1), PREKEY_MESSAGE_SCHEMA);
  const fields: PreKeySignalMessageFields = {
    registrationId: proto.registrationId ?? 0,
    signedPreKeyId: requirePresent(proto.signedPreKeyId, "PreKeySignalMessage signed prekey id"),
    baseKey: requireKey(proto.baseKey, "PreKeySignalMessage base key"),
    identityKey: requireKey(proto.identityKey, "PreKeySignalMessage identity key"),
    message: requirePresent(proto.message, "PreKeySignalMessage message"),
  };
  if (proto.preKeyId !== undefined) fields.preKeyId = proto.preKeyId;
  const hasKyberId = proto.kyberPreKeyId !== undefined;
  const hasKyberCiphertext = proto.kyberCiphertext !== undefined;
  if (hasKyberId !== hasKyberCiphertext) throw invalid("Kyber prekey id and ciphertext must both be present or absent");
  if (hasKyberId) {
    fields.kyberPreKeyId = proto.kyberPreKeyId;
    fields.kyberCiphertext = proto.kyberCiphertext;
  } else if (version > MIN_SESSION_VERSION) {
    throw invalid(`a version ${version} PreKeySignalMessage must carry a KEM ciphertext`);
  }
  decodeSignalMessage(fields.message, options);
  return { version, fields, serialized: bytes.slice() };
}

// ---------- Sender keys ----------

const SENDER_KEY_MESSAGE_SCHEMA = {
  distributionId: { field: 1, type: "bytes" },
  chainId: { field: 2, type: "uint32" },
  iteration: { field: 3, type: "uint32" },
  ciphertext: { field: 4, type: "bytes" },
} as const;

export interface SenderKeyMessageFields {
  /** 16-byte distribution UUID. */
  distributionId: Uint8Array;
  chainId: number;
  iteration: number;
  ciphertext: Uint8Array;
}

export interface DecodedSenderKeyMessage {
  version: number;
  fields: SenderKeyMessageFields;
  /** The whole message; the signature covers all but its last 64 bytes. */
  serialized: Uint8Array;
}

function requireDistributionId(value: Uint8Array | undefined, what: string): Uint8Array {
  if (value === undefined || value.length !== DISTRIBUTION_ID_LENGTH) throw invalid(`${what}: bad distribution id`);
  return value;
}

/**
 * Build a SenderKeyMessage: 0x33 ‖ protobuf ‖ XEdDSA signature over the
 * preceding bytes. `sign` receives those bytes and returns 64 bytes.
 */
export function encodeSenderKeyMessage(
  fields: SenderKeyMessageFields,
  sign: (body: Uint8Array) => Uint8Array,
): Uint8Array {
  if (fields.distributionId.length !== DISTRIBUTION_ID_LENGTH) throw new TypeError("distribution id must be 16 bytes");
  const proto = encodeProto(SENDER_KEY_MESSAGE_SCHEMA, fields);
  const body = new Uint8Array(1 + proto.length);
  body[0] = versionByte(SENDER_KEY_MESSAGE_VERSION, SENDER_KEY_MESSAGE_VERSION);
  body.set(proto, 1);
  const signature = sign(body);
  if (signature.length !== SENDER_KEY_SIGNATURE_LENGTH) throw new TypeError("signature must be 64 bytes");
  const out = new Uint8Array(body.length + SENDER_KEY_SIGNATURE_LENGTH);
  out.set(body);
  out.set(signature, body.length);
  return out;
}

export function decodeSenderKeyMessage(bytes: Uint8Array, options?: DecodeOptions): DecodedSenderKeyMessage {
  checkSize(bytes, options, 1 + SENDER_KEY_SIGNATURE_LENGTH, "SenderKeyMessage");
  const version = readVersion(bytes, SENDER_KEY_MESSAGE_VERSION, SENDER_KEY_MESSAGE_VERSION, "SenderKeyMessage");
  const proto = decodeProto(bytes.subarray(1, bytes.length - SENDER_KEY_SIGNATURE_LENGTH), SENDER_KEY_MESSAGE_SCHEMA);
  return {
    version,
    fields: {
      distributionId: requireDistributionId(proto.distributionId, "SenderKeyMessage"),
      chainId: requirePresent(proto.chainId, "SenderKeyMessage chain id"),
      iteration: requirePresent(proto.iteration, "SenderKeyMessage iteration"),
      ciphertext: requirePresent(proto.ciphertext, "SenderKeyMessage ciphertext"),
    },
    serialized: bytes.slice(),
  };
}

/** The signed part and the signature of a decoded SenderKeyMessage. */
export function senderKeyMessageSignedParts(message: DecodedSenderKeyMessage): {
  body: Uint8Array;
  signature: Uint8Array;
} {
  const split = message.serialized.length - SENDER_KEY_SIGNATURE_LENGTH;
  return { body: message.serialized.subarray(0, split), signature: message.serialized.subarray(split) };
}

const SKDM_SCHEMA = {
  distributionId: { field: 1, type: "bytes" },
  chainId: { field: 2, type: "uint32" },
  iteration: { field: 3, type: "uint32" },
  chainKey: { field: 4, type: "bytes" },
  signingKey: { field: 5, type: "bytes" },
} as const;

export interface SenderKeyDistributionMessageFields {
  distributionId: Uint8Array;
  chainId: number;
  iteration: number;
  /** 32-byte chain key at `iteration`. */
  chainKey: Uint8Array;
  /** Serialized (33-byte) signing public key. */
  signingKey: Uint8Array;
}

export interface DecodedSenderKeyDistributionMessage {
  version: number;
  fields: SenderKeyDistributionMessageFields;
  serialized: Uint8Array;
}

export function encodeSenderKeyDistributionMessage(fields: SenderKeyDistributionMessageFields): Uint8Array {
  if (fields.distributionId.length !== DISTRIBUTION_ID_LENGTH) throw new TypeError("distribution id must be 16 bytes");
  if (fields.chainKey.length !== CHAIN_KEY_LENGTH) throw new TypeError("chain key must be 32 bytes");
  requireEncodedKey(fields.signingKey, "signing key");
  const proto = encodeProto(SKDM_SCHEMA, fields);
  const out = new Uint8Array(1 + proto.length);
  out[0] = versionByte(SENDER_KEY_MESSAGE_VERSION, SENDER_KEY_MESSAGE_VERSION);
  out.set(proto, 1);
  return out;
}

export function decodeSenderKeyDistributionMessage(
  bytes: Uint8Array,
  options?: DecodeOptions,
): DecodedSenderKeyDistributionMessage {
  // libsignal: at least a version byte, a chain key and a key's worth of bytes.
  checkSize(bytes, options, 1 + 32 + 32, "SenderKeyDistributionMessage");
  const version = readVersion(
    bytes,
    SENDER_KEY_MESSAGE_VERSION,
    SENDER_KEY_MESSAGE_VERSION,
    "SenderKeyDistributionMessage",
  );
  const proto = decodeProto(bytes.subarray(1), SKDM_SCHEMA);
  const chainKey = requirePresent(proto.chainKey, "SenderKeyDistributionMessage chain key");
  if (chainKey.length !== CHAIN_KEY_LENGTH) throw invalid("SenderKeyDistributionMessage chain key must be 32 bytes");
  return {
    version,
    fields: {
      distributionId: requireDistributionId(proto.distributionId, "SenderKeyDistributionMessage"),
      chainId: requirePresent(proto.chainId, "SenderKeyDistributionMessage chain id"),
      iteration: requirePresent(proto.iteration, "SenderKeyDistributionMessage iteration"),
      chainKey,
      signingKey: requireKey(proto.signingKey, "SenderKeyDistributionMessage signing key"),
    },
    serialized: bytes.slice(),
  };
}
