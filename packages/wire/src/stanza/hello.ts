import { type DecodeLimits, resolveLimits } from "../codec/limits.ts";
import { ByteReader } from "../codec/reader.ts";
import { ByteWriter } from "../codec/writer.ts";
import { WireError } from "../errors.ts";
import { decodeStruct, decodeUnion, encodeStruct, encodeUnion } from "./schema.ts";
import { CLIENT_HELLO_STRUCT, SERVER_HELLO_UNION } from "./schemas.ts";
import type { ClientHello, ServerHello } from "./types.ts";

/** Login payloads travel inside Noise handshake messages; they are small and never use interning. */
const HELLO_LIMITS: Partial<DecodeLimits> = { maxStanzaBytes: 4096, maxDepth: 4 };

function encode(body: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter(128);
  try {
    body(w);
  } catch (err) {
    throw err instanceof WireError ? err : new WireError("INVALID_STANZA", String(err), { cause: err });
  }
  return w.finish();
}

function decode<T>(bytes: Uint8Array, body: (r: ByteReader) => T): T {
  if (!(bytes instanceof Uint8Array)) throw new WireError("INVALID_STANZA", "input must be a Uint8Array");
  const limits = resolveLimits(HELLO_LIMITS);
  if (bytes.length > limits.maxStanzaBytes) throw new WireError("FRAME_TOO_LARGE", "hello payload too large");
  const r = new ByteReader(bytes, limits);
  try {
    const value = body(r);
    if (r.pos !== r.end) throw new WireError("INVALID_STANZA", "trailing bytes after hello");
    return value;
  } catch (err) {
    if (err instanceof WireError) throw err;
    throw new WireError("INVALID_STANZA", `decoder failure: ${String(err)}`, { cause: err });
  }
}

export function encodeClientHello(hello: ClientHello): Uint8Array {
  return encode((w) => {
    if (hello.device !== "registering" && typeof hello.device !== "number") {
      throw new WireError("INVALID_STANZA", "device must be a number or 'registering'");
    }
    const { device, ...rest } = hello;
    encodeStruct(w, CLIENT_HELLO_STRUCT, device === "registering" ? rest : { ...rest, device }, undefined);
  });
}

export function decodeClientHello(bytes: Uint8Array): ClientHello {
  return decode(bytes, (r) => {
    const obj = decodeStruct(r, CLIENT_HELLO_STRUCT, {});
    if (obj.device === undefined) obj.device = "registering";
    return obj as unknown as ClientHello;
  });
}

export function encodeServerHello(hello: ServerHello): Uint8Array {
  return encode((w) => encodeUnion(w, SERVER_HELLO_UNION, hello, undefined));
}

export function decodeServerHello(bytes: Uint8Array): ServerHello {
  return decode(bytes, (r) => decodeUnion(r, SERVER_HELLO_UNION) as unknown as ServerHello);
}
