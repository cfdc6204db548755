// Sending and receiving files with a ParleyClient in Node: the file is
// encrypted while it streams to the content store; only the descriptor (pointer,
// media key, hashes) travels, end-to-end encrypted, in the message.
import { dirname } from "node:path";
import type { ParleyClient } from "./client.ts";
import { ClientError } from "./client.ts";
import {
  type DownloadedMedia,
  downloadMedia,
  type MediaProgressCallback,
  mediaBaseUrl,
  mediaDir,
  mediaUploadCredentials,
  uploadMediaFile,
} from "./media/index.node.ts";

export interface SendFileOptions {
  caption?: string;
  onProgress?: MediaProgressCallback;
  signal?: AbortSignal;
}

/** Uploads `path` (encrypted) and queues the message; resolves with the message id once it is queued. */
export async function sendFile(
  client: ParleyClient,
  to: string,
  path: string,
  options: SendFileOptions = {},
): Promise<string> {
  const server = client.store.getMeta("serverUrl");
  if (!server) throw new ClientError("NOT_REGISTERED", "register this profile first");
  const descriptor = await uploadMediaFile(path, {
    baseUrl: mediaBaseUrl(server),
    credentials: mediaUploadCredentials(client.store),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return client.queueMedia(to, descriptor, options.caption);
}

/** Downloads, verifies and decrypts the attachment of message (sender, id) into the profile's media folder. */
export async function downloadAttachment(
  client: ParleyClient,
  sender: string,
  id: string,
  options: { onProgress?: MediaProgressCallback; destDir?: string } = {},
): Promise<DownloadedMedia> {
  const descriptor = client.attachment(sender, id);
  if (!descriptor) throw new ClientError("NOT_FOUND", `message ${id} from ${sender} has no attachment`);
  return downloadMedia(descriptor, {
    destDir: options.destDir ?? mediaDir(dirname(client.store.path)),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** Forwards a received (or sent) attachment to `to`: the same blob, no second upload. */
export function forwardAttachment(
  client: ParleyClient,
  sender: string,
  id: string,
  to: string,
  caption?: string,
): string {
  const descriptor = client.attachment(sender, id);
  if (!descriptor) throw new ClientError("NOT_FOUND", `message ${id} from ${sender} has no attachment`);
  return client.queueMedia(to, descriptor, caption);
}
