// Node part of the media module: streaming file encryption, upload, download, terminal progress.

export { BlobVerifier, decryptBlobFile, type EncryptResult, MediaEncryptStream } from "./crypto-stream.node.ts";
export {
  type DownloadedMedia,
  type DownloadMediaOptions,
  downloadMedia,
  mediaDir,
  safeFileName,
} from "./download.node.ts";
export { guessMime, inspectFile, wavInfo } from "./file-info.node.ts";
export * from "./index.ts";
export {
  formatBytes,
  formatEta,
  renderProgressLine,
  type TerminalProgressOptions,
  terminalProgress,
} from "./progress.node.ts";
export { type UploadMediaOptions, uploadMediaFile } from "./upload.node.ts";
