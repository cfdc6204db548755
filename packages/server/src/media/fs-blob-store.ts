// The filesystem BlobStore: <root>/blobs/<first two id chars>/<id> for finished blobs (their
// mtime is set to the creation time on the server's clock, which is what expiry reads), and
// <root>/uploads/<id>.part + <id>.json for uploads in progress. Every worker process of
// `parley serve` shares the directory, and a resumed upload may land on another worker than
// the one it started on, so all state lives on disk; an append holds <id>.lock (created
// exclusively, holding the pid) so two appends to one upload can never interleave.
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Readable, Transform, type TransformCallback, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { BlobInfo, BlobStore, UploadOwner, UploadState } from "./blob-store.ts";
import { MediaStoreError } from "./errors.ts";
import { isValidMediaId } from "./ids.ts";
import { GarbageBudget } from "./young-gc.ts";

interface UploadMeta {
  owner: UploadOwner;
  createdAt: number;
  declaredLength: number | null;
}

const WRITE_BUFFER = 1024 * 1024;
const READ_BUFFER = 256 * 1024;
/** sendTo(): this many READ_BUFFERs per download, reused: one being read while the others drain. */
const SEND_BUFFERS = 4;

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Counts the bytes going through and fails once the upload would pass its size limit. */
class SizeLimit extends Transform {
  private readonly garbage = new GarbageBudget();
  constructor(private remaining: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // Each body chunk is garbage once written.
    this.garbage.add(chunk.length);
    this.remaining -= chunk.length;
    if (this.remaining < 0) done(new MediaStoreError("TOO_LARGE", "upload exceeds the size limit of this server"));
    else done(null, chunk);
  }
}

export class FsBlobStore implements BlobStore {
  private readonly blobs: string;
  private readonly uploads: string;
  private ready: Promise<void> | undefined;

  constructor(readonly root: string) {
    this.blobs = join(root, "blobs");
    this.uploads = join(root, "uploads");
  }

  private ensureDirs(): Promise<void> {
    this.ready ??= Promise.all([
      mkdir(this.blobs, { recursive: true, mode: 0o700 }),
      mkdir(this.uploads, { recursive: true, mode: 0o700 }),
    ]).then(() => undefined);
    return this.ready;
  }

  /** Paths are only ever built from validated ids (defence in depth: the HTTP layer checks first). */
  private checked(id: string): string {
    if (!isValidMediaId(id)) throw new MediaStoreError("BAD_MEDIA_ID", "malformed media id");
    return id;
  }
  private blobPath(id: string): string {
    return join(this.blobs, this.checked(id).slice(0, 2), id);
  }
  private uploadPath(id: string, ext: "part" | "json" | "lock"): string {
    return join(this.uploads, `${this.checked(id)}.${ext}`);
  }

  async createUpload(id: string, owner: UploadOwner, now: number, declaredLength: number | null): Promise<void> {
    await this.ensureDirs();
    const meta: UploadMeta = { owner, createdAt: now, declaredLength };
    await writeFile(this.uploadPath(id, "part"), new Uint8Array(0), { flag: "wx", mode: 0o600 });
    // The .json appears atomically and last: an upload exists exactly when its .json does.
    const tmp = `${this.uploadPath(id, "json")}.tmp`;
    await writeFile(tmp, JSON.stringify(meta), { flag: "wx", mode: 0o600 });
    await rename(tmp, this.uploadPath(id, "json"));
  }

  private async readMeta(id: string): Promise<UploadMeta | null> {
    try {
      return JSON.parse(await readFile(this.uploadPath(id, "json"), "utf8")) as UploadMeta;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw new MediaStoreError("INTERNAL", "unreadable upload state", { cause: err });
    }
  }

  async uploadState(id: string): Promise<UploadState | null> {
    const meta = await this.readMeta(id);
    if (!meta) return null;
    try {
      const st = await stat(this.uploadPath(id, "part"));
      return { owner: meta.owner, offset: st.size, createdAt: meta.createdAt, declaredLength: meta.declaredLength };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Takes the upload's lock, stealing it from a process that died holding it. */
  private async lock(id: string): Promise<() => Promise<void>> {
    const path = this.uploadPath(id, "lock");
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(path, "wx", 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        return () => unlink(path).catch(() => undefined);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const holder = Number(await readFile(path, "utf8").catch(() => "0"));
        if (holder > 0 && processAlive(holder)) break;
        await unlink(path).catch(() => undefined);
      }
    }
    throw new MediaStoreError("UPLOAD_BUSY", "another request is writing to this upload; retry after it ends");
  }

  async append(id: string, offset: number, body: Readable, maxTotal: number): Promise<number> {
    const unlock = await this.lock(id);
    try {
      const state = await this.uploadState(id);
      if (!state) throw new MediaStoreError("NOT_FOUND", "no such upload in progress");
      if (state.offset !== offset) {
        throw new MediaStoreError("OFFSET_MISMATCH", `upload offset is ${state.offset}, not ${offset}`);
      }
      try {
        await pipeline(
          body,
          new SizeLimit(maxTotal - offset),
          createWriteStream(this.uploadPath(id, "part"), { flags: "a", highWaterMark: WRITE_BUFFER }),
        );
      } catch (err) {
        // Over the limit the upload can never complete: drop it. Broken off otherwise: what
        // reached the file stays committed and the client resumes after it.
        if (err instanceof MediaStoreError && err.code === "TOO_LARGE") await this.discardUpload(id);
        throw err;
      }
      return (await stat(this.uploadPath(id, "part"))).size;
    } finally {
      await unlock();
    }
  }

  private async discardUpload(id: string): Promise<void> {
    await rm(this.uploadPath(id, "json"), { force: true });
    await rm(this.uploadPath(id, "part"), { force: true });
  }

  async complete(id: string, now: number): Promise<BlobInfo> {
    const unlock = await this.lock(id);
    try {
      const state = await this.uploadState(id);
      if (!state) throw new MediaStoreError("NOT_FOUND", "no such upload in progress");
      if (state.declaredLength !== null && state.declaredLength !== state.offset) {
        throw new MediaStoreError(
          "BAD_REQUEST",
          `upload incomplete: ${state.offset} of the announced ${state.declaredLength} bytes`,
        );
      }
      const target = this.blobPath(id);
      await mkdir(join(this.blobs, id.slice(0, 2)), { recursive: true, mode: 0o700 });
      await rename(this.uploadPath(id, "part"), target);
      // The blob's mtime is its creation time on the server clock: expiry needs no extra file.
      await utimes(target, now / 1000, now / 1000);
      await unlink(this.uploadPath(id, "json"));
      return { size: state.offset, createdAt: now };
    } finally {
      await unlock();
    }
  }

  async stat(id: string): Promise<BlobInfo | null> {
    try {
      const st = await stat(this.blobPath(id));
      return { size: st.size, createdAt: st.mtimeMs };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  read(id: string, start: number, end: number): Readable {
    return createReadStream(this.blobPath(id), { start, end, highWaterMark: READ_BUFFER });
  }

  async sendTo(id: string, start: number, end: number, out: Writable): Promise<void> {
    const fh = await open(this.blobPath(id), "r");
    const free: Buffer[] = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafeSlow(READ_BUFFER));
    const garbage = new GarbageBudget();
    let waiting: (() => void) | undefined;
    let failed: Error | undefined;
    const onGone = () => {
      failed ??= new Error("the connection closed before the download ended");
      waiting?.();
    };
    out.once("close", onGone);
    out.once("error", onGone);
    try {
      let position = start;
      while (position <= end) {
        if (failed) throw failed;
        const buffer = free.pop();
        if (!buffer) {
          await new Promise<void>((resolve) => {
            waiting = resolve;
          });
          waiting = undefined;
          continue;
        }
        const { bytesRead } = await fh.read(buffer, 0, Math.min(READ_BUFFER, end - position + 1), position);
        if (bytesRead === 0) throw new MediaStoreError("INTERNAL", "the blob is shorter than its size");
        position += bytesRead;
        // No buffer to free here, but every write leaves small objects behind: collecting them
        // early keeps V8 from growing its young generation during a long download.
        garbage.add(bytesRead);
        // The buffer returns to the pool only once `out` has handed its bytes to the kernel.
        out.write(buffer.subarray(0, bytesRead), (err) => {
          if (err) failed ??= err;
          free.push(buffer);
          waiting?.();
        });
      }
      // Every buffer back: the last bytes left, and the file can close.
      while (free.length < SEND_BUFFERS && !failed) {
        await new Promise<void>((resolve) => {
          waiting = resolve;
        });
        waiting = undefined;
      }
      if (failed) throw failed;
    } finally {
      out.off("close", onGone);
      out.off("error", onGone);
      await fh.close();
    }
  }

  async purgeExpired(blobsBefore: number, uploadsBefore: number): Promise<{ blobs: number; uploads: number }> {
    await this.ensureDirs();
    let blobs = 0;
    let uploads = 0;
    for (const shard of await readdir(this.blobs)) {
      const dir = join(this.blobs, shard);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue; // not a directory, or purged by another worker meanwhile
      }
      for (const name of names) {
        const st = await stat(join(dir, name)).catch(() => null);
        if (st && st.mtimeMs <= blobsBefore) {
          await rm(join(dir, name), { force: true });
          blobs++;
        }
      }
    }
    for (const name of await readdir(this.uploads)) {
      const id = name.slice(0, -".json".length);
      if (!name.endsWith(".json") || !isValidMediaId(id)) continue;
      const meta = await this.readMeta(id).catch(() => null);
      if (!meta || meta.createdAt > uploadsBefore) continue;
      let unlock: () => Promise<void>;
      try {
        unlock = await this.lock(id);
      } catch {
        continue; // being written right now
      }
      try {
        await this.discardUpload(id);
        uploads++;
      } finally {
        await unlock();
      }
    }
    return { blobs, uploads };
  }
}
