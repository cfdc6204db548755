// The content store as the worker mounts it: filesystem blobs under <dataDir>/media, upload
// authentication against the devices in storage, and the purge of expired blobs (at start and
// hourly; every worker runs it, which is harmless: deleting a file twice is a no-op).
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Clock } from "../clock.ts";
import type { ServerConfig } from "../config.ts";
import type { ServerStorage } from "../storage/index.ts";
import { storageIdentityLookup, UploadAuthenticator } from "./auth.ts";
import type { BlobStore } from "./blob-store.ts";
import { FsBlobStore } from "./fs-blob-store.ts";
import { MediaHttpHandler } from "./http.ts";

export const DEFAULT_MEDIA_MAX_BYTES = 100 * 1024 * 1024;
export const DEFAULT_MEDIA_RETENTION_DAYS = 30;
/** Uploads never completed are dropped after a day. */
export const UPLOAD_TTL_MS = 24 * 3600 * 1000;
const PURGE_INTERVAL_MS = 3600 * 1000;

export interface MediaServiceOptions {
  config: Pick<ServerConfig, "dataDir" | "mediaMaxBytes" | "mediaRetentionDays">;
  storage: Pick<ServerStorage, "getAccountByName" | "getDevice">;
  clock: Clock;
  log: Logger;
  /** Default: the filesystem under <dataDir>/media. */
  blobStore?: BlobStore;
}

export interface MediaService {
  readonly blobStore: BlobStore;
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Deletes blobs past retention and stale uploads now. */
  purgeExpired(): Promise<{ blobs: number; uploads: number }>;
  /** Stops the hourly purge. */
  close(): void;
}

export function createMediaService(options: MediaServiceOptions): MediaService {
  const { config, clock, log } = options;
  const blobStore = options.blobStore ?? new FsBlobStore(join(config.dataDir, "media"));
  const retentionMs = (config.mediaRetentionDays ?? DEFAULT_MEDIA_RETENTION_DAYS) * 86_400_000;
  const handler = new MediaHttpHandler({
    store: blobStore,
    auth: new UploadAuthenticator(storageIdentityLookup(options.storage), clock),
    clock,
    log,
    maxBytes: config.mediaMaxBytes ?? DEFAULT_MEDIA_MAX_BYTES,
    retentionMs,
  });
  const purgeExpired = async () => {
    const now = clock.now();
    const purged = await blobStore.purgeExpired(now - retentionMs, now - UPLOAD_TTL_MS);
    if (purged.blobs + purged.uploads > 0) log.info(purged, "purged expired media");
    return purged;
  };
  const purge = () => void purgeExpired().catch((err) => log.error({ err }, "media purge failed"));
  purge();
  const timer = setInterval(purge, PURGE_INTERVAL_MS);
  timer.unref();
  return {
    blobStore,
    handle: (req, res) => handler.handle(req, res),
    purgeExpired,
    close: () => clearInterval(timer),
  };
}
