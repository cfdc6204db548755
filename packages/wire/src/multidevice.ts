// Byte layouts of multi-device linking (docs/multi-device.md): the link code
// shown as a QR code, the companion's device identity that both devices sign,
// the link offer the primary sends, and the signed device list. Only layouts
// live here; signing and verifying happen in the client (and, for checks, the
// server) with XEdDSA from @parley/signal.
import { WireError } from "./errors.ts";

const VERSION = 1;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Prefixes that separate what each signature may mean (WhatsApp's 0x06 0x0N scheme). */
export const SIGNATURE_PREFIX = {
  /** primary identity key signs a companion's device identity */
  ACCOUNT: Uint8Array.of(0x06, 0x00),
  /** companion identity key countersigns its identity plus the primary's identity key */
  DEVICE: Uint8Array.of(0x06, 0x01),
  /** primary identity key signs the account's device list */
  DEVICE_LIST: Uint8Array.of(0x06, 0x02),
} as const;

export const LINK_REF_BYTES = 16;
export const LINK_SECRET_BYTES = 32;
const IDENTITY_KEY_BYTES = 33;
const NOISE_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const HMAC_BYTES = 32;
const MAX_NAME_BYTES = 128;
const MAX_DEVICES = 16;

class Writer {
  private readonly parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 0xff);
    return this;
  }
  u32(v: number) {
    this.parts.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  bytes(b: Uint8Array, fixed?: number) {
    if (fixed !== undefined && b.length !== fixed)
      throw new WireError("INVALID_STANZA", `expected ${fixed} bytes, got ${b.length}`);
    if (fixed === undefined) this.u8(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  str(s: string) {
    const b = utf8.encode(s);
    if (b.length === 0 || b.length > MAX_NAME_BYTES) throw new WireError("INVALID_STANZA", "name must be 1..128 bytes");
    return this.bytes(b);
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

class Reader {
  private pos = 0;
  constructor(
    private readonly b: Uint8Array,
    private readonly what: string,
  ) {}
  private need(n: number) {
    if (this.pos + n > this.b.length) throw new WireError("TRUNCATED", `${this.what} is truncated`);
  }
  u8(): number {
    this.need(1);
    return this.b[this.pos++]!;
  }
  u32(): number {
    this.need(4);
    const v =
      ((this.b[this.pos]! << 24) |
        (this.b[this.pos + 1]! << 16) |
        (this.b[this.pos + 2]! << 8) |
        this.b[this.pos + 3]!) >>>
      0;
    this.pos += 4;
    return v;
  }
  bytes(fixed?: number): Uint8Array {
    const n = fixed ?? this.u8();
    this.need(n);
    const out = this.b.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  str(): string {
    const b = this.bytes();
    if (b.length === 0) throw new WireError("INVALID_STANZA", `${this.what}: empty name`);
    try {
      return fromUtf8.decode(b);
    } catch {
      throw new WireError("BAD_UTF8", `${this.what}: name is not UTF-8`);
    }
  }
  version() {
    const v = this.u8();
    if (v !== VERSION) throw new WireError("UNKNOWN_TYPE", `${this.what}: unsupported version ${v}`);
  }
  end() {
    if (this.pos !== this.b.length) throw new WireError("INVALID_STANZA", `${this.what} has trailing bytes`);
  }
}

// ------------------------------------------------------------------- link code

/** What the new device shows as a QR code (and as text for scripts). */
export interface LinkCode {
  /** server URL the companion registered with (so the primary can check it is the same server) */
  server: string;
  /** correlates the two devices' requests on the server */
  ref: Uint8Array;
  /** shared only through the QR code: authenticates the offer (HMAC) */
  secret: Uint8Array;
  /** companion's identity key (33 bytes, 0x05-prefixed) */
  identityKey: Uint8Array;
  /** companion's Noise static key (32 bytes) */
  noiseKey: Uint8Array;
  /** seconds since the epoch after which the code is refused */
  expiresAt: number;
}

const b64url = (b: Uint8Array) => {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
};
const fromB64url = (s: string): Uint8Array => {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new WireError("INVALID_STANZA", "link code has characters outside base64url");
  const bin = atob(s.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

export function encodeLinkCode(c: LinkCode): string {
  const w = new Writer().u8(VERSION).str(c.server).bytes(c.ref, LINK_REF_BYTES).bytes(c.secret, LINK_SECRET_BYTES);
  w.bytes(c.identityKey, IDENTITY_KEY_BYTES).bytes(c.noiseKey, NOISE_KEY_BYTES).u32(c.expiresAt);
  return `parley-link:${b64url(w.finish())}`;
}

export function decodeLinkCode(text: string): LinkCode {
  const t = text.trim();
  if (!t.startsWith("parley-link:") || t.length > 1024) throw new WireError("INVALID_STANZA", "not a Parley link code");
  const r = new Reader(fromB64url(t.slice("parley-link:".length)), "link code");
  r.version();
  const code: LinkCode = {
    server: r.str(),
    ref: r.bytes(LINK_REF_BYTES),
    secret: r.bytes(LINK_SECRET_BYTES),
    identityKey: r.bytes(IDENTITY_KEY_BYTES),
    noiseKey: r.bytes(NOISE_KEY_BYTES),
    expiresAt: r.u32(),
  };
  r.end();
  return code;
}

// ------------------------------------------------------------ device identity

/** The companion's identity as the primary signs it (account signature) and the companion countersigns it. */
export interface DeviceIdentity {
  user: string;
  identityKey: Uint8Array;
  noiseKey: Uint8Array;
  /** seconds since the epoch */
  createdAt: number;
}

export function encodeDeviceIdentity(d: DeviceIdentity): Uint8Array {
  return new Writer()
    .u8(VERSION)
    .str(d.user)
    .bytes(d.identityKey, IDENTITY_KEY_BYTES)
    .bytes(d.noiseKey, NOISE_KEY_BYTES)
    .u32(d.createdAt)
    .finish();
}

export function decodeDeviceIdentity(bytes: Uint8Array): DeviceIdentity {
  const r = new Reader(bytes, "device identity");
  r.version();
  const d = {
    user: r.str(),
    identityKey: r.bytes(IDENTITY_KEY_BYTES),
    noiseKey: r.bytes(NOISE_KEY_BYTES),
    createdAt: r.u32(),
  };
  r.end();
  return d;
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** What the primary's identity key signs for a companion. */
export const accountSignedBytes = (deviceIdentity: Uint8Array) => concat(SIGNATURE_PREFIX.ACCOUNT, deviceIdentity);
/** What the companion's identity key countersigns. */
export const deviceSignedBytes = (deviceIdentity: Uint8Array, primaryIdentityKey: Uint8Array) =>
  concat(SIGNATURE_PREFIX.DEVICE, deviceIdentity, primaryIdentityKey);

// ----------------------------------------------------------------- link offer

/** primary → companion (through the server): the signed identity, authenticated with the link secret. */
export interface LinkOffer {
  deviceIdentity: Uint8Array;
  accountSignature: Uint8Array;
  primaryIdentityKey: Uint8Array;
  /** HMAC-SHA256(link secret, deviceIdentity ‖ accountSignature ‖ primaryIdentityKey) */
  mac: Uint8Array;
}

export function encodeLinkOffer(o: LinkOffer): Uint8Array {
  const w = new Writer().u8(VERSION).u32(o.deviceIdentity.length);
  return concat(
    w.finish(),
    o.deviceIdentity,
    new Writer()
      .bytes(o.accountSignature, SIGNATURE_BYTES)
      .bytes(o.primaryIdentityKey, IDENTITY_KEY_BYTES)
      .bytes(o.mac, HMAC_BYTES)
      .finish(),
  );
}

export function decodeLinkOffer(bytes: Uint8Array): LinkOffer {
  const r = new Reader(bytes, "link offer");
  r.version();
  const n = r.u32();
  if (n > 512) throw new WireError("LIMIT_EXCEEDED", "link offer: device identity too large");
  const o = {
    deviceIdentity: r.bytes(n),
    accountSignature: r.bytes(SIGNATURE_BYTES),
    primaryIdentityKey: r.bytes(IDENTITY_KEY_BYTES),
    mac: r.bytes(HMAC_BYTES),
  };
  r.end();
  return o;
}

/** The bytes the link offer's MAC covers. */
export const linkOfferMacInput = (o: Omit<LinkOffer, "mac">) =>
  concat(o.deviceIdentity, o.accountSignature, o.primaryIdentityKey);

// ---------------------------------------------------------------- device list

/** The account's devices as the primary signs them; contacts encrypt to exactly these. */
export interface DeviceList {
  user: string;
  /** increases with every change (seconds-resolution timestamps are not enough for quick changes) */
  version: number;
  devices: { id: number; identityKey: Uint8Array }[];
}

export function encodeDeviceList(l: DeviceList): Uint8Array {
  if (l.devices.length === 0 || l.devices.length > MAX_DEVICES)
    throw new WireError("INVALID_STANZA", "a device list has 1..16 devices");
  const w = new Writer().u8(VERSION).str(l.user).u32(l.version).u8(l.devices.length);
  for (const d of l.devices) w.u32(d.id).bytes(d.identityKey, IDENTITY_KEY_BYTES);
  return w.finish();
}

export function decodeDeviceList(bytes: Uint8Array): DeviceList {
  const r = new Reader(bytes, "device list");
  r.version();
  const user = r.str();
  const version = r.u32();
  const n = r.u8();
  if (n === 0 || n > MAX_DEVICES) throw new WireError("LIMIT_EXCEEDED", "device list: 1..16 devices");
  const devices = [];
  for (let i = 0; i < n; i++) devices.push({ id: r.u32(), identityKey: r.bytes(IDENTITY_KEY_BYTES) });
  r.end();
  return { user, version, devices };
}

/** What the primary's identity key signs for a device list. */
export const deviceListSignedBytes = (list: Uint8Array) => concat(SIGNATURE_PREFIX.DEVICE_LIST, list);

/** The published form: list ‖ 64-byte signature. */
export function encodeSignedDeviceList(list: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_BYTES) throw new WireError("INVALID_STANZA", "signature must be 64 bytes");
  return concat(list, signature);
}

export function splitSignedDeviceList(blob: Uint8Array): { list: Uint8Array; signature: Uint8Array } {
  if (blob.length <= SIGNATURE_BYTES) throw new WireError("TRUNCATED", "signed device list is truncated");
  return {
    list: blob.subarray(0, blob.length - SIGNATURE_BYTES),
    signature: blob.subarray(blob.length - SIGNATURE_BYTES),
  };
}
