// What the E2E message carries about an attachment: where the encrypted blob is, the key to it,
// and the hashes that make any change to it detectable. Encoded as a compact binary record:
//   version(1) then fields: tag(1) ‖ length(LEB128) ‖ value, each tag at most once.
// Decoding is strict: unknown tags, duplicates, bad lengths or out-of-range values are
// MediaError("BAD_DESCRIPTOR"); a new field means a new version byte.
import { MediaError } from "./errors.ts";
import { MEDIA_KEY_LENGTH, MEDIA_TYPES, type MediaType } from "./keys.ts";

export interface MediaPointer {
  /** The content store's id: 43 base64url characters (32 random bytes), the download capability. */
  blobId: string;
  /** Base URL of the content store, e.g. "https://chat.example.org" (the blob is at <serverUrl>/media/<blobId>). */
  serverUrl: string;
}

export interface MediaDescriptor {
  pointer: MediaPointer;
  /** Selects the key schedule's info string. */
  type: MediaType;
  /** 32 random bytes; the only secret. */
  mediaKey: Uint8Array;
  /** SHA-256 of the blob as stored (ciphertext ‖ MAC). */
  fileEncSha256: Uint8Array;
  /** SHA-256 of the plaintext file. */
  fileSha256: Uint8Array;
  mime: string;
  /** Plaintext size in bytes. */
  size: number;
  /** Name to save the file under (may be empty, e.g. for a photo). */
  fileName: string;
  width?: number;
  height?: number;
  durationSec?: number;
  /** A small inline preview (JPEG/PNG bytes), at most MAX_THUMBNAIL_BYTES. */
  thumbnail?: Uint8Array;
  /** Voice notes: 64 amplitude values 0..100. */
  waveform?: Uint8Array;
}

export const DESCRIPTOR_VERSION = 1;
export const MAX_THUMBNAIL_BYTES = 4096;
export const WAVEFORM_LENGTH = 64;
const MAX_DESCRIPTOR_BYTES = 8192;
const MAX_URL_LENGTH = 2048;
const MAX_FILE_NAME_BYTES = 255;
const MAX_MIME_LENGTH = 255;
const MAX_DIMENSION = 1_000_000;
const MAX_DURATION_SEC = 10 * 365 * 86_400;
const BLOB_ID = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

const Tag = {
  BlobId: 1,
  ServerUrl: 2,
  Type: 3,
  MediaKey: 4,
  FileEncSha256: 5,
  FileSha256: 6,
  Mime: 7,
  Size: 8,
  FileName: 9,
  Width: 10,
  Height: 11,
  DurationSec: 12,
  Thumbnail: 13,
  Waveform: 14,
} as const;
type Tag = (typeof Tag)[keyof typeof Tag];
const REQUIRED = [1, 2, 3, 4, 5, 6, 7, 8, 9];

function bad(message: string): MediaError {
  return new MediaError("BAD_DESCRIPTOR", message);
}

function isUint(n: unknown, max: number): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 && n <= max;
}

function bytesOf(v: unknown, length: number | [number, number], what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${what} must be bytes`);
  const [min, max] = typeof length === "number" ? [length, length] : length;
  if (v.length < min || v.length > max) throw bad(`${what} must be ${min === max ? min : `${min}..${max}`} bytes`);
  return v;
}

/** Checks every field; throws MediaError("BAD_DESCRIPTOR") naming the first bad one. */
export function validateMediaDescriptor(d: MediaDescriptor): MediaDescriptor {
  if (typeof d !== "object" || d === null) throw bad("descriptor must be an object");
  if (typeof d.pointer?.blobId !== "string" || !BLOB_ID.test(d.pointer.blobId)) throw bad("malformed blob id");
  const url = d.pointer.serverUrl;
  if (typeof url !== "string" || url.length > MAX_URL_LENGTH || !/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(url)) {
    throw bad("server URL must be an http(s) URL without query or fragment");
  }
  if (!MEDIA_TYPES.includes(d.type)) throw bad("unknown media type");
  bytesOf(d.mediaKey, MEDIA_KEY_LENGTH, "media key");
  bytesOf(d.fileEncSha256, 32, "fileEncSha256");
  bytesOf(d.fileSha256, 32, "fileSha256");
  if (typeof d.mime !== "string" || d.mime.length > MAX_MIME_LENGTH || !MIME.test(d.mime))
    throw bad("malformed MIME type");
  if (!isUint(d.size, Number.MAX_SAFE_INTEGER)) throw bad("size must be a whole number of bytes");
  if (typeof d.fileName !== "string" || new TextEncoder().encode(d.fileName).length > MAX_FILE_NAME_BYTES) {
    throw bad(`file name must be a string of at most ${MAX_FILE_NAME_BYTES} bytes`);
  }
  for (const k of ["width", "height"] as const) {
    if (d[k] !== undefined && !isUint(d[k], MAX_DIMENSION)) throw bad(`${k} out of range`);
  }
  if (d.durationSec !== undefined && !isUint(d.durationSec, MAX_DURATION_SEC)) throw bad("duration out of range");
  if (d.thumbnail !== undefined) bytesOf(d.thumbnail, [1, MAX_THUMBNAIL_BYTES], "thumbnail");
  if (d.waveform !== undefined) {
    bytesOf(d.waveform, WAVEFORM_LENGTH, "waveform");
    if (d.waveform.some((v) => v > 100)) throw bad("waveform values are 0..100");
  }
  return d;
}

// ------------------------------------------------------------------ encoding

class Writer {
  private readonly parts: number[] = [];
  byte(b: number): void {
    this.parts.push(b);
  }
  varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }
  field(tag: Tag, value: Uint8Array): void {
    this.byte(tag);
    this.varint(value.length);
    for (const b of value) this.parts.push(b);
  }
  uintField(tag: Tag, n: number): void {
    const w = new Writer();
    w.varint(n);
    this.field(tag, w.bytes());
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export function encodeMediaDescriptor(descriptor: MediaDescriptor): Uint8Array {
  const d = validateMediaDescriptor(descriptor);
  const text = (s: string) => new TextEncoder().encode(s);
  const w = new Writer();
  w.byte(DESCRIPTOR_VERSION);
  w.field(Tag.BlobId, text(d.pointer.blobId));
  w.field(Tag.ServerUrl, text(d.pointer.serverUrl));
  w.field(Tag.Type, Uint8Array.of(MEDIA_TYPES.indexOf(d.type)));
  w.field(Tag.MediaKey, d.mediaKey);
  w.field(Tag.FileEncSha256, d.fileEncSha256);
  w.field(Tag.FileSha256, d.fileSha256);
  w.field(Tag.Mime, text(d.mime));
  w.uintField(Tag.Size, d.size);
  w.field(Tag.FileName, text(d.fileName));
  if (d.width !== undefined) w.uintField(Tag.Width, d.width);
  if (d.height !== undefined) w.uintField(Tag.Height, d.height);
  if (d.durationSec !== undefined) w.uintField(Tag.DurationSec, d.durationSec);
  if (d.thumbnail !== undefined) w.field(Tag.Thumbnail, d.thumbnail);
  if (d.waveform !== undefined) w.field(Tag.Waveform, d.waveform);
  return w.bytes();
}

function readVarint(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    const b = bytes[at + i];
    if (b === undefined) throw bad("truncated number");
    value += (b & 0x7f) * scale;
    if (value > Number.MAX_SAFE_INTEGER) throw bad("number too large");
    if ((b & 0x80) === 0) {
      if (i > 0 && b === 0) throw bad("non-minimal number encoding");
      return [value, at + i + 1];
    }
    scale *= 0x80;
  }
  throw bad("number too long");
}

function uintValue(v: Uint8Array): number {
  const [n, next] = readVarint(v, 0);
  if (next !== v.length) throw bad("trailing bytes after a number");
  return n;
}

function textValue(v: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(v);
  } catch {
    throw bad(`${what} is not valid UTF-8`);
  }
}

export function decodeMediaDescriptor(bytes: Uint8Array): MediaDescriptor {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw bad("empty descriptor");
  if (bytes.length > MAX_DESCRIPTOR_BYTES) throw bad("descriptor too large");
  if (bytes[0] !== DESCRIPTOR_VERSION) throw bad(`unknown descriptor version ${bytes[0]}`);
  const fields = new Map<number, Uint8Array>();
  let at = 1;
  while (at < bytes.length) {
    const tag = bytes[at]!;
    if (tag < Tag.BlobId || tag > Tag.Waveform) throw bad(`unknown field ${tag}`);
    if (fields.has(tag)) throw bad(`field ${tag} appears twice`);
    const [length, start] = readVarint(bytes, at + 1);
    if (start + length > bytes.length) throw bad("field runs past the end");
    fields.set(tag, bytes.slice(start, start + length));
    at = start + length;
  }
  for (const tag of REQUIRED) if (!fields.has(tag)) throw bad(`required field ${tag} missing`);
  const f = (tag: Tag) => fields.get(tag)!;
  const type = MEDIA_TYPES[f(Tag.Type).length === 1 ? f(Tag.Type)[0]! : -1];
  if (type === undefined) throw bad("unknown media type");
  const d: MediaDescriptor = {
    pointer: { blobId: textValue(f(Tag.BlobId), "blob id"), serverUrl: textValue(f(Tag.ServerUrl), "server URL") },
    type,
    mediaKey: f(Tag.MediaKey),
    fileEncSha256: f(Tag.FileEncSha256),
    fileSha256: f(Tag.FileSha256),
    mime: textValue(f(Tag.Mime), "MIME type"),
    size: uintValue(f(Tag.Size)),
    fileName: textValue(f(Tag.FileName), "file name"),
  };
  if (fields.has(Tag.Width)) d.width = uintValue(f(Tag.Width));
  if (fields.has(Tag.Height)) d.height = uintValue(f(Tag.Height));
  if (fields.has(Tag.DurationSec)) d.durationSec = uintValue(f(Tag.DurationSec));
  if (fields.has(Tag.Thumbnail)) d.thumbnail = f(Tag.Thumbnail);
  if (fields.has(Tag.Waveform)) d.waveform = f(Tag.Waveform);
  return validateMediaDescriptor(d);
}

/**
 * Forwarding an attachment re-sends its descriptor: same blob, same key, no second upload
 * (the recipient downloads the blob the first sender uploaded, until it expires).
 */
export function forwardDescriptor(d: MediaDescriptor): MediaDescriptor {
  validateMediaDescriptor(d);
  return {
    ...d,
    pointer: { ...d.pointer },
    mediaKey: d.mediaKey.slice(),
    fileEncSha256: d.fileEncSha256.slice(),
    fileSha256: d.fileSha256.slice(),
    ...(d.thumbnail ? { thumbnail: d.thumbnail.slice() } : {}),
    ...(d.waveform ? { waveform: d.waveform.slice() } : {}),
  };
}

/** Where the blob is downloaded from. */
export function blobUrl(pointer: MediaPointer): string {
  return `${pointer.serverUrl.replace(/\/+$/, "")}/media/${pointer.blobId}`;
}

/** The content store's base URL for a Parley server URL (ws://host:port/ws → http://host:port). */
export function mediaBaseUrl(serverUrl: string): string {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw new MediaError("BAD_INPUT", `not a URL: ${serverUrl}`);
  }
  const scheme = { "ws:": "http:", "wss:": "https:", "http:": "http:", "https:": "https:" }[url.protocol];
  if (!scheme) throw new MediaError("BAD_INPUT", `no HTTP content store for ${url.protocol} server URLs`);
  const path = url.pathname.replace(/\/ws\/?$/, "").replace(/\/+$/, "");
  return `${scheme}//${url.host}${path}`;
}
