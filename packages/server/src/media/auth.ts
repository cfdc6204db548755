// Upload authentication: the client proves it is a registered device by signing
// "parley-media-upload|<user>|<device>|<ts>" with its IDENTITY key (XEdDSA), sent as
//   Authorization: Parley <user>:<device>:<ts>:<base64url signature>
// (ts = Unix seconds, accepted within ±5 minutes of the server clock). The signature is checked
// against the identity key the device registered. A header can be replayed within its window by
// whoever sees it, like any bearer credential: deployments put TLS in front. Gateway-issued
// short-lived upload tokens can replace this later without changing the store.
import { decodePublicKey, xeddsaVerify } from "@parley/signal/verify";
import type { Clock } from "../clock.ts";
import type { ServerStorage } from "../storage/index.ts";
import type { UploadOwner } from "./blob-store.ts";
import { MediaStoreError } from "./errors.ts";

export const MEDIA_AUTH_SKEW_MS = 5 * 60 * 1000;
const HEADER = /^Parley ([^\s:]{1,64}):(\d{1,10}):(\d{1,12}):([A-Za-z0-9_-]{86})$/;
const CACHE_LIMIT = 10_000;

/** The exact bytes a device signs; the client side builds the same string. */
export function mediaUploadAuthMessage(user: string, device: number, ts: number): Uint8Array {
  return new TextEncoder().encode(`parley-media-upload|${user}|${device}|${ts}`);
}

/** A registered device's canonical account name and serialized (33-byte) identity key, or null. */
export type IdentityKeyLookup = (
  user: string,
  device: number,
) => Promise<{ name: string; identityKey: Uint8Array } | null>;

export function storageIdentityLookup(
  storage: Pick<ServerStorage, "getAccountByName" | "getDevice">,
): IdentityKeyLookup {
  return async (user, device) => {
    const account = await storage.getAccountByName(user);
    if (!account) return null;
    const found = await storage.getDevice(account.id, device);
    return found ? { name: account.name, identityKey: found.identityKey } : null;
  };
}

export class UploadAuthenticator {
  // A resumable upload sends many requests with one header; verify each distinct header once.
  private readonly verified = new Map<string, { owner: UploadOwner; validUntil: number }>();

  constructor(
    private readonly lookup: IdentityKeyLookup,
    private readonly clock: Clock,
  ) {}

  async authenticate(header: string | undefined): Promise<UploadOwner> {
    if (header === undefined) {
      throw new MediaStoreError("UNAUTHORIZED", "uploads need Authorization: Parley <user>:<device>:<ts>:<sig>");
    }
    const now = this.clock.now();
    const cached = this.verified.get(header);
    if (cached && now <= cached.validUntil) return cached.owner;
    const m = HEADER.exec(header);
    if (!m) throw new MediaStoreError("UNAUTHORIZED", "malformed Authorization header");
    const [, user, deviceText, tsText, sigText] = m as unknown as [string, string, string, string, string];
    const device = Number(deviceText);
    const tsMs = Number(tsText) * 1000;
    if (Math.abs(now - tsMs) > MEDIA_AUTH_SKEW_MS) {
      throw new MediaStoreError("UNAUTHORIZED", "Authorization timestamp is more than 5 minutes off the server clock");
    }
    const found = await this.lookup(user, device);
    if (!found) throw new MediaStoreError("UNAUTHORIZED", "unknown user or device");
    let valid = false;
    try {
      const raw = decodePublicKey(found.identityKey);
      valid = xeddsaVerify(
        raw,
        mediaUploadAuthMessage(user, device, Number(tsText)),
        Buffer.from(sigText, "base64url"),
      );
    } catch {
      valid = false;
    }
    if (!valid) throw new MediaStoreError("UNAUTHORIZED", "bad upload signature");
    const owner = { user: found.name, device };
    if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
    this.verified.set(header, { owner, validUntil: tsMs + MEDIA_AUTH_SKEW_MS });
    return owner;
  }
}
