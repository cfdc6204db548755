import type { WireContext } from "../codec/context.ts";
import { PARLEY_EPOCH } from "../codec/limits.ts";
import { readName, writeName } from "../codec/names.ts";
import { readAddress, readNode, writeDevice, writeNode } from "../codec/node.ts";
import type { ByteReader } from "../codec/reader.ts";
import { readStringAtom, writeStringAtom } from "../codec/strings.ts";
import type { ByteWriter } from "../codec/writer.ts";
import { WireError } from "../errors.ts";
import type { Address, DeviceCiphertext, Node } from "./types.ts";

/**
 * A tiny schema language for the typed stanzas: a struct is an ordered list of fields written
 * back to back with no names or tags. A struct whose fields need flag bits starts with a varint
 * "header": one presence bit per optional field, one bit per bool, ceil(log2(n)) bits per n-valued
 * enum, and one bit per message id whose length is not the default 8. A union is a varint variant
 * code followed by the variant's struct. docs/protocol.md describes the same layout for humans.
 */
export type FieldType =
  | "uint" // non-negative safe integer, varint
  | "u32" // 0..2^32-1, varint
  | "int" // safe integer, zigzag varint
  | "time" // seconds since the Unix epoch, zigzag varint of (t - PARLEY_EPOCH)
  | "bool" // header bit
  | "bytes" // varint length + raw
  | "msgid" // 8 raw bytes, or (header bit set) varint length 1..32 + raw
  | "str" // string atom
  | "name" // interned name (user / group id)
  | "addr" // name + device varint
  | "ids" // list of message ids: varint (count*2 + allEight), then 8 bytes each or length-prefixed each
  | "seqs" // list of queue sequence numbers: varint count, first value, zigzag deltas
  | "enc" // per-device ciphertexts: varint count, then name, varint (device*2 + isPkmsg), varint length, body
  | "node" // generic node
  | "nodes" // varint count + generic nodes
  | { enum: readonly string[] }
  | { list: FieldType }
  | { struct: readonly FieldSpec[] }
  | { union: string; variants: readonly VariantSpec[] };

export interface FieldSpec {
  name: string;
  type: FieldType;
  optional?: boolean;
}
export interface VariantSpec {
  tag: string;
  fields: readonly FieldSpec[];
}

const K_UINT = 0;
const K_U32 = 1;
const K_INT = 2;
const K_TIME = 3;
const K_BOOL = 4;
const K_BYTES = 5;
const K_MSGID = 6;
const K_STR = 7;
const K_NAME = 8;
const K_ADDR = 9;
const K_IDS = 10;
const K_SEQS = 11;
const K_ENC = 12;
const K_NODE = 13;
const K_NODES = 14;
const K_ENUM = 15;
const K_LIST = 16;
const K_STRUCT = 17;
const K_UNION = 18;

const PRIMITIVE_KINDS: Record<string, number> = {
  uint: K_UINT,
  u32: K_U32,
  int: K_INT,
  time: K_TIME,
  bool: K_BOOL,
  bytes: K_BYTES,
  msgid: K_MSGID,
  str: K_STR,
  name: K_NAME,
  addr: K_ADDR,
  ids: K_IDS,
  seqs: K_SEQS,
  enc: K_ENC,
  node: K_NODE,
  nodes: K_NODES,
};

export interface CType {
  kind: number;
  enumValues?: readonly string[];
  enumIndex?: Map<string, number>;
  enumBits?: number;
  item?: CType;
  struct?: CStruct;
  union?: CUnion;
}
export interface CField {
  name: string;
  optional: boolean;
  type: CType;
  presenceBit: number;
  valueShift: number;
}
export interface CStruct {
  fields: CField[];
  headerBits: number;
}
export interface CVariant {
  tag: string;
  code: number;
  struct: CStruct;
}
export interface CUnion {
  key: string;
  variants: CVariant[];
  byTag: Map<string, CVariant>;
}

export function compileType(t: FieldType): CType {
  if (typeof t === "string") {
    const kind = PRIMITIVE_KINDS[t];
    if (kind === undefined) throw new Error(`unknown field type ${t}`);
    return { kind };
  }
  if ("enum" in t) {
    const enumIndex = new Map(t.enum.map((v, i) => [v, i]));
    return { kind: K_ENUM, enumValues: t.enum, enumIndex, enumBits: Math.max(1, Math.ceil(Math.log2(t.enum.length))) };
  }
  if ("list" in t) return { kind: K_LIST, item: compileType(t.list) };
  if ("struct" in t) return { kind: K_STRUCT, struct: compileStruct(t.struct) };
  return { kind: K_UNION, union: compileUnion(t.union, t.variants) };
}

export function compileStruct(specs: readonly FieldSpec[]): CStruct {
  let bit = 0;
  const fields = specs.map((spec): CField => {
    const type = compileType(spec.type);
    const presenceBit = spec.optional ? bit++ : -1;
    const valueShift = bit;
    if (type.kind === K_BOOL || type.kind === K_MSGID) bit += 1;
    else if (type.kind === K_ENUM) bit += type.enumBits!;
    return { name: spec.name, optional: spec.optional === true, type, presenceBit, valueShift };
  });
  if (bit > 30) throw new Error("struct header too wide");
  return { fields, headerBits: bit };
}

export function compileUnion(key: string, specs: readonly VariantSpec[]): CUnion {
  const variants = specs.map((v, code) => ({ tag: v.tag, code, struct: compileStruct(v.fields) }));
  return { key, variants, byTag: new Map(variants.map((v) => [v.tag, v])) };
}

// ---------------------------------------------------------------------------------------------
// encoding

type Obj = Record<string, unknown>;

function invalid(message: string): never {
  throw new WireError("INVALID_STANZA", message);
}

const MAX_ZIGZAG_MAGNITUDE = 2 ** 52 - 1;
const MAX_SEQ = 2 ** 51;

function zigzag(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}
function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

function checkUint(v: unknown, name: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) invalid(`${name} must be a non-negative integer`);
  return v;
}
function checkBytes(v: unknown, name: string): Uint8Array {
  if (!(v instanceof Uint8Array)) invalid(`${name} must be a Uint8Array`);
  return v;
}
function checkMsgId(v: unknown, name: string): Uint8Array {
  const id = checkBytes(v, name);
  if (id.length < 1 || id.length > 32) invalid(`${name} must be 1..32 bytes`);
  return id;
}

export function encodeStruct(w: ByteWriter, s: CStruct, obj: Obj, ctx: WireContext | undefined): void {
  const fields = s.fields;
  if (s.headerBits > 0) {
    let header = 0;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      const v = obj[f.name];
      if (v === undefined) continue;
      if (f.optional) header |= 1 << f.presenceBit;
      const kind = f.type.kind;
      if (kind === K_BOOL) {
        if (typeof v !== "boolean") invalid(`${f.name} must be a boolean`);
        if (v) header |= 1 << f.valueShift;
      } else if (kind === K_ENUM) {
        const index = f.type.enumIndex!.get(v as string);
        if (index === undefined) invalid(`${f.name} must be one of ${f.type.enumValues!.join("|")}`);
        header |= index << f.valueShift;
      } else if (kind === K_MSGID) {
        if (checkMsgId(v, f.name).length !== 8) header |= 1 << f.valueShift;
      }
    }
    w.varint(header);
  }
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const v = obj[f.name];
    if (v === undefined) {
      if (f.optional) continue;
      invalid(`missing field ${f.name}`);
    }
    const kind = f.type.kind;
    if (kind === K_BOOL || kind === K_ENUM) continue;
    if (kind === K_MSGID) {
      const id = v as Uint8Array;
      if (id.length !== 8) w.varint(id.length);
      w.raw(id);
      continue;
    }
    encodeValue(w, f.type, v, f.name, ctx);
  }
}

function encodeValue(w: ByteWriter, t: CType, v: unknown, name: string, ctx: WireContext | undefined): void {
  switch (t.kind) {
    case K_UINT:
      w.varint(checkUint(v, name));
      return;
    case K_U32:
      if (checkUint(v, name) > 0xffffffff) invalid(`${name} must fit 32 bits`);
      w.varint(v as number);
      return;
    case K_INT:
      if (typeof v !== "number" || !Number.isSafeInteger(v) || Math.abs(v) > MAX_ZIGZAG_MAGNITUDE) {
        invalid(`${name} must be an integer of magnitude < 2^52`);
      }
      w.varint(zigzag(v));
      return;
    case K_TIME: {
      if (typeof v !== "number" || !Number.isSafeInteger(v)) invalid(`${name} must be integer seconds`);
      const d = v - PARLEY_EPOCH;
      if (Math.abs(d) > MAX_ZIGZAG_MAGNITUDE) invalid(`${name} out of range`);
      w.varint(zigzag(d));
      return;
    }
    case K_BOOL:
      if (typeof v !== "boolean") invalid(`${name} must be a boolean`);
      w.u8(v ? 1 : 0);
      return;
    case K_BYTES: {
      const b = checkBytes(v, name);
      w.varint(b.length);
      w.raw(b);
      return;
    }
    case K_MSGID: {
      const id = checkMsgId(v, name);
      w.varint(id.length);
      w.raw(id);
      return;
    }
    case K_STR:
      if (typeof v !== "string") invalid(`${name} must be a string`);
      writeStringAtom(w, v);
      return;
    case K_NAME:
      if (typeof v !== "string") invalid(`${name} must be a string`);
      writeName(w, v, ctx);
      return;
    case K_ADDR: {
      const a = v as Address;
      if (a === null || typeof a !== "object" || typeof a.user !== "string") invalid(`${name} must be an address`);
      writeName(w, a.user, ctx);
      writeDevice(w, a.device);
      return;
    }
    case K_IDS: {
      if (!Array.isArray(v)) invalid(`${name} must be an array of ids`);
      let allEight = 1;
      for (const id of v) if (checkMsgId(id, name).length !== 8) allEight = 0;
      w.varint(v.length * 2 + allEight);
      for (const id of v as Uint8Array[]) {
        if (!allEight) w.varint(id.length);
        w.raw(id);
      }
      return;
    }
    case K_SEQS: {
      if (!Array.isArray(v)) invalid(`${name} must be an array of sequence numbers`);
      w.varint(v.length);
      let prev = 0;
      for (const s of v) {
        if (checkUint(s, name) > MAX_SEQ) invalid(`${name} entries must be <= 2^51`);
        w.varint(zigzag((s as number) - prev));
        prev = s as number;
      }
      return;
    }
    case K_ENC: {
      if (!Array.isArray(v)) invalid(`${name} must be an array of ciphertexts`);
      w.varint(v.length);
      for (const e of v as DeviceCiphertext[]) {
        if (e === null || typeof e !== "object" || e.to === null || typeof e.to !== "object") {
          invalid(`${name} entries need a 'to' address`);
        }
        if (e.type !== "pkmsg" && e.type !== "msg") invalid(`${name} entry type must be pkmsg or msg`);
        const device = e.to.device;
        if (!Number.isInteger(device) || device < 0 || device > 0xffffffff) invalid(`${name} device must be a uint32`);
        const body = checkBytes(e.body, name);
        writeName(w, e.to.user, ctx);
        w.varint(device * 2 + (e.type === "pkmsg" ? 1 : 0));
        w.varint(body.length);
        w.raw(body);
      }
      return;
    }
    case K_NODE:
      writeNode(w, v as Node, ctx);
      return;
    case K_NODES:
      if (!Array.isArray(v)) invalid(`${name} must be an array of nodes`);
      w.varint(v.length);
      for (const n of v as Node[]) writeNode(w, n, ctx);
      return;
    case K_ENUM: {
      const index = t.enumIndex!.get(v as string);
      if (index === undefined) invalid(`${name} must be one of ${t.enumValues!.join("|")}`);
      w.varint(index);
      return;
    }
    case K_LIST: {
      if (!Array.isArray(v)) invalid(`${name} must be an array`);
      w.varint(v.length);
      for (const item of v) encodeValue(w, t.item!, item, name, ctx);
      return;
    }
    case K_STRUCT:
      if (v === null || typeof v !== "object") invalid(`${name} must be an object`);
      encodeStruct(w, t.struct!, v as Obj, ctx);
      return;
    case K_UNION:
      encodeUnion(w, t.union!, v, ctx);
      return;
  }
}

export function encodeUnion(w: ByteWriter, u: CUnion, v: unknown, ctx: WireContext | undefined): void {
  if (v === null || typeof v !== "object") invalid(`expected an object with '${u.key}'`);
  const tag = (v as Obj)[u.key];
  const variant = typeof tag === "string" ? u.byTag.get(tag) : undefined;
  if (variant === undefined) invalid(`unknown ${u.key} ${JSON.stringify(tag)}`);
  w.varint(variant.code);
  encodeStruct(w, variant.struct, v as Obj, ctx);
}

// ---------------------------------------------------------------------------------------------
// decoding

export function decodeStruct(r: ByteReader, s: CStruct, obj: Obj): Obj {
  const fields = s.fields;
  let header = 0;
  if (s.headerBits > 0) {
    header = r.varint();
    if (header >= 2 ** s.headerBits) throw new WireError("INVALID_STANZA", "unknown header bits set");
  }
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.optional && (header & (1 << f.presenceBit)) === 0) continue;
    const t = f.type;
    switch (t.kind) {
      case K_BOOL:
        obj[f.name] = (header & (1 << f.valueShift)) !== 0;
        break;
      case K_ENUM: {
        const index = (header >>> f.valueShift) & ((1 << t.enumBits!) - 1);
        const value = t.enumValues![index];
        if (value === undefined) throw new WireError("INVALID_STANZA", `bad ${f.name} value ${index}`);
        obj[f.name] = value;
        break;
      }
      case K_MSGID:
        obj[f.name] = (header & (1 << f.valueShift)) !== 0 ? readMsgId(r) : r.take(8);
        break;
      default:
        obj[f.name] = decodeValue(r, t);
    }
  }
  return obj;
}

function readMsgId(r: ByteReader): Uint8Array {
  const n = r.varint();
  if (n < 1 || n > 32) throw new WireError("INVALID_STANZA", "message id must be 1..32 bytes");
  return r.take(n);
}

function decodeValue(r: ByteReader, t: CType): unknown {
  switch (t.kind) {
    case K_UINT:
      return r.varint();
    case K_U32: {
      const v = r.varint();
      if (v > 0xffffffff) throw new WireError("INVALID_STANZA", "value exceeds 32 bits");
      return v;
    }
    case K_INT:
      return unzigzag(r.varint());
    case K_TIME:
      return unzigzag(r.varint()) + PARLEY_EPOCH;
    case K_BOOL: {
      const b = r.u8();
      if (b > 1) throw new WireError("INVALID_STANZA", "bad boolean");
      return b === 1;
    }
    case K_BYTES:
      r.spend(1);
      return r.take(r.length(r.limits.maxBytesLength, "bytes"));
    case K_MSGID:
      return readMsgId(r);
    case K_STR:
      r.spend(1);
      return readStringAtom(r, r.limits.maxStringLength);
    case K_NAME:
      return readName(r);
    case K_ADDR:
      return readAddress(r);
    case K_IDS: {
      const h = r.varint();
      const allEight = h % 2 === 1;
      const n = (h - (h % 2)) / 2;
      if (n > r.limits.maxListLength) throw new WireError("LIMIT_EXCEEDED", `${n} ids`);
      r.need(n * (allEight ? 8 : 2));
      r.spend(n);
      const ids: Uint8Array[] = new Array(n);
      for (let i = 0; i < n; i++) ids[i] = allEight ? r.take(8) : readMsgId(r);
      return ids;
    }
    case K_SEQS: {
      const n = r.count(1, "seqs");
      const seqs: number[] = new Array(n);
      let prev = 0;
      for (let i = 0; i < n; i++) {
        prev += unzigzag(r.varint());
        if (prev < 0 || prev > MAX_SEQ) throw new WireError("INVALID_STANZA", "sequence number out of range");
        seqs[i] = prev;
      }
      return seqs;
    }
    case K_ENC: {
      const n = r.count(3, "enc");
      const entries: DeviceCiphertext[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const user = readName(r);
        const d = r.varint();
        if (d > 0x1ffffffff) throw new WireError("INVALID_STANZA", "device exceeds uint32");
        const body = r.take(r.length(r.limits.maxBytesLength, "ciphertext"));
        entries[i] = { to: { user, device: Math.floor(d / 2) }, type: d % 2 === 1 ? "pkmsg" : "msg", body };
      }
      return entries;
    }
    case K_NODE:
      return readNode(r);
    case K_NODES: {
      const n = r.count(2, "nodes");
      const nodes: Node[] = new Array(n);
      for (let i = 0; i < n; i++) nodes[i] = readNode(r);
      return nodes;
    }
    case K_ENUM: {
      const index = r.varint();
      const value = t.enumValues![index];
      if (value === undefined) throw new WireError("INVALID_STANZA", `bad enum value ${index}`);
      return value;
    }
    case K_LIST: {
      const n = r.count(1, "list");
      const out: unknown[] = new Array(n);
      r.enter();
      for (let i = 0; i < n; i++) out[i] = decodeValue(r, t.item!);
      r.leave();
      return out;
    }
    case K_STRUCT:
      r.enter();
      try {
        return decodeStruct(r, t.struct!, {});
      } finally {
        r.leave();
      }
    case K_UNION:
      return decodeUnion(r, t.union!);
  }
  throw new WireError("INVALID_STANZA", `unsupported field kind ${t.kind}`);
}

export function decodeUnion(r: ByteReader, u: CUnion): Obj {
  const code = r.varint();
  const variant = u.variants[code];
  if (variant === undefined) throw new WireError("UNKNOWN_TYPE", `unknown ${u.key} code ${code}`);
  r.enter();
  const obj: Obj = { [u.key]: variant.tag };
  decodeStruct(r, variant.struct, obj);
  r.leave();
  return obj;
}
