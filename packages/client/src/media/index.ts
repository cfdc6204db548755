// Browser-safe part of the media module: key schedule, descriptor codec, whole-buffer crypto,
// waveform and image-size helpers, progress metering, upload credentials.
export { type MediaUploadCredentials, mediaUploadAuthorization, mediaUploadCredentials } from "./auth.ts";
export {
  blobUrl,
  DESCRIPTOR_VERSION,
  decodeMediaDescriptor,
  encodeMediaDescriptor,
  forwardDescriptor,
  MAX_THUMBNAIL_BYTES,
  type MediaDescriptor,
  type MediaPointer,
  mediaBaseUrl,
  validateMediaDescriptor,
  WAVEFORM_LENGTH,
} from "./descriptor.ts";
export { isMediaError, MediaError, type MediaErrorCode } from "./errors.ts";
export { type ImageSize, imageSize } from "./image-info.ts";
export {
  deriveMediaKeys,
  encryptedSize,
  generateMediaKey,
  MEDIA_KEY_LENGTH,
  MEDIA_MAC_LENGTH,
  MEDIA_TYPES,
  type MediaKeys,
  type MediaType,
  mediaTypeForMime,
} from "./keys.ts";
export { constantTimeEqual, decryptMediaBytes, type EncryptedMedia, encryptMediaBytes } from "./memory.ts";
export { type MediaPhase, type MediaProgress, type MediaProgressCallback, ProgressMeter } from "./progress.ts";
export { type AudioInfo, WavWaveform, waveformFromSamples } from "./waveform.ts";
