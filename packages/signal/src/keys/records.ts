// Byte encodings of the private prekey records, for stores that persist them.
//
// prekey        := u8 format(=1) ‖ u32 id ‖ public(32) ‖ private(32)
// signed prekey := u8 format(=1) ‖ u32 id ‖ f64 timestamp ‖ public(32) ‖ private(32) ‖ signature(64)
// KEM prekey    := u8 format(=1) ‖ u32 id ‖ f64 timestamp ‖ u8 type ‖ u8 lastResort
//                  ‖ public(1568) ‖ secret(3168) ‖ signature(64)

import { ByteReader, ByteWriter } from "../session/codec.ts";
import { KEM_TYPE_KYBER1024, KEM_TYPE_MLKEM1024, type KemType } from "./kem.ts";
import type { KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord } from "./prekeys.ts";

const FORMAT = 1;

function f64(w: ByteWriter, value: number): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, value);
  w.raw(b);
}

function readF64(r: ByteReader): number {
  const b = r.raw(8);
  return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0);
}

function header(r: ByteReader): void {
  if (r.u8() !== FORMAT) r.fail("unknown format");
}

export function serializePreKeyRecord(record: PreKeyRecord): Uint8Array {
  return new ByteWriter(69)
    .u8(FORMAT)
    .u32(record.id)
    .raw(record.keyPair.publicKey)
    .raw(record.keyPair.privateKey)
    .finish();
}

export function deserializePreKeyRecord(bytes: Uint8Array): PreKeyRecord {
  const r = new ByteReader(bytes, "INVALID_RECORD", "prekey record");
  header(r);
  const id = r.u32();
  const publicKey = r.raw(32);
  const privateKey = r.raw(32);
  r.end();
  return { id, keyPair: { publicKey, privateKey } };
}

export function serializeSignedPreKeyRecord(record: SignedPreKeyRecord): Uint8Array {
  const w = new ByteWriter(141).u8(FORMAT).u32(record.id);
  f64(w, record.timestamp);
  return w.raw(record.keyPair.publicKey).raw(record.keyPair.privateKey).raw(record.signature).finish();
}

export function deserializeSignedPreKeyRecord(bytes: Uint8Array): SignedPreKeyRecord {
  const r = new ByteReader(bytes, "INVALID_RECORD", "signed prekey record");
  header(r);
  const id = r.u32();
  const timestamp = readF64(r);
  const publicKey = r.raw(32);
  const privateKey = r.raw(32);
  const signature = r.raw(64);
  r.end();
  return { id, timestamp, keyPair: { publicKey, privateKey }, signature };
}

export function serializeKyberPreKeyRecord(record: KyberPreKeyRecord): Uint8Array {
  const w = new ByteWriter(4900).u8(FORMAT).u32(record.id);
  f64(w, record.timestamp);
  w.u8(record.keyPair.type).u8(record.lastResort ? 1 : 0);
  return w.raw(record.keyPair.publicKey).raw(record.keyPair.secretKey).raw(record.signature).finish();
}

export function deserializeKyberPreKeyRecord(bytes: Uint8Array): KyberPreKeyRecord {
  const r = new ByteReader(bytes, "INVALID_RECORD", "KEM prekey record");
  header(r);
  const id = r.u32();
  const timestamp = readF64(r);
  const type = r.u8();
  if (type !== KEM_TYPE_KYBER1024 && type !== KEM_TYPE_MLKEM1024) r.fail("unknown KEM type");
  const lastResort = r.u8();
  if (lastResort > 1) r.fail("bad last-resort flag");
  const publicKey = r.raw(1568);
  const secretKey = r.raw(3168);
  const signature = r.raw(64);
  r.end();
  return {
    id,
    timestamp,
    keyPair: { type: type as KemType, publicKey, secretKey },
    signature,
    lastResort: lastResort === 1,
  };
}
