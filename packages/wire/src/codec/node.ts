import { WireError } from "../errors.ts";
import type { Address, AttrValue, Node } from "../stanza/types.ts";
import type { WireContext } from "./context.ts";
import { readName, writeName } from "./names.ts";
import type { ByteReader } from "./reader.ts";
import { readStringAtomAfter, writeStringAtom } from "./strings.ts";
import type { ByteWriter } from "./writer.ts";

/**
 * Generic node:  tag:string-atom  h:varint  (name:string-atom value:value-atom){h >> 2}  content
 * where h & 3 is the content kind: 0 none, 1 bytes (varint length + raw), 2 string (string atom),
 * 3 children (varint count + nodes).
 * Value atoms: any string atom, or
 *   0xF4 non-negative integer (varint)   0xF5 negative integer -(varint)-1
 *   0xF6 bytes (varint length + raw)      0xF7 address (name, device varint)
 */
export const VALUE_UINT = 0xf4;
export const VALUE_NEGATIVE = 0xf5;
export const VALUE_BYTES = 0xf6;
export const VALUE_ADDRESS = 0xf7;

const CONTENT_NONE = 0;
const CONTENT_BYTES = 1;
const CONTENT_STRING = 2;
const CONTENT_CHILDREN = 3;

const FORBIDDEN_ATTR = "__proto__";

export function writeNode(w: ByteWriter, node: Node, ctx: WireContext | undefined, depth = 0): void {
  if (depth > 64) throw new WireError("INVALID_STANZA", "node nesting too deep");
  if (node === null || typeof node !== "object" || typeof node.tag !== "string") {
    throw new WireError("INVALID_STANZA", "node needs a string tag");
  }
  const attrs = node.attrs ?? {};
  const names = Object.keys(attrs);
  const content = node.content;
  let kind = CONTENT_NONE;
  if (content instanceof Uint8Array) kind = CONTENT_BYTES;
  else if (typeof content === "string") kind = CONTENT_STRING;
  else if (Array.isArray(content)) kind = CONTENT_CHILDREN;
  else if (content !== undefined) throw new WireError("INVALID_STANZA", "node content must be bytes, string or nodes");
  writeStringAtom(w, node.tag);
  w.varint(names.length * 4 + kind);
  for (const name of names) {
    if (name === FORBIDDEN_ATTR) throw new WireError("INVALID_STANZA", "attribute name __proto__ is reserved");
    writeStringAtom(w, name);
    writeValue(w, attrs[name] as AttrValue, ctx);
  }
  if (kind === CONTENT_BYTES) {
    const bytes = content as Uint8Array;
    w.varint(bytes.length);
    w.raw(bytes);
  } else if (kind === CONTENT_STRING) {
    writeStringAtom(w, content as string);
  } else if (kind === CONTENT_CHILDREN) {
    const children = content as Node[];
    w.varint(children.length);
    for (const child of children) writeNode(w, child, ctx, depth + 1);
  }
}

function writeValue(w: ByteWriter, v: AttrValue, ctx: WireContext | undefined): void {
  if (typeof v === "string") writeStringAtom(w, v);
  else if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new WireError("INVALID_STANZA", "numeric attribute must be a safe integer");
    if (v >= 0) {
      w.u8(VALUE_UINT);
      w.varint(v);
    } else {
      w.u8(VALUE_NEGATIVE);
      w.varint(-v - 1);
    }
  } else if (v instanceof Uint8Array) {
    w.u8(VALUE_BYTES);
    w.varint(v.length);
    w.raw(v);
  } else if (v !== null && typeof v === "object" && typeof v.user === "string") {
    w.u8(VALUE_ADDRESS);
    writeName(w, v.user, ctx);
    writeDevice(w, v.device);
  } else throw new WireError("INVALID_STANZA", "attribute value must be string, integer, bytes or address");
}

export function writeDevice(w: ByteWriter, device: number): void {
  if (!Number.isInteger(device) || device < 0 || device > 0xffffffff) {
    throw new WireError("INVALID_STANZA", "device must be a uint32");
  }
  w.varint(device);
}

export function readDevice(r: ByteReader): number {
  const d = r.varint();
  if (d > 0xffffffff) throw new WireError("INVALID_STANZA", "device exceeds uint32");
  return d;
}

export function readAddress(r: ByteReader): Address {
  const user = readName(r);
  return { user, device: readDevice(r) };
}

function readValue(r: ByteReader): AttrValue {
  const b = r.u8();
  switch (b) {
    case VALUE_UINT:
      return r.varint();
    case VALUE_NEGATIVE: {
      const m = r.varint();
      if (m >= Number.MAX_SAFE_INTEGER) throw new WireError("BAD_VARINT", "negative integer out of range");
      return -m - 1;
    }
    case VALUE_BYTES:
      return r.take(r.length(r.limits.maxBytesLength, "bytes"));
    case VALUE_ADDRESS:
      return readAddress(r);
  }
  return readStringAtomAfter(r, b, r.limits.maxStringLength);
}

export function readNode(r: ByteReader): Node {
  r.enter();
  r.spend(1);
  const tag = readStringAtomAfter(r, r.u8(), r.limits.maxStringLength);
  const h = r.varint();
  const kind = h % 4;
  const attrCount = (h - kind) / 4;
  if (attrCount > r.limits.maxAttrs) throw new WireError("LIMIT_EXCEEDED", `${attrCount} attributes`);
  if (attrCount * 2 > r.remaining()) throw new WireError("TRUNCATED", "attributes cannot fit");
  r.spend(attrCount);
  const attrs: Record<string, AttrValue> = {};
  for (let i = 0; i < attrCount; i++) {
    const name = readStringAtomAfter(r, r.u8(), r.limits.maxStringLength);
    if (name === FORBIDDEN_ATTR || Object.hasOwn(attrs, name)) {
      throw new WireError("INVALID_STANZA", `duplicate or reserved attribute ${JSON.stringify(name)}`);
    }
    attrs[name] = readValue(r);
  }
  const node: Node = { tag, attrs };
  if (kind === CONTENT_BYTES) node.content = r.take(r.length(r.limits.maxBytesLength, "content"));
  else if (kind === CONTENT_STRING) node.content = readStringAtomAfter(r, r.u8(), r.limits.maxStringLength);
  else if (kind === CONTENT_CHILDREN) {
    const n = r.count(2, "children");
    const children: Node[] = new Array(n);
    for (let i = 0; i < n; i++) children[i] = readNode(r);
    node.content = children;
  }
  r.leave();
  return node;
}
