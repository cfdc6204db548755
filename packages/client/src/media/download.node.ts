// Recipient side, two passes over one temporary file: (1) fetch the blob into it (resuming a
// broken download with a Range request) while hashing and MACing every chunk as it arrives, and
// prove it is the described blob (SHA-256 and MAC) BEFORE any plaintext exists; (2) decrypt it in
// place, check the plaintext's SHA-256, and only then give it its name in the media folder. Any
// failure removes the temporary file: no partial plaintext is ever left behind.
import { randomBytes } from "node:crypto";
import { type FileHandle, link, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { BlobVerifier, decryptBlobFile } from "./crypto-stream.node.ts";
import { blobUrl, type MediaDescriptor, validateMediaDescriptor } from "./descriptor.ts";
import { MediaError } from "./errors.ts";
import { answerError } from "./http.node.ts";
import { type GetHead, type GetReceiver, type GetResult, StreamingGet } from "./http-get.node.ts";
import { type MediaProgressCallback, ProgressMeter } from "./progress.ts";
import { withRetries } from "./upload.node.ts";

export interface DownloadMediaOptions {
  /** Folder the file lands in, e.g. mediaDir(profileDir). Created if missing. */
  destDir: string;
  /** Default: the descriptor's file name made safe, or one made from the hash. */
  fileName?: string;
  onProgress?: MediaProgressCallback;
  signal?: AbortSignal;
  /** Attempts when the connection breaks or the server answers 5xx; default 5. */
  maxAttempts?: number;
  now?: () => number;
}

export interface DownloadedMedia {
  path: string;
  size: number;
}

/** The media folder of a profile directory. */
export function mediaDir(profileDir: string): string {
  return join(profileDir, "media");
}

const EXTENSION_BY_MIME: Record<string, string> = {
  "image/jpeg": ".jpg",
  "image/png": ".png",
  "image/gif": ".gif",
  "video/mp4": ".mp4",
  "audio/wav": ".wav",
  "audio/ogg": ".ogg",
  "audio/mpeg": ".mp3",
  "application/pdf": ".pdf",
};

/**
 * A name that cannot leave the folder or hide: the last path component only, no control or
 * separator characters, no leading dots, at most 200 characters; falls back to one from the hash.
 */
export function safeFileName(d: Pick<MediaDescriptor, "fileName" | "fileSha256" | "mime">): string {
  const last = d.fileName.split(/[/\\]/).pop() ?? "";
  const cleaned = Array.from(last, (ch) =>
    ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f || '<>:"|?*'.includes(ch) ? "_" : ch,
  )
    .join("")
    .replace(/^[.\s]+/, "")
    .trim()
    .slice(0, 200);
  if (cleaned !== "") return cleaned;
  const hex = Buffer.from(d.fileSha256).toString("hex").slice(0, 16);
  return `media-${hex}${EXTENSION_BY_MIME[d.mime] ?? ""}`;
}

/** Links `from` to the first free name "x.ext", "x (1).ext", ... (never overwrites); returns it. */
async function claimName(from: string, dir: string, name: string): Promise<string> {
  const dot = name.lastIndexOf(".");
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : "";
  for (let n = 0; n < 1000; n++) {
    const candidate = join(dir, n === 0 ? name : `${stem} (${n})${ext}`);
    try {
      await link(from, candidate);
      return candidate;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  throw new MediaError("IO", `no free file name for ${name} in ${dir}`);
}

/** Bytes per write of the downloaded blob, and how many such buffers one download reuses. */
const WRITE_SLOT_BYTES = 1024 * 1024;
const WRITE_SLOTS = 4;

/**
 * The first pass of a download: each chunk is hashed and MACed the moment it arrives (while it is
 * in the CPU cache), then copied into one of a few reused 1 MiB buffers; a full buffer is written
 * at its offset while the socket goes on filling the next one, and the socket pauses only when
 * the next buffer is still being written. Nothing is allocated per chunk.
 */
class BlobFileReceiver implements GetReceiver {
  private readonly slots = Array.from({ length: WRITE_SLOTS }, () => Buffer.allocUnsafeSlow(WRITE_SLOT_BYTES));
  private readonly busy: boolean[] = new Array<boolean>(WRITE_SLOTS).fill(false);
  private current = 0;
  private fill = 0;
  /** File offset of the current slot's first byte: everything before it is written or being written. */
  private position = 0;
  private writes = 0;
  private idle: (() => void) | undefined;
  private failure: MediaError | undefined;
  private get: StreamingGet | undefined;
  private paused = false;
  private expect: { status: number; from: number } = { status: 200, from: 0 };

  constructor(
    private readonly fh: FileHandle,
    private readonly verifier: BlobVerifier,
    private readonly meter: ProgressMeter,
  ) {}

  /** One request, resuming at `from` (what the file already holds). */
  attach(get: StreamingGet, from: number): void {
    this.get = get;
    this.paused = false;
    this.expect = { status: from > 0 ? 206 : 200, from };
  }

  onHead(head: GetHead): void {
    if (head.status !== this.expect.status) {
      throw new MediaError("NETWORK", `downloading: HTTP ${head.status} where ${this.expect.status} was expected`);
    }
    const announced = Number(head.headers["content-length"] ?? Number.NaN);
    if (this.expect.from + announced > this.verifier.expectedLength) {
      throw new MediaError(
        "SIZE_MISMATCH",
        `the blob is longer than the ${this.verifier.expectedLength} bytes expected`,
      );
    }
  }

  onBody(chunk: Buffer): boolean {
    if (this.failure) throw this.failure;
    this.verifier.update(chunk); // throws SIZE_MISMATCH past the expected length
    this.meter.add(chunk.length);
    // A socket read is at most a quarter of a slot and the next slot is free whenever reading
    // runs (see below), so a chunk never reaches a slot that is still being written.
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, WRITE_SLOT_BYTES - this.fill);
      chunk.copy(this.slots[this.current]!, this.fill, at, at + n);
      this.fill += n;
      at += n;
      if (this.fill === WRITE_SLOT_BYTES) this.submit();
    }
    this.paused = this.busy[(this.current + 1) % WRITE_SLOTS]!;
    return !this.paused;
  }

  private submit(): void {
    const slot = this.current;
    const length = this.fill;
    const position = this.position;
    this.busy[slot] = true;
    this.writes++;
    this.position += length;
    this.current = (slot + 1) % WRITE_SLOTS;
    this.fill = 0;
    this.fh.write(this.slots[slot]!, 0, length, position).then(
      ({ bytesWritten }) => {
        // A regular file takes a write whole unless the disk is full.
        if (bytesWritten !== length) {
          this.failure ??= new MediaError("IO", `writing the download failed: ${bytesWritten} of ${length} bytes`);
          this.get?.destroy(this.failure);
        }
        this.written(slot);
      },
      (err: unknown) => {
        this.failure ??= new MediaError("IO", "writing the download failed", { cause: err });
        this.get?.destroy(this.failure);
        this.written(slot);
      },
    );
  }

  private written(slot: number): void {
    this.busy[slot] = false;
    this.writes--;
    if (this.writes === 0) this.idle?.();
    if (this.paused && !this.busy[(this.current + 1) % WRITE_SLOTS]) {
      this.paused = false;
      this.get?.resume();
    }
  }

  /** Writes what is buffered and waits for every write: afterwards the file holds exactly the verified bytes. */
  async flush(): Promise<void> {
    if (this.fill > 0) this.submit();
    while (this.writes > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    this.idle = undefined;
    if (this.failure) throw this.failure;
  }
}

export async function downloadMedia(
  descriptor: MediaDescriptor,
  options: DownloadMediaOptions,
): Promise<DownloadedMedia> {
  const d = validateMediaDescriptor(descriptor);
  const now = options.now ?? Date.now;
  const signal = options.signal;
  const dir = options.destDir;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new MediaError("IO", `cannot create ${dir}`, { cause: err });
  }
  const tag = randomBytes(9).toString("base64url");
  // One temporary file: the blob, verified, then decrypted in place; it gets its name only at the end.
  const tempPath = join(dir, `.parley-${tag}.part`);
  const verifier = new BlobVerifier(d.size, d.mediaKey, d.type);
  const url = blobUrl(d.pointer);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tempPath, "wx", 0o600);
    const meter = new ProgressMeter("download", verifier.expectedLength, options.onProgress, now);
    const receiver = new BlobFileReceiver(fh, verifier, meter);
    await withRetries(options.maxAttempts ?? 5, signal, async () => {
      const have = verifier.length;
      if (have === verifier.expectedLength) return;
      const get = new StreamingGet(
        url,
        have > 0 ? { range: `bytes=${have}-`, "if-range": `"${d.pointer.blobId}"` } : {},
        receiver,
        signal,
      );
      receiver.attach(get, have);
      let answer: GetResult;
      try {
        answer = await get.done;
      } finally {
        // Also after a broken connection: the file must end exactly where the verifier is.
        await receiver.flush();
      }
      if (answer.status === 416) throw new MediaError("SIZE_MISMATCH", "the blob is shorter than expected");
      if (answer.status < 200 || answer.status >= 300) throw answerError(answer.status, answer.text, "downloading");
    });
    await fh.close();
    fh = undefined;
    verifier.verify(d.fileEncSha256);
    meter.done();

    const decryptMeter = new ProgressMeter("decrypt", d.size, options.onProgress, now);
    await decryptBlobFile(tempPath, tempPath, d, (n) => decryptMeter.add(n));
    const finalPath = await claimName(tempPath, dir, safeFileName({ ...d, fileName: options.fileName ?? d.fileName }));
    decryptMeter.done();
    return { path: finalPath, size: d.size };
  } catch (err) {
    if (err instanceof MediaError) throw err;
    throw new MediaError("IO", `download of ${url} failed`, { cause: err });
  } finally {
    await fh?.close().catch(() => undefined);
    await rm(tempPath, { force: true });
  }
}
