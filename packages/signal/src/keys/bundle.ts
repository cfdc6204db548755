// What the server hands out (PreKeyBundle) and what a device uploads
// (PreKeyUpload), with Parley's compact byte encodings. All keys here are in
// their serialized, signed forms: EC keys 33 bytes (0x05 ‖ key), KEM keys
// 1569 bytes (type ‖ key), signatures 64 bytes.
//
// bundle := u8 format(=1) ‖ u32 registrationId ‖ u32 deviceId ‖ identityKey(33)
//           ‖ u32 signedPreKeyId ‖ signedPreKey(33) ‖ signature(64) ‖ u8 flags
//           ‖ [u32 preKeyId ‖ preKey(33)]                                   (flags bit 0)
//           ‖ [u32 kyberPreKeyId ‖ u16 len ‖ kyberPreKey ‖ signature(64)]   (flags bit 1)
// upload := u8 format(=1) ‖ u32 registrationId ‖ identityKey(33) ‖ u8 flags
//           ‖ [signed prekey: u32 id ‖ key(33) ‖ sig(64)]                   (flags bit 0)
//           ‖ [last-resort KEM: u32 id ‖ u16 len ‖ key ‖ sig(64)]            (flags bit 1)
//           ‖ u16 n ‖ n × (u32 id ‖ key(33))
//           ‖ u16 m ‖ m × (u32 id ‖ u16 len ‖ key ‖ sig(64))

import { encodePublicKey } from "../curve/index.ts";
import { ByteReader, ByteWriter } from "../session/codec.ts";
import { serializeKemPublicKey } from "./kem.ts";
import type { KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord } from "./prekeys.ts";

export interface PublicPreKey {
  id: number;
  /** 33-byte serialized public key. */
  publicKey: Uint8Array;
}

export interface PublicSignedPreKey extends PublicPreKey {
  signature: Uint8Array;
}

export interface PublicKyberPreKey {
  id: number;
  /** Serialized KEM public key: type byte (0x0a ML-KEM-1024 or 0x08 Kyber1024) ‖ 1568 bytes. */
  publicKey: Uint8Array;
  signature: Uint8Array;
}

export interface PreKeyBundle {
  registrationId: number;
  deviceId: number;
  /** 33-byte serialized identity key. */
  identityKey: Uint8Array;
  signedPreKey: PublicSignedPreKey;
  preKey?: PublicPreKey | undefined;
  kyberPreKey?: PublicKyberPreKey | undefined;
}

export interface PreKeyUpload {
  registrationId: number;
  identityKey: Uint8Array;
  signedPreKey?: PublicSignedPreKey | undefined;
  lastResortKyberPreKey?: PublicKyberPreKey | undefined;
  preKeys: PublicPreKey[];
  kyberPreKeys: PublicKyberPreKey[];
}

/** Most prekeys one upload may carry (bounds decoding of hostile input). */
export const MAX_PREKEYS_PER_UPLOAD = 1000;
const FORMAT = 1;
const MAX_KEM_KEY = 1 + 1568;

export function publicPreKey(record: PreKeyRecord): PublicPreKey {
  return { id: record.id, publicKey: encodePublicKey(record.keyPair.publicKey) };
}

export function publicSignedPreKey(record: SignedPreKeyRecord): PublicSignedPreKey {
  return { id: record.id, publicKey: encodePublicKey(record.keyPair.publicKey), signature: record.signature };
}

export function publicKyberPreKey(record: KyberPreKeyRecord): PublicKyberPreKey {
  return {
    id: record.id,
    publicKey: serializeKemPublicKey(record.keyPair.type, record.keyPair.publicKey),
    signature: record.signature,
  };
}

function writeKyber(w: ByteWriter, k: PublicKyberPreKey): void {
  w.u32(k.id).bytes16(k.publicKey).raw(k.signature);
}

function readKyber(r: ByteReader): PublicKyberPreKey {
  const id = r.u32();
  const publicKey = r.bytes16(MAX_KEM_KEY);
  return { id, publicKey, signature: r.raw(64) };
}

function checkLengths(w: { identityKey: Uint8Array }, ...keys: (PublicPreKey | undefined)[]): void {
  if (w.identityKey.length !== 33) throw new RangeError("identity key must be 33 bytes");
  for (const k of keys) if (k && k.publicKey.length !== 33) throw new RangeError("EC prekey must be 33 bytes");
}

export function encodePreKeyBundle(bundle: PreKeyBundle): Uint8Array {
  checkLengths(bundle, bundle.signedPreKey, bundle.preKey);
  const w = new ByteWriter(256 + (bundle.kyberPreKey ? 1640 : 0));
  w.u8(FORMAT).u32(bundle.registrationId).u32(bundle.deviceId).raw(bundle.identityKey);
  w.u32(bundle.signedPreKey.id).raw(bundle.signedPreKey.publicKey).raw(bundle.signedPreKey.signature);
  w.u8((bundle.preKey ? 1 : 0) | (bundle.kyberPreKey ? 2 : 0));
  if (bundle.preKey) w.u32(bundle.preKey.id).raw(bundle.preKey.publicKey);
  if (bundle.kyberPreKey) writeKyber(w, bundle.kyberPreKey);
  return w.finish();
}

/** Decode a bundle; structure only (signatures are checked by processPreKeyBundle). */
export function decodePreKeyBundle(bytes: Uint8Array): PreKeyBundle {
  const r = new ByteReader(bytes, "INVALID_MESSAGE", "prekey bundle");
  if (r.u8() !== FORMAT) r.fail("unknown format");
  const registrationId = r.u32();
  const deviceId = r.u32();
  const identityKey = r.raw(33);
  const signedPreKey = { id: r.u32(), publicKey: r.raw(33), signature: r.raw(64) };
  const flags = r.u8();
  if (flags & ~3) r.fail("unknown flags");
  const preKey = flags & 1 ? { id: r.u32(), publicKey: r.raw(33) } : undefined;
  const kyberPreKey = flags & 2 ? readKyber(r) : undefined;
  r.end();
  return { registrationId, deviceId, identityKey, signedPreKey, preKey, kyberPreKey };
}

export function encodePreKeyUpload(upload: PreKeyUpload): Uint8Array {
  checkLengths(upload, upload.signedPreKey, ...upload.preKeys);
  if (upload.preKeys.length > MAX_PREKEYS_PER_UPLOAD || upload.kyberPreKeys.length > MAX_PREKEYS_PER_UPLOAD) {
    throw new RangeError(`at most ${MAX_PREKEYS_PER_UPLOAD} prekeys of each kind per upload`);
  }
  const w = new ByteWriter(256 + upload.preKeys.length * 37 + (upload.kyberPreKeys.length + 1) * 1640);
  w.u8(FORMAT).u32(upload.registrationId).raw(upload.identityKey);
  w.u8((upload.signedPreKey ? 1 : 0) | (upload.lastResortKyberPreKey ? 2 : 0));
  if (upload.signedPreKey) {
    w.u32(upload.signedPreKey.id).raw(upload.signedPreKey.publicKey).raw(upload.signedPreKey.signature);
  }
  if (upload.lastResortKyberPreKey) writeKyber(w, upload.lastResortKyberPreKey);
  w.u16(upload.preKeys.length);
  for (const k of upload.preKeys) w.u32(k.id).raw(k.publicKey);
  w.u16(upload.kyberPreKeys.length);
  for (const k of upload.kyberPreKeys) writeKyber(w, k);
  return w.finish();
}

export function decodePreKeyUpload(bytes: Uint8Array): PreKeyUpload {
  const r = new ByteReader(bytes, "INVALID_MESSAGE", "prekey upload");
  if (r.u8() !== FORMAT) r.fail("unknown format");
  const registrationId = r.u32();
  const identityKey = r.raw(33);
  const flags = r.u8();
  if (flags & ~3) r.fail("unknown flags");
  const signedPreKey = flags & 1 ? { id: r.u32(), publicKey: r.raw(33), signature: r.raw(64) } : undefined;
  const lastResortKyberPreKey = flags & 2 ? readKyber(r) : undefined;
  const n = r.u16();
  if (n > MAX_PREKEYS_PER_UPLOAD) r.fail("too many prekeys");
  const preKeys: PublicPreKey[] = [];
  for (let i = 0; i < n; i++) preKeys.push({ id: r.u32(), publicKey: r.raw(33) });
  const m = r.u16();
  if (m > MAX_PREKEYS_PER_UPLOAD) r.fail("too many KEM prekeys");
  const kyberPreKeys: PublicKyberPreKey[] = [];
  for (let i = 0; i < m; i++) kyberPreKeys.push(readKyber(r));
  r.end();
  return { registrationId, identityKey, signedPreKey, lastResortKyberPreKey, preKeys, kyberPreKeys };
}
