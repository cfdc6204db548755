export {
  type IdentityKeyLookup,
  MEDIA_AUTH_SKEW_MS,
  mediaUploadAuthMessage,
  storageIdentityLookup,
  UploadAuthenticator,
} from "./auth.ts";
export type { BlobInfo, BlobStore, UploadOwner, UploadState } from "./blob-store.ts";
export { MediaStoreError, type MediaStoreErrorCode } from "./errors.ts";
export { FsBlobStore } from "./fs-blob-store.ts";
export { isMediaPath, MediaHttpHandler } from "./http.ts";
export { isValidMediaId, MEDIA_ID_BYTES, MEDIA_ID_LENGTH, newMediaId } from "./ids.ts";
export {
  createMediaService,
  DEFAULT_MEDIA_MAX_BYTES,
  DEFAULT_MEDIA_RETENTION_DAYS,
  type MediaService,
  type MediaServiceOptions,
  UPLOAD_TTL_MS,
} from "./service.ts";
