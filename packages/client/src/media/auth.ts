// Upload credentials for the content store: the device signs
// "parley-media-upload|<user>|<device>|<ts>" (ts = Unix seconds) with its identity key (XEdDSA);
// the server checks it against the identity key the device registered (see docs/media.md).
import { xeddsaSign } from "@parley/signal";
import type { ProfileStore } from "../store/types.ts";
import { MediaError } from "./errors.ts";

export interface MediaUploadCredentials {
  user: string;
  device: number;
  /** The device's 32-byte X25519 identity private key. */
  identityPrivateKey: Uint8Array;
}

/** The Authorization header value for an upload request, valid ±5 minutes around `nowMs`. */
export function mediaUploadAuthorization(credentials: MediaUploadCredentials, nowMs = Date.now()): string {
  const ts = Math.floor(nowMs / 1000);
  const message = new TextEncoder().encode(`parley-media-upload|${credentials.user}|${credentials.device}|${ts}`);
  const sig = xeddsaSign(credentials.identityPrivateKey, message);
  let b64 = "";
  for (const byte of sig) b64 += String.fromCharCode(byte);
  const base64url = btoa(b64).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `Parley ${credentials.user}:${credentials.device}:${ts}:${base64url}`;
}

/** The credentials of a registered profile (`client.store`). */
export function mediaUploadCredentials(store: Pick<ProfileStore, "getMeta">): MediaUploadCredentials {
  const user = store.getMeta("accountName");
  const device = store.getMeta("deviceId");
  const pair = store.getMeta("identityKeyPair");
  if (user === undefined || device === undefined || pair === undefined) {
    throw new MediaError("UNAUTHORIZED", "this profile is not registered: no identity to sign uploads with");
  }
  return { user, device, identityPrivateKey: pair.slice(0, 32) };
}
