/**
 * The Node crypto suite. When sodium-native's prebuilt libsodium loads, X25519, SHA-256 and
 * ChaCha20-Poly1305 (Parley's record cipher) run on it; HMAC-SHA256 (which libsodium's addon does
 * not expose) and AES-256-GCM on node:crypto (OpenSSL). Without the addon everything runs on
 * node:crypto, 10–30× faster than pure JS here: keys are then imported as JWK (DER/PKCS8 import is
 * ~10× slower) and the resulting KeyObjects cached, so a server's static key is imported once.
 *
 * Why libsodium for X25519: node:crypto needs a KeyObject per key, and importing a raw private key
 * makes OpenSSL derive its public key (one more scalar multiplication) and look its algorithm up by
 * name; a login storm's profile had 5% of the machine in that import alone. libsodium's
 * crypto_scalarmult takes the raw bytes: ~31 µs per DH against ~46 µs plus the import, and
 * ~16 µs for a key pair against ~56 µs.
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
import { createRequire } from "node:module";
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

/** The calls of sodium-native this suite uses. */
interface Sodium {
  /** X25519: writes scalar · point into `out`; throws if the result is all zero (low-order point). */
  crypto_scalarmult(out: Uint8Array, scalar: Uint8Array, point: Uint8Array): void;
  /** X25519 with the base point: the public key of `scalar`. */
  crypto_scalarmult_base(out: Uint8Array, scalar: Uint8Array): void;
  crypto_hash_sha256(out: Uint8Array, data: Uint8Array): void;
  /** Writes ciphertext ‖ tag into `out` (message length + 16 bytes); returns the bytes written. */
  crypto_aead_chacha20poly1305_ietf_encrypt(
    out: Uint8Array,
    message: Uint8Array,
    ad: Uint8Array | null,
    nsec: null,
    nonce: Uint8Array,
    key: Uint8Array,
  ): number;
  /** Writes the plaintext into `out`; throws if the tag does not verify. */
  crypto_aead_chacha20poly1305_ietf_decrypt(
    out: Uint8Array,
    nsec: null,
    ciphertext: Uint8Array,
    ad: Uint8Array | null,
    nonce: Uint8Array,
    key: Uint8Array,
  ): number;
}

/**
 * libsodium, if its prebuilt addon loads: one synchronous call per record into a buffer we pass,
 * ~1.1 µs per 250-byte record here against ~3.1 µs for createCipheriv + update + final +
 * getAuthTag. And it leaves nothing for the GC: every node:crypto call creates a native cipher
 * object that V8 finalizes inside a scavenge pause (about half of each pause under paced load, see
 * bench/vs-ejabberd/README.md) plus fresh ArrayBuffers for its outputs.
 */
const sodium: Sodium | undefined = (() => {
  try {
    return createRequire(import.meta.url)("sodium-native") as Sodium;
  } catch {
    return undefined;
  }
})();

/** Whether this process uses libsodium (X25519, SHA-256, ChaChaPoly records; else node:crypto). */
export const nodeSuiteUsesLibsodium = sodium !== undefined;

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

  /** libsodium for ChaChaPoly when it loaded and the suite may use it; else node:crypto. */
  private readonly sodium: Sodium | undefined;

  constructor(cipher: NoiseCipherName, key: Uint8Array, useSodium: boolean) {
    this.cipher = cipher;
    this.sodium = useSodium && cipher === "ChaChaPoly" ? sodium : undefined;
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
    if (this.sodium !== undefined) {
      const out = Buffer.allocUnsafe(headroom + plaintext.length + TAG_LEN);
      const sealed = out.subarray(headroom);
      this.sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        sealed,
        plaintext,
        ad.length > 0 ? ad : null,
        null,
        this.nonce,
        this.key,
      );
      return asUint8(out);
    }
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
    if (this.sodium !== undefined) {
      // Its own memory, as node:crypto's update() output is: the caller may keep views of it.
      const body = new Uint8Array(split);
      try {
        this.sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
          body,
          null,
          ciphertext,
          ad.length > 0 ? ad : null,
          this.nonce,
          this.key,
        );
      } catch {
        return null;
      }
      return body;
    }
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

const ALL_ZERO_DH = "X25519 produced the all-zero output (low-order public key)";

/** The primitives a Node suite takes from libsodium when it loads, else from node:crypto. */
type Primitives = Pick<NoiseCryptoSuite, "publicKeyOf" | "dh" | "sha256">;

/** X25519 and SHA-256 on node:crypto (the fallback when libsodium does not load). */
const opensslPrimitives: Primitives = {
  publicKeyOf(privateKey: Uint8Array): Uint8Array {
    return fromB64url(privateKeyObject(privateKey).export({ format: "jwk" }).x);
  },
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    // OpenSSL refuses an all-zero shared secret itself; the check keeps both suites' contracts equal.
    const shared = asUint8(
      diffieHellman({ privateKey: privateKeyObject(keyPair.privateKey), publicKey: publicKeyObject(publicKey) }),
    );
    if (isAllZero(shared)) throw new Error(ALL_ZERO_DH);
    return shared;
  },
  sha256: (data) => asUint8(createHash("sha256").update(data).digest()),
};

/** X25519 and SHA-256 on libsodium: raw bytes in and out, no key objects. */
function sodiumPrimitives(na: Sodium): Primitives {
  return {
    publicKeyOf(privateKey: Uint8Array): Uint8Array {
      if (privateKey.length !== 32) throw new Error("X25519 private key must be 32 bytes");
      const publicKey = new Uint8Array(32);
      na.crypto_scalarmult_base(publicKey, privateKey);
      return publicKey;
    },
    dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
      if (publicKey.length !== 32) throw new Error("X25519 public key must be 32 bytes");
      if (keyPair.privateKey.length !== 32) throw new Error("X25519 private key must be 32 bytes");
      // Its own 32 bytes: the chaining key derived from it may outlive the handshake.
      const shared = new Uint8Array(32);
      try {
        na.crypto_scalarmult(shared, keyPair.privateKey, publicKey);
      } catch {
        throw new Error(ALL_ZERO_DH); // libsodium refuses an all-zero result, as OpenSSL does
      }
      if (isAllZero(shared)) throw new Error(ALL_ZERO_DH);
      return shared;
    },
    sha256(data: Uint8Array): Uint8Array {
      const out = new Uint8Array(32);
      na.crypto_hash_sha256(out, data);
      return out;
    },
  };
}

function makeNodeSuite(name: string, useSodium: boolean): NoiseCryptoSuite {
  const primitives = useSodium && sodium !== undefined ? sodiumPrimitives(sodium) : opensslPrimitives;
  return {
    name,
    ...primitives,
    generateKeyPair(): KeyPair {
      // Random bytes and their public key, not generateKeyPairSync("x25519") + export: in Node 20
      // that can deadlock a process for good. Exporting the key takes its mutex and allocates; a GC
      // triggered there finalizes the dead key-generation job, whose destructor takes the same mutex
      // (seen here: a load generator's main thread stuck in futex_wait under ExportJWKEdKey ← GC ←
      // ~KeyGenJob). Any 32 bytes are a valid X25519 private key.
      const privateKey = asUint8(randomBytes(32));
      return { privateKey, publicKey: primitives.publicKeyOf(privateKey) };
    },
    hmacSha256: (key, data) => asUint8(createHmac("sha256", key).update(data).digest()),
    hkdf2(chainingKey, inputKeyMaterial) {
      // Noise's HKDF (section 4.3) spelled out in three HMACs rather than hkdfSync: hkdfSync imports
      // its key as a KeyObject per call, ~18 vs ~12 µs here; five calls per handshake on each side.
      const tempKey = createHmac("sha256", chainingKey).update(inputKeyMaterial).digest();
      const output1 = createHmac("sha256", tempKey).update(BYTE_1).digest();
      const output2 = createHmac("sha256", tempKey).update(output1).update(BYTE_2).digest();
      return [asUint8(output1), asUint8(output2)];
    },
    aead: (cipher, key) => new NodeAead(cipher, key, useSodium),
    randomBytes: (length) => asUint8(randomBytes(length)),
  };
}

/** The suite Node code uses: libsodium where it loads and has the primitive, node:crypto for the rest. */
export const nodeSuite: NoiseCryptoSuite = makeNodeSuite("node", true);

/** node:crypto only (ChaChaPoly too): the fallback when sodium-native does not load, kept vector-tested. */
export const nodeCryptoSuite: NoiseCryptoSuite = makeNodeSuite("node:crypto", false);
