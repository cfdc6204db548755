// The content store's HTTP endpoints, mounted by the worker under /media:
//   POST  /media                 start an upload (auth)         → 201 {id}, Location, Upload-Offset: 0
//   PATCH /media/<id>            append at Upload-Offset (auth)  → 204, Upload-Offset: <committed>
//   HEAD  /media/<id>            upload: committed Upload-Offset (auth); blob: size, ETag
//   POST  /media/<id>/complete   finish the upload (auth)        → 200 {id, size}
//   GET   /media/<id>            download; no auth (the id is the capability); Range → 206
// Bodies stream to and from the BlobStore; nothing is held whole in memory.
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import type { Clock } from "../clock.ts";
import type { UploadAuthenticator } from "./auth.ts";
import type { BlobInfo, BlobStore, UploadOwner } from "./blob-store.ts";
import { MediaStoreError } from "./errors.ts";
import { isValidMediaId, newMediaId } from "./ids.ts";

export interface MediaHttpOptions {
  store: BlobStore;
  auth: UploadAuthenticator;
  clock: Clock;
  log: Logger;
  maxBytes: number;
  retentionMs: number;
}

type Route = { kind: "collection" } | { kind: "blob"; id: string } | { kind: "complete"; id: string };

/** True for the paths this module answers: /media, /media/..., /media?... */
export function isMediaPath(url: string | undefined): boolean {
  return url !== undefined && /^\/media(?:[/?]|$)/.test(url);
}

function parseRoute(url: string): Route {
  const path = url.split("?", 1)[0] ?? "";
  if (path === "/media" || path === "/media/") return { kind: "collection" };
  const parts = path.slice("/media/".length).split("/");
  const id = parts[0] ?? "";
  if (!isValidMediaId(id)) {
    throw new MediaStoreError("BAD_MEDIA_ID", "malformed media id: expected 43 base64url characters (32 random bytes)");
  }
  if (parts.length === 1) return { kind: "blob", id };
  if (parts.length === 2 && parts[1] === "complete") return { kind: "complete", id };
  throw new MediaStoreError("NOT_FOUND", "no such media endpoint");
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseLength(raw: string | undefined, what: string): number | null {
  if (raw === undefined) return null;
  if (!/^\d{1,16}$/.test(raw)) throw new MediaStoreError("BAD_REQUEST", `${what} must be a whole number`);
  return Number(raw);
}

/** The append offset from Upload-Offset, or from Content-Range "bytes <start>-<end>/<total|*>". */
function parseOffset(req: IncomingMessage): number {
  const offset = parseLength(header(req, "upload-offset"), "Upload-Offset");
  if (offset !== null) return offset;
  const range = header(req, "content-range");
  const m = range === undefined ? null : /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)$/.exec(range);
  if (!m) throw new MediaStoreError("BAD_REQUEST", "PATCH needs Upload-Offset or Content-Range: bytes <start>-<end>/*");
  const start = Number(m[1]);
  const end = Number(m[2]);
  const length = parseLength(header(req, "content-length"), "Content-Length");
  if (end < start || (length !== null && length !== end - start + 1)) {
    throw new MediaStoreError("BAD_REQUEST", "Content-Range does not match the body length");
  }
  return start;
}

type ByteRange = { start: number; end: number } | "unsatisfiable" | null;

/** A single "bytes=" range; null = serve the whole blob (no Range, or one we may ignore). */
function parseRange(raw: string | undefined, size: number): ByteRange {
  if (raw === undefined) return null;
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(raw.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null; // multi-range or malformed: RFC 9110 lets us send it all
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

export class MediaHttpHandler {
  constructor(private readonly o: MediaHttpOptions) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((err: unknown) => this.fail(req, res, err));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = parseRoute(req.url ?? "");
    const method = req.method ?? "GET";
    if (route.kind === "collection") {
      if (method !== "POST") throw this.notAllowed(res, "POST");
      return this.start(req, res);
    }
    if (route.kind === "complete") {
      if (method !== "POST") throw this.notAllowed(res, "POST");
      return this.complete(req, res, route.id);
    }
    if (method === "GET" || method === "HEAD") return this.download(req, res, route.id, method === "HEAD");
    if (method === "PATCH") return this.append(req, res, route.id);
    throw this.notAllowed(res, "GET, HEAD, PATCH");
  }

  private notAllowed(res: ServerResponse, allow: string): MediaStoreError {
    res.setHeader("allow", allow);
    return new MediaStoreError("METHOD_NOT_ALLOWED", `method not allowed here; use ${allow}`);
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
    res.end(JSON.stringify(body));
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const known = err instanceof MediaStoreError;
    if (!known) this.o.log.error({ err, url: req.url, method: req.method }, "media request failed");
    if (res.headersSent || !res.socket || res.socket.destroyed) {
      res.destroy();
      return;
    }
    const e = known ? err : new MediaStoreError("INTERNAL", "internal error");
    // The body may be large and unread (413 on Content-Length, a refused PATCH): answer, then close.
    if (!req.complete) {
      res.setHeader("connection", "close");
      res.once("finish", () => setTimeout(() => req.destroy(), 100).unref());
    }
    this.json(res, e.status, { error: e.code, message: e.message });
  }

  private async owner(req: IncomingMessage): Promise<UploadOwner> {
    return this.o.auth.authenticate(header(req, "authorization"));
  }

  /** The upload, checked to belong to the device making the request. */
  private async ownUpload(req: IncomingMessage, id: string) {
    const who = await this.owner(req);
    const state = await this.o.store.uploadState(id);
    if (!state) throw new MediaStoreError("NOT_FOUND", "no such upload in progress");
    if (state.owner.user !== who.user || state.owner.device !== who.device) {
      throw new MediaStoreError("NOT_FOUND", "no such upload in progress");
    }
    return state;
  }

  private async start(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const who = await this.owner(req);
    req.resume();
    const declared = parseLength(header(req, "upload-length"), "Upload-Length");
    if (declared !== null && declared > this.o.maxBytes) {
      throw new MediaStoreError("TOO_LARGE", `uploads are limited to ${this.o.maxBytes} bytes`);
    }
    const id = newMediaId();
    await this.o.store.createUpload(id, who, this.o.clock.now(), declared);
    this.json(
      res,
      201,
      { id, maxBytes: this.o.maxBytes },
      { location: `/media/${id}`, "upload-offset": "0", "x-media-max-bytes": String(this.o.maxBytes) },
    );
  }

  private async append(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const state = await this.ownUpload(req, id);
    const offset = parseOffset(req);
    const length = parseLength(header(req, "content-length"), "Content-Length");
    if (offset + (length ?? 0) > this.o.maxBytes) {
      throw new MediaStoreError("TOO_LARGE", `uploads are limited to ${this.o.maxBytes} bytes`);
    }
    if (state.declaredLength !== null && offset + (length ?? 0) > state.declaredLength) {
      throw new MediaStoreError("BAD_REQUEST", "body runs past the announced Upload-Length");
    }
    if (state.offset !== offset) {
      res.setHeader("upload-offset", String(state.offset));
      throw new MediaStoreError("OFFSET_MISMATCH", `upload offset is ${state.offset}, not ${offset}`);
    }
    const committed = await this.o.store.append(id, offset, req, this.o.maxBytes);
    res.writeHead(204, { "upload-offset": String(committed), "cache-control": "no-store" });
    res.end();
  }

  private async complete(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    req.resume();
    await this.ownUpload(req, id);
    const info = await this.o.store.complete(id, this.o.clock.now());
    this.json(res, 200, { id, size: info.size }, { location: `/media/${id}` });
  }

  /** A finished blob that has not passed its retention yet (the hourly purge may lag). */
  private async liveBlob(id: string): Promise<BlobInfo | null> {
    const info = await this.o.store.stat(id);
    if (!info || info.createdAt + this.o.retentionMs <= this.o.clock.now()) return null;
    return info;
  }

  private async download(req: IncomingMessage, res: ServerResponse, id: string, headOnly: boolean): Promise<void> {
    const info = await this.liveBlob(id);
    if (!info) {
      if (headOnly && (await this.o.store.uploadState(id))) {
        const state = await this.ownUpload(req, id);
        res.writeHead(200, {
          "upload-offset": String(state.offset),
          ...(state.declaredLength !== null ? { "upload-length": String(state.declaredLength) } : {}),
          "cache-control": "no-store",
        });
        res.end();
        return;
      }
      throw new MediaStoreError("NOT_FOUND", "no such media, or it expired");
    }
    // Blobs never change, so the id is a strong validator.
    const etag = `"${id}"`;
    const common = {
      etag,
      "accept-ranges": "bytes",
      "cache-control": "private, max-age=86400, immutable",
      "x-content-type-options": "nosniff",
    };
    const inm = header(req, "if-none-match");
    if (inm !== undefined && (inm === "*" || inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag))) {
      res.writeHead(304, common);
      res.end();
      return;
    }
    const ifRange = header(req, "if-range");
    const range = ifRange === undefined || ifRange === etag ? parseRange(header(req, "range"), info.size) : null;
    if (range === "unsatisfiable") {
      res.setHeader("content-range", `bytes */${info.size}`);
      throw new MediaStoreError("RANGE_NOT_SATISFIABLE", `range outside the blob's ${info.size} bytes`);
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? info.size - 1;
    res.writeHead(range ? 206 : 200, {
      ...common,
      "content-type": "application/octet-stream",
      "content-length": String(end - start + 1),
      ...(range ? { "content-range": `bytes ${start}-${end}/${info.size}` } : {}),
    });
    if (headOnly || info.size === 0) {
      res.end();
      return;
    }
    if (this.o.store.sendTo) {
      await this.o.store.sendTo(id, start, end, res);
      res.end();
    } else {
      await pipeline(this.o.store.read(id, start, end), res);
    }
  }
}
