// Streaming media crypto on node:crypto, in constant memory: the encrypting Transform for the
// sender, and for the recipient the verifier that hashes and MACs the blob as it arrives (never
// decrypting), then the decrypting pass that runs only over a verified blob.
import { createCipheriv, createDecipheriv, createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { MediaError } from "./errors.ts";
import { deriveMediaKeys, encryptedSize, MEDIA_MAC_LENGTH, type MediaType } from "./keys.ts";
import { constantTimeEqual } from "./memory.ts";

export interface EncryptResult {
  /** Plaintext bytes that went in. */
  size: number;
  fileSha256: Uint8Array;
  fileEncSha256: Uint8Array;
}

/** plaintext in → ciphertext ‖ MAC out; `result` is set once the stream has flushed. */
export class MediaEncryptStream extends Transform {
  result: EncryptResult | undefined;
  private readonly cipher;
  private readonly hmac: Hmac;
  private readonly plainHash: Hash = createHash("sha256");
  private readonly blobHash: Hash = createHash("sha256");
  private size = 0;

  constructor(mediaKey: Uint8Array, type: MediaType) {
    super({ highWaterMark: 256 * 1024 });
    const { iv, cipherKey, macKey } = deriveMediaKeys(mediaKey, type);
    this.cipher = createCipheriv("aes-256-cbc", cipherKey, iv);
    this.hmac = createHmac("sha256", macKey).update(iv);
  }

  private out(ct: Buffer): void {
    if (ct.length === 0) return;
    this.hmac.update(ct);
    this.blobHash.update(ct);
    this.push(ct);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    this.plainHash.update(chunk);
    this.out(this.cipher.update(chunk));
    done();
  }

  override _flush(done: TransformCallback): void {
    this.out(this.cipher.final());
    const mac = this.hmac.digest().subarray(0, MEDIA_MAC_LENGTH);
    this.blobHash.update(mac);
    this.push(mac);
    this.result = {
      size: this.size,
      fileSha256: new Uint8Array(this.plainHash.digest()),
      fileEncSha256: new Uint8Array(this.blobHash.digest()),
    };
    done();
  }
}

/** Drops the first `skip` bytes (a resumed upload re-encrypts from the start: CBC chains every block). */
export class SkipBytes extends Transform {
  constructor(private skip: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.skip >= chunk.length) {
      this.skip -= chunk.length;
      done();
      return;
    }
    const rest = this.skip > 0 ? chunk.subarray(this.skip) : chunk;
    this.skip = 0;
    done(null, rest);
  }
}

/**
 * Hashes and MACs a blob of known plaintext size as its bytes arrive, holding back the last
 * 10 bytes (the MAC) from the HMAC. More bytes than the size allows → SIZE_MISMATCH at once.
 */
export class BlobVerifier {
  readonly expectedLength: number;
  private received = 0;
  private readonly hash: Hash = createHash("sha256");
  private readonly hmac: Hmac;
  private readonly tail = Buffer.alloc(MEDIA_MAC_LENGTH);

  constructor(plainSize: number, mediaKey: Uint8Array, type: MediaType) {
    this.expectedLength = encryptedSize(plainSize);
    const { iv, macKey } = deriveMediaKeys(mediaKey, type);
    this.hmac = createHmac("sha256", macKey).update(iv);
  }

  get length(): number {
    return this.received;
  }

  update(chunk: Uint8Array): void {
    const macStart = this.expectedLength - MEDIA_MAC_LENGTH;
    if (this.received + chunk.length > this.expectedLength) {
      throw new MediaError("SIZE_MISMATCH", `the blob is longer than the ${this.expectedLength} bytes expected`);
    }
    this.hash.update(chunk);
    const macPart = Math.max(0, Math.min(chunk.length, macStart - this.received));
    if (macPart > 0) this.hmac.update(chunk.subarray(0, macPart));
    for (let i = macPart; i < chunk.length; i++) this.tail[this.received + i - macStart] = chunk[i]!;
    this.received += chunk.length;
  }

  /** Throws the typed reason the blob is not the one described; returns when it is. */
  verify(fileEncSha256: Uint8Array): void {
    if (this.received !== this.expectedLength) {
      throw new MediaError("SIZE_MISMATCH", `got ${this.received} of the ${this.expectedLength} bytes expected`);
    }
    if (!constantTimeEqual(new Uint8Array(this.hash.digest()), fileEncSha256)) {
      throw new MediaError("BLOB_HASH_MISMATCH", "the blob's SHA-256 differs from the descriptor's");
    }
    const mac = this.hmac.digest().subarray(0, MEDIA_MAC_LENGTH);
    if (!constantTimeEqual(mac, this.tail)) {
      throw new MediaError("MAC_MISMATCH", "the blob's MAC does not verify (tampered, or a wrong key)");
    }
  }
}

/** Decrypts a verified blob file into `plainPath`, streaming; checks the plaintext's size and SHA-256. */
export async function decryptBlobFile(
  blobPath: string,
  plainPath: string,
  expected: { size: number; fileSha256: Uint8Array; mediaKey: Uint8Array; type: MediaType },
  onBytes?: (n: number) => void,
): Promise<void> {
  const { iv, cipherKey } = deriveMediaKeys(expected.mediaKey, expected.type);
  const decipher = createDecipheriv("aes-256-cbc", cipherKey, iv);
  const hash = createHash("sha256");
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      hash.update(chunk);
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  const ctEnd = encryptedSize(expected.size) - MEDIA_MAC_LENGTH - 1;
  try {
    await pipeline(
      createReadStream(blobPath, { start: 0, end: ctEnd, highWaterMark: 256 * 1024 }),
      decipher,
      tap,
      createWriteStream(plainPath, { flags: "wx", mode: 0o600, highWaterMark: 1024 * 1024 }),
    );
  } catch (err) {
    if (err instanceof Error && /bad decrypt|wrong final block length/i.test(err.message)) {
      throw new MediaError("DECRYPT_FAILED", "bad padding after a valid MAC", { cause: err });
    }
    throw new MediaError("IO", `decrypting into ${plainPath} failed`, { cause: err });
  }
  if (size !== expected.size || !constantTimeEqual(new Uint8Array(hash.digest()), expected.fileSha256)) {
    throw new MediaError("DECRYPT_FAILED", "the plaintext's size or SHA-256 differs from the descriptor's");
  }
}
