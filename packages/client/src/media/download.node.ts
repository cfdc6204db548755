// Recipient side: fetch a blob (resuming a broken download with a Range request), prove it is
// the described one (blob SHA-256 and MAC) BEFORE any plaintext exists, then decrypt into a
// temporary file, check the plaintext's SHA-256 and only then give it its name in the media
// folder. Any failure removes every temporary file: no partial plaintext is ever left behind.
import { randomBytes } from "node:crypto";
import { type FileHandle, link, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BlobVerifier, decryptBlobFile } from "./crypto-stream.node.ts";
import { blobUrl, type MediaDescriptor, validateMediaDescriptor } from "./descriptor.ts";
import { MediaError } from "./errors.ts";
import { answerError, httpGet, networkError, RetryableError } from "./http.node.ts";
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

/** Writes chunks at explicit positions, feeding the verifier only with bytes that reached the file. */
class VerifiedFileSink extends Writable {
  constructor(
    private readonly fh: FileHandle,
    private readonly verifier: BlobVerifier,
    private readonly meter: ProgressMeter,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }
  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    const total = buffers.reduce((n, b) => n + b.length, 0);
    if (this.verifier.length + total > this.verifier.expectedLength) {
      done(
        new MediaError("SIZE_MISMATCH", `the blob is longer than the ${this.verifier.expectedLength} bytes expected`),
      );
      return;
    }
    this.fh.writev(buffers, this.verifier.length).then(
      () => {
        for (const b of buffers) this.verifier.update(b);
        this.meter.add(total);
        done();
      },
      (err) => done(new MediaError("IO", "writing the download failed", { cause: err })),
    );
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
  const encPath = join(dir, `.parley-${tag}.enc`);
  const plainPath = join(dir, `.parley-${tag}.part`);
  const verifier = new BlobVerifier(d.size, d.mediaKey, d.type);
  const url = blobUrl(d.pointer);
  let fh: FileHandle | undefined;
  try {
    fh = await open(encPath, "wx", 0o600);
    const file = fh;
    const meter = new ProgressMeter("download", verifier.expectedLength, options.onProgress, now);
    await withRetries(options.maxAttempts ?? 5, signal, async () => {
      const have = verifier.length;
      if (have === verifier.expectedLength) return;
      const res = await httpGet(
        url,
        have > 0 ? { range: `bytes=${have}-`, "if-range": `"${d.pointer.blobId}"` } : {},
        signal,
      );
      if (res.statusCode !== (have > 0 ? 206 : 200)) {
        const text = await new Promise<string>((r) => {
          let t = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            if (t.length < 4096) t += c;
          });
          res.on("end", () => r(t));
          res.on("error", () => r(t));
        });
        if (res.statusCode === 416) throw new MediaError("SIZE_MISMATCH", "the blob is shorter than expected");
        throw answerError(res.statusCode ?? 0, text, "downloading");
      }
      const announced = Number(res.headers["content-length"] ?? Number.NaN);
      if (have + announced > verifier.expectedLength) {
        res.destroy();
        throw new MediaError("SIZE_MISMATCH", `the blob is longer than the ${verifier.expectedLength} bytes expected`);
      }
      try {
        await pipeline(res, new VerifiedFileSink(file, verifier, meter));
      } catch (err) {
        throw networkError(err, signal);
      }
      if (verifier.length < verifier.expectedLength && verifier.length < have + announced) {
        throw new RetryableError("NETWORK", "the download broke off");
      }
    });
    await fh.close();
    fh = undefined;
    verifier.verify(d.fileEncSha256);
    meter.done();

    const decryptMeter = new ProgressMeter("decrypt", d.size, options.onProgress, now);
    await decryptBlobFile(encPath, plainPath, d, (n) => decryptMeter.add(n));
    const finalPath = await claimName(plainPath, dir, safeFileName({ ...d, fileName: options.fileName ?? d.fileName }));
    decryptMeter.done();
    return { path: finalPath, size: d.size };
  } catch (err) {
    if (err instanceof MediaError) throw err;
    throw new MediaError("IO", `download of ${url} failed`, { cause: err });
  } finally {
    await fh?.close().catch(() => undefined);
    await rm(encPath, { force: true });
    await rm(plainPath, { force: true });
  }
}
