import { WireError } from "../errors.ts";
import { MAX_INTERNED_NAME_LENGTH, type WireContext } from "./context.ts";
import type { ByteReader } from "./reader.ts";
import { readStringAtom, writeStringAtom } from "./strings.ts";
import type { ByteWriter } from "./writer.ts";

/**
 * Names (users, group ids): varint h, then
 *   h even     → reference to interned slot h >> 1 (needs the connection's WireContext)
 *   h = 1      → literal string atom
 *   h = 3      → literal string atom, and insert it into the next interning slot
 * Anything else is BAD_TOKEN.
 */
export const NAME_LITERAL = 1;
export const NAME_LITERAL_INSERT = 3;

export function writeName(w: ByteWriter, name: string, ctx: WireContext | undefined): void {
  if (typeof name !== "string" || name.length === 0)
    throw new WireError("INVALID_STANZA", "name must be a non-empty string");
  if (ctx !== undefined) {
    const slot = ctx.lookupOut(name);
    if (slot !== undefined) {
      w.varint(slot << 1);
      return;
    }
    if (name.length <= MAX_INTERNED_NAME_LENGTH) {
      w.u8(NAME_LITERAL_INSERT);
      writeStringAtom(w, name);
      ctx.insertOut(name);
      return;
    }
  }
  w.u8(NAME_LITERAL);
  writeStringAtom(w, name);
}

export function readName(r: ByteReader): string {
  const h = r.varint();
  if ((h & 1) === 0) {
    if (r.ctx === undefined) throw new WireError("BAD_TOKEN", "name reference without a connection context");
    return r.ctx.lookupIn(h / 2);
  }
  if (h !== NAME_LITERAL && h !== NAME_LITERAL_INSERT) throw new WireError("BAD_TOKEN", `bad name header ${h}`);
  const name = readStringAtom(r, r.limits.maxNameLength);
  if (name.length === 0) throw new WireError("INVALID_STANZA", "empty name");
  if (h === NAME_LITERAL_INSERT && r.ctx !== undefined) {
    if (name.length > MAX_INTERNED_NAME_LENGTH) throw new WireError("LIMIT_EXCEEDED", "interned name too long");
    r.ctx.insertIn(name);
  }
  return name;
}
