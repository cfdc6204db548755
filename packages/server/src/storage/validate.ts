import { StorageError } from "./errors.ts";
import type {
  AccountId,
  DeviceId,
  DeviceListBlob,
  GroupUpdate,
  KemPreKey,
  NewDevice,
  OneTimePreKey,
  PreKeyUpload,
  PresencePrivacy,
  QueueRecipient,
  SignedPreKey,
} from "./types.ts";

/**
 * Argument checks shared by every ServerStorage implementation, so that all of them reject the
 * same malformed input with the same INVALID_ARGUMENT error (the conformance suite checks this).
 * Storage checks shapes and sizes only; signatures are verified by the gateway.
 */

export const NOISE_STATIC_KEY_BYTES = 32;
/** Signal serializes EC public keys as a type byte (0x05) followed by 32 bytes. */
export const EC_PUBLIC_KEY_BYTES = 33;
export const SIGNATURE_BYTES = 64;
/** ML-KEM-1024 serialized with its type byte is 1,569 bytes; leave room, but bound it. */
export const MAX_KEM_PUBLIC_KEY_BYTES = 4096;
export const MAX_MESSAGE_ID_LENGTH = 128;
export const MAX_DEVICE_LIST_BYTES = 64 * 1024;
export const MAX_ACCOUNT_ID_LENGTH = 64;
export const MAX_CONTACTS = 10_000;
export const MAX_REGISTRATION_CODE_LENGTH = 64;

function invalid(message: string): StorageError {
  return new StorageError("INVALID_ARGUMENT", message);
}

export function checkAccountId(id: AccountId, what = "account id"): void {
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_ACCOUNT_ID_LENGTH) {
    throw invalid(`${what} must be a non-empty string of at most ${MAX_ACCOUNT_ID_LENGTH} characters`);
  }
}

export function checkDeviceId(id: DeviceId, what = "device id"): void {
  if (!Number.isInteger(id) || id < 1 || id > 0x7fffffff) throw invalid(`${what} must be an integer >= 1`);
}

export function checkUint32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw invalid(`${what} must be a uint32`);
}

export function checkNonNegativeInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${what} must be a non-negative integer`);
}

export function checkBytes(value: Uint8Array, what: string, exact?: number, max?: number): void {
  if (!(value instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`);
  if (exact !== undefined && value.length !== exact) throw invalid(`${what} must be ${exact} bytes`);
  if (value.length === 0) throw invalid(`${what} must not be empty`);
  if (max !== undefined && value.length > max) throw invalid(`${what} must be at most ${max} bytes`);
}

export function checkSignedPreKey(key: SignedPreKey, what = "signed prekey"): void {
  if (typeof key !== "object" || key === null) throw invalid(`${what} missing`);
  checkUint32(key.id, `${what} id`);
  checkBytes(key.publicKey, `${what} public key`, EC_PUBLIC_KEY_BYTES);
  checkBytes(key.signature, `${what} signature`, SIGNATURE_BYTES);
}

export function checkKemPreKey(key: KemPreKey, what = "KEM prekey"): void {
  if (typeof key !== "object" || key === null) throw invalid(`${what} missing`);
  checkUint32(key.id, `${what} id`);
  checkBytes(key.publicKey, `${what} public key`, undefined, MAX_KEM_PUBLIC_KEY_BYTES);
  checkBytes(key.signature, `${what} signature`, SIGNATURE_BYTES);
}

export function checkOneTimePreKey(key: OneTimePreKey): void {
  if (typeof key !== "object" || key === null) throw invalid("one-time prekey missing");
  checkUint32(key.id, "one-time prekey id");
  checkBytes(key.publicKey, "one-time prekey public key", EC_PUBLIC_KEY_BYTES);
}

export function checkNewDevice(device: NewDevice): void {
  if (typeof device !== "object" || device === null) throw invalid("device missing");
  checkBytes(device.noiseStaticKey, "noise static key", NOISE_STATIC_KEY_BYTES);
  checkUint32(device.registrationId, "registration id");
  checkBytes(device.identityKey, "identity key", EC_PUBLIC_KEY_BYTES);
  checkSignedPreKey(device.signedPreKey);
  checkKemPreKey(device.lastResortKemPreKey, "last-resort KEM prekey");
}

export function checkPreKeyUpload(upload: PreKeyUpload, maxOneTimePerDevice: number): void {
  if (typeof upload !== "object" || upload === null) throw invalid("prekey upload missing");
  for (const [list, what] of [
    [upload.ecOneTime, "EC"],
    [upload.kemOneTime, "KEM"],
  ] as const) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw invalid(`one-time ${what} prekeys must be an array`);
    if (list.length > maxOneTimePerDevice) {
      throw new StorageError("LIMIT_EXCEEDED", `at most ${maxOneTimePerDevice} one-time ${what} prekeys per device`);
    }
  }
  for (const key of upload.ecOneTime ?? []) checkOneTimePreKey(key);
  for (const key of upload.kemOneTime ?? []) checkKemPreKey(key, "one-time KEM prekey");
  if (upload.signedPreKey !== undefined) checkSignedPreKey(upload.signedPreKey);
  if (upload.lastResortKemPreKey !== undefined) checkKemPreKey(upload.lastResortKemPreKey, "last-resort KEM prekey");
}

export function checkRecipient(r: QueueRecipient): void {
  if (typeof r !== "object" || r === null) throw invalid("recipient missing");
  checkAccountId(r.accountId);
  checkDeviceId(r.deviceId);
  if (r.senderAccountId !== undefined) checkAccountId(r.senderAccountId, "sender account id");
  if (r.senderDeviceId !== undefined) checkDeviceId(r.senderDeviceId, "sender device id");
  if (r.messageId !== undefined && (typeof r.messageId !== "string" || r.messageId.length > MAX_MESSAGE_ID_LENGTH)) {
    throw invalid(`message id must be a string of at most ${MAX_MESSAGE_ID_LENGTH} characters`);
  }
}

export function checkEnvelope(envelope: Uint8Array, maxBytes: number): void {
  checkBytes(envelope, "envelope", undefined, maxBytes);
}

export function checkItems<T>(items: T[], what: string): void {
  if (!Array.isArray(items) || items.length === 0) throw invalid(`${what} must be a non-empty array`);
}

export function checkPrivacy(privacy: PresencePrivacy): void {
  if (privacy !== "everyone" && privacy !== "contacts" && privacy !== "nobody") {
    throw invalid("privacy must be everyone, contacts or nobody");
  }
}

export function checkDeviceList(list: DeviceListBlob): void {
  if (typeof list !== "object" || list === null) throw invalid("device list missing");
  checkNonNegativeInteger(list.version, "device list version");
  checkBytes(list.blob, "device list blob", undefined, MAX_DEVICE_LIST_BYTES);
}

export function checkRegistrationCode(code: string): void {
  if (typeof code !== "string" || code.length === 0 || code.length > MAX_REGISTRATION_CODE_LENGTH) {
    throw invalid(`verification code must be 1 to ${MAX_REGISTRATION_CODE_LENGTH} characters`);
  }
}

export function checkFetchLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw invalid("limit must be an integer in 1..10000");
}

const GROUP_ID = /^[0-9a-f]{32}$/;
export function checkGroupUpdate(u: GroupUpdate): void {
  if (typeof u !== "object" || u === null) throw invalid("group update missing");
  if (typeof u.group !== "string" || !GROUP_ID.test(u.group))
    throw invalid("group id must be 32 lowercase hex characters");
  if (!Number.isInteger(u.version) || u.version < 1) throw invalid("group version must be a positive integer");
  if (typeof u.state !== "string" || u.state.length === 0) throw invalid("group state missing");
  if (!Array.isArray(u.members) || u.members.length > 1024) throw invalid("members must be an array of at most 1024");
  if (new Set(u.members).size !== u.members.length) throw invalid("a member is listed twice");
  for (const m of u.members) checkAccountId(m);
  if (u.inviteHash !== null) checkBytes(u.inviteHash, "inviteHash", 32);
  checkBytes(u.change, "change", undefined, 65_536);
}
