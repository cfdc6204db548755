/**
 * The Node crypto suite: node:crypto (OpenSSL) for X25519, SHA-256, HKDF and the AEADs: 10–30× faster
 * than pure JS here. Keys are imported as JWK (DER/PKCS8 import is ~10× slower) and the resulting
 * KeyObjects are cached, so a server's static key and a session's cipher keys are imported once.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import {
  type BoundAead,
  isAllZero,
  type KeyPair,
  type NoiseCipherName,
  type NoiseCryptoSuite,
  TAG_LEN,
  writeNonce,
} from "./suite.ts";

const BYTE_1 = new Uint8Array([1]);
const BYTE_2 = new Uint8Array([2]);
// node ignores a JWK's "x" when importing an X25519 private key and derives it from "d", but requires
// the field to be present: a placeholder lets us import a bare private key.
const PLACEHOLDER_X = Buffer.alloc(32).toString("base64url");

/** Private KeyObjects by the identity of their raw bytes: static keys are imported once. */
const privateKeyObjects = new WeakMap<Uint8Array, KeyObject>();

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

function fromB64url(text: string | undefined): Uint8Array {
  const buf = Buffer.from(text ?? "", "base64url");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function privateKeyObject(privateKey: Uint8Array): KeyObject {
  let key = privateKeyObjects.get(privateKey);
  if (key === undefined) {
    key = createPrivateKey({
      key: { kty: "OKP", crv: "X25519", d: b64url(privateKey), x: PLACEHOLDER_X },
      format: "jwk",
    });
    privateKeyObjects.set(privateKey, key);
  }
  return key;
}

/** Public KeyObjects by byte-array identity: a handshake uses re and rs twice each. */
const publicKeyObjects = new WeakMap<Uint8Array, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new Error("X25519 public key must be 32 bytes");
  let key = publicKeyObjects.get(publicKey);
  if (key === undefined) {
    key = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: b64url(publicKey) }, format: "jwk" });
    publicKeyObjects.set(publicKey, key);
  }
  return key;
}

function asUint8(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * One nonce buffer for every NodeAead: seal and open fill it and use it synchronously, so sharing is
 * safe, and an idle connection's two cipher states do not each keep a 12-byte buffer (~150 bytes
 * of heap with its ArrayBuffer).
 */
const sharedNonce = Buffer.alloc(12);

class NodeAead implements BoundAead {
  private readonly nonce = sharedNonce;
  /**
   * The raw key, not a KeyObject: createCipheriv costs the same either way (measured: ~9–10 µs per
   * call for both), and a KeyObject is four objects plus a native copy, ~400 bytes per cipher state.
   */
  private readonly key: Uint8Array;
  private readonly algorithm: "aes-256-gcm" | "chacha20-poly1305";
  private readonly cipher: NoiseCipherName;

  constructor(cipher: NoiseCipherName, key: Uint8Array) {
    this.cipher = cipher;
    this.algorithm = cipher === "AESGCM" ? "aes-256-gcm" : "chacha20-poly1305";
    if (key.length !== 32) throw new Error("AEAD key must be 32 bytes");
    // A copy (the caller's array may be reused or wiped) in its own 32 bytes: not Buffer.from, whose
    // small buffers are slices of a shared 8 KiB pool that a long-lived key would keep alive (seen:
    // ~380 bytes per idle connection).
    this.key = new Uint8Array(key);
  }

  exportKey(): Uint8Array {
    return new Uint8Array(this.key);
  }

  seal(nonceHigh: number, nonceLow: number, ad: Uint8Array, plaintext: Uint8Array, headroom = 0): Uint8Array {
    writeNonce(this.cipher, this.nonce, nonceHigh, nonceLow);
    const c =
      this.algorithm === "aes-256-gcm"
        ? createCipheriv(this.algorithm, this.key, this.nonce, { authTagLength: TAG_LEN })
        : createCipheriv(this.algorithm, this.key, this.nonce, { authTagLength: TAG_LEN });
    if (ad.length > 0) c.setAAD(ad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    c.final();
    const out = Buffer.allocUnsafe(headroom + body.length + TAG_LEN);
    body.copy(out, headroom);
    c.getAuthTag().copy(out, headroom + body.length);
    return asUint8(out);
  }

  open(nonceHigh: number, nonceLow: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
    if (ciphertext.length < TAG_LEN) return null;
    writeNonce(this.cipher, this.nonce, nonceHigh, nonceLow);
    const split = ciphertext.length - TAG_LEN;
    const d =
      this.algorithm === "aes-256-gcm"
        ? createDecipheriv(this.algorithm, this.key, this.nonce, { authTagLength: TAG_LEN })
        : createDecipheriv(this.algorithm, this.key, this.nonce, { authTagLength: TAG_LEN });
    d.setAuthTag(ciphertext.subarray(split));
    if (ad.length > 0) d.setAAD(ad, { plaintextLength: split });
    const body = d.update(ciphertext.subarray(0, split));
    try {
      d.final();
    } catch {
      return null;
    }
    return asUint8(body);
  }
}

export const nodeSuite: NoiseCryptoSuite = {
  name: "node",
  generateKeyPair(): KeyPair {
    // Not generateKeyPairSync("x25519") + export: in Node 20 that can deadlock a process for good.
    // Exporting the key takes its mutex and allocates; a GC triggered there finalizes the dead
    // key-generation job, whose destructor takes the same mutex (seen here: a load generator's
    // main thread stuck in futex_wait under ExportJWKEdKey ← GC ← ~KeyGenJob). Importing random
    // bytes as the private key creates no job. Any 32 bytes are a valid X25519 private key.
    const privateKey = asUint8(randomBytes(32));
    return { privateKey, publicKey: this.publicKeyOf(privateKey) };
  },
  publicKeyOf(privateKey: Uint8Array): Uint8Array {
    return fromB64url(privateKeyObject(privateKey).export({ format: "jwk" }).x);
  },
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    // OpenSSL refuses an all-zero shared secret itself; the check keeps both suites' contracts equal.
    const shared = asUint8(
      diffieHellman({ privateKey: privateKeyObject(keyPair.privateKey), publicKey: publicKeyObject(publicKey) }),
    );
    if (isAllZero(shared)) throw new Error("X25519 produced the all-zero output (low-order public key)");
    return shared;
  },
  sha256: (data) => asUint8(createHash("sha256").update(data).digest()),
  hmacSha256: (key, data) => asUint8(createHmac("sha256", key).update(data).digest()),
  hkdf2(chainingKey, inputKeyMaterial) {
    // Noise's HKDF (section 4.3) spelled out in three HMACs rather than hkdfSync: hkdfSync imports
    // its key as a KeyObject per call, ~18 vs ~12 µs here; five calls per handshake on each side.
    const tempKey = createHmac("sha256", chainingKey).update(inputKeyMaterial).digest();
    const output1 = createHmac("sha256", tempKey).update(BYTE_1).digest();
    const output2 = createHmac("sha256", tempKey).update(output1).update(BYTE_2).digest();
    return [asUint8(output1), asUint8(output2)];
  },
  aead: (cipher, key) => new NodeAead(cipher, key),
  randomBytes: (length) => asUint8(randomBytes(length)),
};
