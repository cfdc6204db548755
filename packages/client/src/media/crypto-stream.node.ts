// Streaming media crypto on node:crypto, in constant memory: the encrypting Transform for the
// sender, and for the recipient the verifier that hashes and MACs the blob as it arrives (never
// decrypting), then the decrypting pass that runs only over a verified blob.
import { createCipheriv, createDecipheriv, createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";
import { CRYPTO_SLICE_BYTES, FILE_READ_BYTES } from "./encrypt-file.node.ts";
import { MediaError } from "./errors.ts";
import { deriveMediaKeys, encryptedSize, MEDIA_MAC_LENGTH, type MediaType } from "./keys.ts";
import { constantTimeEqual } from "./memory.ts";
import { GarbageBudget } from "./young-gc.node.ts";

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

/** Plaintext writes of decryptBlobFile that may run at once (the decrypted megabytes they hold are garbage after). */
const WRITES_IN_FLIGHT = 3;

/** Reads up to `length` bytes at `position`; 0 only at the end of the file. */
function readAt(fh: FileHandle, into: Buffer, position: number, length: number): Promise<number> {
  if (length <= 0) return Promise.resolve(0);
  return handled(fh.read(into, 0, length, position).then((r) => r.bytesRead));
}

/** Marks a promise that runs ahead as handled: its failure surfaces where it is awaited, never as an unhandled rejection. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * Decrypts a verified blob file into `plainPath` and checks the plaintext's size and SHA-256.
 * `plainPath` may be `blobPath` itself: the plaintext then overwrites the ciphertext it came from
 * (each megabyte is written back only after it was read) and the file is cut to the plaintext's
 * size, which saves the page cache (and the disk) a second copy of the file.
 * Two reused read buffers: the next read runs while this one is decrypted (64 KiB slices, which
 * stay in the CPU cache); each decrypted megabyte goes out with one writev, up to three at once.
 */
export async function decryptBlobFile(
  blobPath: string,
  plainPath: string,
  expected: { size: number; fileSha256: Uint8Array; mediaKey: Uint8Array; type: MediaType },
  onBytes?: (n: number) => void,
): Promise<void> {
  const { iv, cipherKey } = deriveMediaKeys(expected.mediaKey, expected.type);
  const decipher = createDecipheriv("aes-256-cbc", cipherKey, iv);
  const hash = createHash("sha256");
  const garbage = new GarbageBudget();
  const ctLength = encryptedSize(expected.size) - MEDIA_MAC_LENGTH;
  const inPlace = plainPath === blobPath;
  let input: FileHandle | undefined;
  let output: FileHandle | undefined;
  let written = 0;
  try {
    input = await open(blobPath, inPlace ? "r+" : "r");
    output = inPlace ? input : await open(plainPath, "wx", 0o600);
    const out = output;
    const buffers = [Buffer.allocUnsafeSlow(FILE_READ_BYTES), Buffer.allocUnsafeSlow(FILE_READ_BYTES)] as const;
    let which = 0;
    let position = 0;
    let reading = readAt(input, buffers[0], 0, Math.min(FILE_READ_BYTES, ctLength));
    // Up to WRITES_IN_FLIGHT writes run at once (each on its own thread-pool thread, at its own
    // offset): a write into the page cache can take longer than decrypting the next megabyte.
    const writing: Promise<unknown>[] = [];
    const write = async (parts: Buffer[]) => {
      let total = 0;
      for (const part of parts) {
        hash.update(part);
        total += part.length;
      }
      if (writing.length >= WRITES_IN_FLIGHT) await writing.shift();
      if (total === 0) return;
      // In place, plaintext byte i lands on ciphertext byte i, which was read before.
      const at = written;
      writing.push(
        handled(
          out.writev(parts, at).then(({ bytesWritten }) => {
            // A regular file takes a write whole unless the disk is full.
            if (bytesWritten !== total) throw new Error(`short write at ${at}: ${bytesWritten} of ${total} bytes`);
          }),
        ),
      );
      written += total;
      garbage.add(total);
      onBytes?.(total);
    };
    for (;;) {
      const n = await reading;
      if (n === 0) break;
      const chunk = (which === 0 ? buffers[0] : buffers[1]).subarray(0, n);
      position += n;
      which ^= 1;
      reading = readAt(
        input,
        which === 0 ? buffers[0] : buffers[1],
        position,
        Math.min(FILE_READ_BYTES, ctLength - position),
      );
      const parts: Buffer[] = [];
      for (let at = 0; at < n; at += CRYPTO_SLICE_BYTES) {
        parts.push(decipher.update(chunk.subarray(at, Math.min(n, at + CRYPTO_SLICE_BYTES))));
      }
      await write(parts);
    }
    await write([decipher.final()]);
    await Promise.all(writing);
    if (inPlace) await out.truncate(written);
  } catch (err) {
    if (err instanceof Error && /bad decrypt|wrong final block length/i.test(err.message)) {
      throw new MediaError("DECRYPT_FAILED", "bad padding after a valid MAC", { cause: err });
    }
    throw new MediaError("IO", `decrypting into ${plainPath} failed`, { cause: err });
  } finally {
    await input?.close().catch(() => undefined);
    if (!inPlace) await output?.close().catch(() => undefined);
  }
  if (written !== expected.size || !constantTimeEqual(new Uint8Array(hash.digest()), expected.fileSha256)) {
    throw new MediaError("DECRYPT_FAILED", "the plaintext's size or SHA-256 differs from the descriptor's");
  }
}
