// The plaintext inside every end-to-end encrypted message: what the server
// never sees. Versioned, and padded (0x80 then zeros to a multiple of 160
// bytes, as Signal does) so ciphertext length leaks little about the text.
export interface MessageContent {
  /** Text body (the caption for an attachment). */
  text: string;
  /** Sender's clock when composed, ms. */
  sentAt: number;
  /** An attachment: the encoded MediaDescriptor (pointer, media key, hashes; see media/descriptor.ts). */
  media?: Uint8Array;
  /** Multi-device history transfer: `media` is the history bundle for our own device with this id. */
  historyFor?: number;
  /** Group content: the group it belongs to (checked against the delivery, so the server cannot move it). */
  group?: string;
  /** A sender-key distribution message for `group` (sent pairwise to each member device that lacks it). */
  senderKey?: Uint8Array;
  /** Only `senderKey`, no message: nothing to show. */
  keyOnly?: boolean;
}

const toB64 = (b: Uint8Array) => {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
};
const fromB64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

const PAD_BLOCK = 160;
const MAX_CONTENT_BYTES = 256 * 1024;

export class PayloadError extends Error {
  override readonly name = "PayloadError";
  readonly code = "BAD_PAYLOAD";
}

export function encodeContent(content: MessageContent): Uint8Array {
  const json = new TextEncoder().encode(
    JSON.stringify({
      v: 1,
      t: content.text,
      s: content.sentAt,
      ...(content.media ? { m: toB64(content.media) } : {}),
      ...(content.historyFor !== undefined ? { h: content.historyFor } : {}),
      ...(content.group !== undefined ? { g: content.group } : {}),
      ...(content.senderKey ? { k: toB64(content.senderKey) } : {}),
      ...(content.keyOnly ? { o: 1 } : {}),
    }),
  );
  const padded = new Uint8Array(Math.ceil((json.length + 1) / PAD_BLOCK) * PAD_BLOCK);
  padded.set(json);
  padded[json.length] = 0x80;
  return padded;
}

export function decodeContent(bytes: Uint8Array): MessageContent {
  if (bytes.length > MAX_CONTENT_BYTES) throw new PayloadError("message content too large");
  let end = bytes.length - 1;
  while (end >= 0 && bytes[end] === 0) end--;
  if (end < 0 || bytes[end] !== 0x80) throw new PayloadError("bad padding in message content");
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end)));
  } catch {
    throw new PayloadError("message content is not valid JSON");
  }
  const p = parsed as {
    v?: unknown;
    t?: unknown;
    s?: unknown;
    m?: unknown;
    h?: unknown;
    g?: unknown;
    k?: unknown;
    o?: unknown;
  };
  if (p.g !== undefined && (typeof p.g !== "string" || !/^[0-9a-f]{32}$/.test(p.g)))
    throw new PayloadError("message content has a malformed group id");
  if (p.k !== undefined && typeof p.k !== "string")
    throw new PayloadError("message content has a malformed sender key");
  if (p.o !== undefined && p.o !== 1) throw new PayloadError("message content has a malformed key-only flag");
  if (p.h !== undefined && (typeof p.h !== "number" || !Number.isInteger(p.h) || p.h < 0)) {
    throw new PayloadError("message content has a malformed history target");
  }
  if (p.v !== 1 || typeof p.t !== "string" || typeof p.s !== "number" || !Number.isFinite(p.s)) {
    throw new PayloadError("message content has an unknown shape");
  }
  if (p.m !== undefined && typeof p.m !== "string")
    throw new PayloadError("message content has a malformed attachment");
  let media: Uint8Array | undefined;
  if (typeof p.m === "string") {
    try {
      media = fromB64(p.m);
    } catch {
      throw new PayloadError("message content has a malformed attachment");
    }
  }
  let senderKey: Uint8Array | undefined;
  if (typeof p.k === "string") {
    try {
      senderKey = fromB64(p.k);
    } catch {
      throw new PayloadError("message content has a malformed sender key");
    }
  }
  return {
    text: p.t,
    sentAt: p.s,
    ...(media ? { media } : {}),
    ...(typeof p.h === "number" ? { historyFor: p.h } : {}),
    ...(typeof p.g === "string" ? { group: p.g } : {}),
    ...(senderKey ? { senderKey } : {}),
    ...(p.o === 1 ? { keyOnly: true } : {}),
  };
}
