import type { WireContext } from "../codec/context.ts";
import { type DecodeLimits, resolveLimits } from "../codec/limits.ts";
import { readNode, writeNode } from "../codec/node.ts";
import { ByteReader } from "../codec/reader.ts";
import { ByteWriter } from "../codec/writer.ts";
import { WireError } from "../errors.ts";
import { decodeUnion, encodeUnion } from "./schema.ts";
import { STANZA_UNION } from "./schemas.ts";
import type { Node, Stanza } from "./types.ts";
import { validateStanza } from "./validate.ts";

// One reusable output buffer: encoding is synchronous, so it is never shared by two encodes.
const writer = new ByteWriter();

function withWriter(ctx: WireContext | undefined, body: (w: ByteWriter) => void, maxBytes?: number): Uint8Array {
  writer.reset();
  ctx?.begin();
  try {
    body(writer);
  } catch (err) {
    ctx?.rollbackOut();
    throw err instanceof WireError ? err : new WireError("INVALID_STANZA", String(err), { cause: err });
  }
  if (maxBytes !== undefined && writer.pos > maxBytes) {
    // Never sent, so the names it interned must not count: the peer's table would not have them.
    ctx?.rollbackOut();
    throw new WireError("FRAME_TOO_LARGE", `stanza of ${writer.pos} bytes exceeds ${maxBytes}`);
  }
  ctx?.commit();
  return writer.finish();
}

function withReader<T>(
  bytes: Uint8Array,
  limits: Partial<DecodeLimits> | undefined,
  ctx: WireContext | undefined,
  body: (r: ByteReader) => T,
): T {
  if (!(bytes instanceof Uint8Array)) throw new WireError("INVALID_STANZA", "input must be a Uint8Array");
  const resolved = resolveLimits(limits);
  if (bytes.length > resolved.maxStanzaBytes) {
    throw new WireError("FRAME_TOO_LARGE", `${bytes.length} bytes exceeds ${resolved.maxStanzaBytes}`);
  }
  const r = new ByteReader(bytes, resolved, ctx);
  ctx?.begin();
  try {
    const value = body(r);
    if (r.pos !== r.end) throw new WireError("INVALID_STANZA", `${r.end - r.pos} trailing bytes`);
    ctx?.commit();
    return value;
  } catch (err) {
    ctx?.rollbackIn();
    if (err instanceof WireError) throw err;
    // Defensive: any non-WireError escaping the decoder is a bug, but callers still get a typed error.
    throw new WireError("INVALID_STANZA", `decoder failure: ${String(err)}`, { cause: err });
  }
}

/**
 * Encode one stanza. With a WireContext, user and group names are interned per connection (see
 * codec/context.ts for the ordering contract); without one the output is self-contained.
 * Throws WireError("INVALID_STANZA") for a stanza that violates the model.
 */
/**
 * With `maxBytes`, a stanza that encodes larger throws WireError("FRAME_TOO_LARGE") and leaves the
 * context unchanged: pass the connection's maxStanzaSize when encoding with a context.
 */
export function encodeStanza(stanza: Stanza, ctx?: WireContext, maxBytes?: number): Uint8Array {
  return withWriter(
    ctx,
    (w) => {
      validateStanza(stanza);
      encodeUnion(w, STANZA_UNION, stanza, ctx);
    },
    maxBytes,
  );
}

/** Decode one stanza (the whole of `bytes`). Throws WireError for anything malformed or over the limits. */
export function decodeStanza(bytes: Uint8Array, limits?: Partial<DecodeLimits>, ctx?: WireContext): Stanza {
  return withReader(bytes, limits, ctx, (r) => {
    const stanza = decodeUnion(r, STANZA_UNION) as unknown as Stanza;
    validateStanza(stanza);
    return stanza;
  });
}

/** Encode a generic node on its own (the extension form). */
export function encodeNode(node: Node, ctx?: WireContext): Uint8Array {
  return withWriter(ctx, (w) => writeNode(w, node, ctx));
}

export function decodeNode(bytes: Uint8Array, limits?: Partial<DecodeLimits>, ctx?: WireContext): Node {
  return withReader(bytes, limits, ctx, (r) => readNode(r));
}

/**
 * Several stanzas in one transport frame: each as varint length + stanza bytes. Amortizes the
 * per-frame overhead (length prefix + AEAD tag) over a burst of small stanzas.
 */
export function encodeBatch(stanzas: readonly Stanza[], ctx?: WireContext): Uint8Array {
  const parts = stanzas.map((s) => encodeStanza(s, ctx));
  const out = new ByteWriter(parts.reduce((n, p) => n + p.length + 4, 16));
  for (const p of parts) {
    out.varint(p.length);
    out.raw(p);
  }
  return out.finish();
}

export function decodeBatch(bytes: Uint8Array, limits?: Partial<DecodeLimits>, ctx?: WireContext): Stanza[] {
  const resolved = resolveLimits(limits);
  if (bytes.length > resolved.maxStanzaBytes) {
    throw new WireError("FRAME_TOO_LARGE", `${bytes.length} bytes exceeds ${resolved.maxStanzaBytes}`);
  }
  const r = new ByteReader(bytes, resolved, undefined);
  const out: Stanza[] = [];
  while (r.pos < r.end) {
    if (out.length >= resolved.maxListLength) throw new WireError("LIMIT_EXCEEDED", "too many stanzas in batch");
    const n = r.length(resolved.maxStanzaBytes, "stanza");
    r.need(n);
    out.push(decodeStanza(bytes.subarray(r.pos, r.pos + n), resolved, ctx));
    r.pos += n;
  }
  return out;
}
