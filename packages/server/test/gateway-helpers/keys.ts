// Device key material for raw test clients: real Signal keys with valid XEdDSA
// signatures (the server verifies them), generated with @parley/signal in the
// TEST only: the server's src/ may import just @parley/signal/verify.
import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateKyberPreKey,
  generateRegistrationId,
  generateSignedPreKey,
  type IdentityKeyPair,
  serializeKemPublicKey,
} from "@parley/signal";
import type { IqRequest, SignedPreKey } from "@parley/wire";

export interface DeviceKeys {
  identity: IdentityKeyPair;
  registrationId: number;
  signedPreKey: SignedPreKey;
  kyberPreKey: SignedPreKey;
}

export function newDeviceKeys(): DeviceKeys {
  const identity = generateIdentityKeyPair();
  const signed = generateSignedPreKey(identity, 1);
  const kyber = generateKyberPreKey(identity, 1, { lastResort: true });
  return {
    identity,
    registrationId: generateRegistrationId(),
    signedPreKey: { id: signed.id, key: encodePublicKey(signed.keyPair.publicKey), signature: signed.signature },
    kyberPreKey: {
      id: kyber.id,
      key: serializeKemPublicKey(kyber.keyPair.type, kyber.keyPair.publicKey),
      signature: kyber.signature,
    },
  };
}

export function registerDeviceRequest(noiseKey: Uint8Array, keys: DeviceKeys): IqRequest {
  return {
    op: "register-device",
    noiseKey,
    registrationId: keys.registrationId,
    identityKey: encodePublicKey(keys.identity.publicKey),
    signedPreKey: keys.signedPreKey,
    kyberPreKey: keys.kyberPreKey,
    oneTimePreKeys: [],
    kyberOneTimePreKeys: [],
  };
}
