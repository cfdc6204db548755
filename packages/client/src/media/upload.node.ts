// Sender side: encrypt a file while streaming it to the content store, resuming after a broken
// connection, and describe it for the E2E message. Memory stays constant whatever the size.
import { stat } from "node:fs/promises";
import { type MediaUploadCredentials, mediaUploadAuthorization } from "./auth.ts";
import type { EncryptResult } from "./crypto-stream.node.ts";
import { type MediaDescriptor, validateMediaDescriptor } from "./descriptor.ts";
import { EncryptedFileStream } from "./encrypt-file.node.ts";
import { MediaError } from "./errors.ts";
import { inspectFile } from "./file-info.node.ts";
import { answerError, httpCall, RetryableError } from "./http.node.ts";
import { encryptedSize, generateMediaKey, type MediaType, mediaTypeForMime } from "./keys.ts";
import { type MediaProgressCallback, ProgressMeter } from "./progress.ts";

export interface UploadMediaOptions {
  /** The content store's base URL: mediaBaseUrl(serverUrl), e.g. "http://127.0.0.1:7420". */
  baseUrl: string;
  /** Who uploads: mediaUploadCredentials(client.store). */
  credentials: MediaUploadCredentials;
  /** Default: from the file name's extension. */
  mime?: string;
  /** Name the recipient sees; default: the file's base name. */
  fileName?: string;
  /** Key schedule; default: from the MIME type. */
  type?: MediaType;
  /** Override what is detected from the file. */
  width?: number;
  height?: number;
  durationSec?: number;
  thumbnail?: Uint8Array;
  waveform?: Uint8Array;
  onProgress?: MediaProgressCallback;
  signal?: AbortSignal;
  /** Attempts per request when the connection breaks or the server answers 5xx; default 5. */
  maxAttempts?: number;
  /** Fixed media key (tests); default: 32 fresh random bytes. */
  mediaKey?: Uint8Array;
  now?: () => number;
}

function backoff(attempt: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, Math.min(5000, 100 * 2 ** attempt));
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new MediaError("ABORTED", "aborted"));
      },
      { once: true },
    );
  });
}

/** Runs `op`, retrying RetryableError up to `attempts` times with exponential backoff. */
export async function withRetries<T>(
  attempts: number,
  signal: AbortSignal | undefined,
  op: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (!(err instanceof RetryableError) || attempt + 1 >= attempts) throw err;
      await backoff(attempt, signal);
    }
  }
}

/** Encrypts `path` into a new blob on the content store; resolves with the descriptor to send. */
export async function uploadMediaFile(path: string, options: UploadMediaOptions): Promise<MediaDescriptor> {
  const now = options.now ?? Date.now;
  const attempts = options.maxAttempts ?? 5;
  const signal = options.signal;
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error("not a regular file");
    size = st.size;
  } catch (err) {
    throw new MediaError("BAD_INPUT", `cannot read ${path}`, { cause: err });
  }
  const facts = await inspectFile(path, size, options.mime);
  const type = options.type ?? mediaTypeForMime(facts.mime);
  const mediaKey = options.mediaKey ?? generateMediaKey();
  const blobSize = encryptedSize(size);
  const base = options.baseUrl.replace(/\/+$/, "");
  const auth = () => mediaUploadAuthorization(options.credentials, now());

  const started = await withRetries(attempts, signal, async () => {
    const r = await httpCall(
      `${base}/media`,
      "POST",
      { authorization: auth(), "upload-length": String(blobSize) },
      undefined,
      signal,
    );
    if (r.status !== 201) throw answerError(r.status, r.text, "starting the upload");
    return r;
  });
  const blobId = (JSON.parse(started.text) as { id: string }).id;
  const url = `${base}/media/${blobId}`;

  const meter = new ProgressMeter("upload", blobSize, options.onProgress, now);
  let result: EncryptResult | undefined;
  let offset = 0;
  await withRetries(attempts, signal, async (attempt) => {
    if (attempt > 0) {
      // Resume after the bytes the server committed.
      const h = await httpCall(url, "HEAD", { authorization: auth() }, undefined, signal);
      if (h.status !== 200) throw answerError(h.status, h.text, "resuming the upload");
      offset = Number(h.headers["upload-offset"] ?? 0);
    }
    // One stage reads, hashes, encrypts and MACs (see ./encrypt-file.node.ts).
    meter.set(offset);
    const encrypt = new EncryptedFileStream(path, mediaKey, type, offset, (n) => meter.add(n));
    const r = await httpCall(
      url,
      "PATCH",
      {
        authorization: auth(),
        "upload-offset": String(offset),
        "content-length": String(blobSize - offset),
        "content-type": "application/offset+octet-stream",
      },
      encrypt,
      signal,
    );
    if (r.status !== 204) throw answerError(r.status, r.text, "uploading");
    const committed = Number(r.headers["upload-offset"]);
    if (committed !== blobSize || !encrypt.result) {
      throw new RetryableError("NETWORK", `the server committed ${committed} of ${blobSize} bytes`);
    }
    if (encrypt.result.size !== size) throw new MediaError("BAD_INPUT", `${path} changed while it was being sent`);
    result = encrypt.result;
  });

  await withRetries(attempts, signal, async () => {
    const r = await httpCall(`${url}/complete`, "POST", { authorization: auth() }, undefined, signal);
    if (r.status !== 200) throw answerError(r.status, r.text, "finishing the upload");
  });
  meter.done();

  const descriptor: MediaDescriptor = {
    pointer: { blobId, serverUrl: base },
    type,
    mediaKey,
    fileEncSha256: result!.fileEncSha256,
    fileSha256: result!.fileSha256,
    mime: facts.mime,
    size,
    fileName: options.fileName ?? facts.fileName,
  };
  const width = options.width ?? facts.image?.width;
  const height = options.height ?? facts.image?.height;
  const durationSec = options.durationSec ?? facts.audio?.durationSec;
  const thumbnail = options.thumbnail ?? facts.thumbnail ?? undefined;
  const waveform = options.waveform ?? facts.audio?.waveform;
  if (width !== undefined) descriptor.width = width;
  if (height !== undefined) descriptor.height = height;
  if (durationSec !== undefined) descriptor.durationSec = durationSec;
  if (thumbnail !== undefined) descriptor.thumbnail = thumbnail;
  if (waveform !== undefined) descriptor.waveform = waveform;
  return validateMediaDescriptor(descriptor);
}
