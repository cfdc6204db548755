// Where the content store keeps bytes. The HTTP layer (./http.ts) speaks only to this
// interface, so an S3 (or other object store) backend can replace the filesystem one:
// resumable appends map to multipart uploads, `complete` to CompleteMultipartUpload,
// `read` to a ranged GET, `purgeExpired` to a lifecycle rule.
import type { Readable, Writable } from "node:stream";

/** Who started an upload: the registered device that proved itself (see ./auth.ts). */
export interface UploadOwner {
  user: string;
  device: number;
}

export interface UploadState {
  owner: UploadOwner;
  /** Bytes committed so far: where the next append must start. */
  offset: number;
  createdAt: number;
  /** Total length the client announced at start, if it did. */
  declaredLength: number | null;
}

export interface BlobInfo {
  size: number;
  createdAt: number;
}

export interface BlobStore {
  /** Starts an upload under a fresh id (the caller makes the id). */
  createUpload(id: string, owner: UploadOwner, now: number, declaredLength: number | null): Promise<void>;
  /** The upload's state; null if there is no such upload in progress. */
  uploadState(id: string): Promise<UploadState | null>;
  /**
   * Appends `body` at `offset` (which must equal the committed size: OFFSET_MISMATCH otherwise),
   * streaming; at most `maxTotal` bytes in all (TOO_LARGE, and the upload is discarded). Bytes that
   * arrived before the body broke off stay committed, so the client can resume after them.
   * Resolves with the new committed size. UPLOAD_BUSY while another append or completion runs.
   */
  append(id: string, offset: number, body: Readable, maxTotal: number): Promise<number>;
  /** Turns the upload into a downloadable blob created at `now`. */
  complete(id: string, now: number): Promise<BlobInfo>;
  /** A finished blob's size and creation time; null if absent. */
  stat(id: string): Promise<BlobInfo | null>;
  /** The bytes start..end (inclusive) of a finished blob. */
  read(id: string, start: number, end: number): Readable;
  /**
   * Optional fast path for downloads: writes start..end (inclusive) into `out` with a fixed set of
   * reused buffers (no allocation per chunk, so no garbage waiting for the GC), respecting
   * backpressure; resolves once the last byte is handed to `out`. Without it, read() is piped.
   */
  sendTo?(id: string, start: number, end: number, out: Writable): Promise<void>;
  /** Deletes blobs created at or before `blobsBefore` and unfinished uploads started at or before `uploadsBefore`. */
  purgeExpired(blobsBefore: number, uploadsBefore: number): Promise<{ blobs: number; uploads: number }>;
}
