// Multi-device trust (docs/multi-device.md): checking a user's signed device
// list, and building what the primary signs when it links a companion.
// Browser-safe: only @parley/signal and @parley/wire.
import {
  constantTimeEqual,
  decodePublicKey,
  encodePublicKey,
  getCrypto,
  xeddsaSign,
  xeddsaVerify,
} from "@parley/signal";
import {
  accountSignedBytes,
  type DeviceList,
  decodeDeviceIdentity,
  decodeDeviceList,
  decodeLinkOffer,
  deviceListSignedBytes,
  deviceSignedBytes,
  encodeDeviceIdentity,
  encodeDeviceList,
  encodeLinkOffer,
  encodeSignedDeviceList,
  type LinkCode,
  linkOfferMacInput,
  splitSignedDeviceList,
} from "@parley/wire";

export class DeviceTrustError extends Error {
  override readonly name = "DeviceTrustError";
  readonly code = "UNTRUSTED_DEVICE_LIST";
}

/**
 * Verifies `blob` as `user`'s device list signed by `primaryIdentityKey` (33 bytes) and checks the
 * server's device ids against it. Returns the identity key of each listed device.
 */
export function verifyDeviceList(
  user: string,
  serverDevices: readonly number[],
  blob: Uint8Array,
  primaryIdentityKey: Uint8Array,
): Map<number, Uint8Array> {
  if (blob.length === 0) {
    if (serverDevices.length === 1 && serverDevices[0] === 1) return new Map([[1, primaryIdentityKey]]);
    throw new DeviceTrustError(`${user} has linked devices but no signed device list: refusing to encrypt to them`);
  }
  let list: DeviceList;
  try {
    const { list: bytes, signature } = splitSignedDeviceList(blob);
    if (!xeddsaVerify(decodePublicKey(primaryIdentityKey), deviceListSignedBytes(bytes), signature)) {
      throw new DeviceTrustError(`${user}'s device list is not signed by their primary device`);
    }
    list = decodeDeviceList(bytes);
  } catch (err) {
    if (err instanceof DeviceTrustError) throw err;
    throw new DeviceTrustError(`${user}'s device list is malformed: ${(err as Error).message}`);
  }
  if (list.user !== user) throw new DeviceTrustError(`the device list for ${user} names ${list.user}`);
  const keys = new Map(list.devices.map((d) => [d.id, d.identityKey]));
  const primary = keys.get(1);
  if (!primary || !constantTimeEqual(primary, primaryIdentityKey)) {
    throw new DeviceTrustError(`${user}'s device list does not list the primary identity key`);
  }
  for (const d of serverDevices) {
    if (!keys.has(d))
      throw new DeviceTrustError(`the server lists device ${d} of ${user}, which their signed list does not`);
  }
  return keys;
}

/** The primary signs a device list with its identity private key. */
export function signDeviceList(list: DeviceList, identityPrivateKey: Uint8Array): Uint8Array {
  const bytes = encodeDeviceList(list);
  return encodeSignedDeviceList(bytes, xeddsaSign(identityPrivateKey, deviceListSignedBytes(bytes)));
}

/** Primary: the link offer for the companion in `code`. */
export function buildLinkOffer(
  code: LinkCode,
  user: string,
  identity: { privateKey: Uint8Array; publicKey: Uint8Array },
  now: number,
): { payload: Uint8Array; deviceIdentity: Uint8Array } {
  const deviceIdentity = encodeDeviceIdentity({
    user,
    identityKey: code.identityKey,
    noiseKey: code.noiseKey,
    createdAt: Math.floor(now / 1000),
  });
  const accountSignature = xeddsaSign(identity.privateKey, accountSignedBytes(deviceIdentity));
  const primaryIdentityKey = encodePublicKey(identity.publicKey);
  const mac = getCrypto().hmacSha256(
    code.secret,
    linkOfferMacInput({ deviceIdentity, accountSignature, primaryIdentityKey }),
  );
  return { payload: encodeLinkOffer({ deviceIdentity, accountSignature, primaryIdentityKey, mac }), deviceIdentity };
}

/**
 * Companion: checks the primary's offer (MAC with the secret from our QR code, account signature,
 * that it names our keys) and countersigns it.
 */
export function acceptLinkOffer(
  payload: Uint8Array,
  secret: Uint8Array,
  ours: { identityKey: Uint8Array; noiseKey: Uint8Array; identityPrivateKey: Uint8Array },
): {
  user: string;
  deviceIdentity: Uint8Array;
  accountSignature: Uint8Array;
  deviceSignature: Uint8Array;
  primaryIdentityKey: Uint8Array;
} {
  const offer = decodeLinkOffer(payload);
  const mac = getCrypto().hmacSha256(secret, linkOfferMacInput(offer));
  if (!constantTimeEqual(mac, offer.mac))
    throw new DeviceTrustError("the link offer is not authenticated by our link code");
  if (
    !xeddsaVerify(
      decodePublicKey(offer.primaryIdentityKey),
      accountSignedBytes(offer.deviceIdentity),
      offer.accountSignature,
    )
  ) {
    throw new DeviceTrustError("the link offer's account signature does not verify");
  }
  const identity = decodeDeviceIdentity(offer.deviceIdentity);
  if (
    !constantTimeEqual(identity.identityKey, ours.identityKey) ||
    !constantTimeEqual(identity.noiseKey, ours.noiseKey)
  ) {
    throw new DeviceTrustError("the link offer names another device");
  }
  const deviceSignature = xeddsaSign(
    ours.identityPrivateKey,
    deviceSignedBytes(offer.deviceIdentity, offer.primaryIdentityKey),
  );
  return {
    user: identity.user,
    deviceIdentity: offer.deviceIdentity,
    accountSignature: offer.accountSignature,
    deviceSignature,
    primaryIdentityKey: offer.primaryIdentityKey,
  };
}
