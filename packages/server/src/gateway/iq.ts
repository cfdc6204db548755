// Request/response operations (iq stanzas): registration, prekeys, device
// lists, account settings. Each answers with exactly one iq-result or
// iq-error carrying the request's id.
import { randomInt } from "node:crypto";
import { decodeKemPublicKey, decodePublicKey, isSignalError, xeddsaVerify } from "@parley/signal/verify";
import type { DeviceKeys, IqRequest, IqResult, IqStanza, PreKeyBundle, SignedPreKey, StanzaError } from "@parley/wire";
import {
  accountSignedBytes,
  CloseCode,
  decodeDeviceIdentity,
  decodeDeviceList,
  deviceListSignedBytes,
  deviceSignedBytes,
  encodeStanza,
  splitSignedDeviceList,
  splitSignedGroupChange,
} from "@parley/wire";
import type { KemPreKey, PreKeyBundle as StoredBundle } from "../storage/index.ts";
import { isStorageError, normalizeAccountName } from "../storage/index.ts";
import { GroupError } from "./groups.ts";
import { LinkError } from "./links.ts";
import { type ClientSession, sameBytes } from "./session.ts";

/** A device below this many one-time prekeys of either kind is told to upload more. */
export const PREKEYS_LOW_WATERMARK = 10;
/** Verification codes expire after this long. */
const CODE_TTL_MS = 10 * 60 * 1000;
const MAX_CODE_ATTEMPTS = 5;

class IqFailure extends Error {
  constructor(readonly error: StanzaError) {
    super(error.text ?? error.code);
  }
}
const fail = (code: string, text: string): never => {
  throw new IqFailure({ code, text });
};

/** Checks an XEdDSA signature by `identityKey` (33-byte encoded) over `signed`. */
function checkSignature(identityKey: Uint8Array, signed: Uint8Array, signature: Uint8Array, what: string): void {
  let ok = false;
  try {
    ok = xeddsaVerify(decodePublicKey(identityKey), signed, signature);
  } catch (err) {
    if (!isSignalError(err)) throw err;
  }
  if (!ok) fail("bad-request", `${what}: signature does not verify with the identity key`);
}

function checkKemKey(k: SignedPreKey, identityKey: Uint8Array, what: string): KemPreKey {
  try {
    decodeKemPublicKey(k.key);
  } catch {
    fail("bad-request", `${what}: not an ML-KEM-1024 public key`);
  }
  checkSignature(identityKey, k.key, k.signature, what);
  return { id: k.id, publicKey: k.key, signature: k.signature };
}

function checkSignedPreKey(k: SignedPreKey, identityKey: Uint8Array) {
  try {
    decodePublicKey(k.key);
  } catch {
    fail("bad-request", "signed prekey: not a Curve25519 public key");
  }
  checkSignature(identityKey, k.key, k.signature, "signed prekey");
  return { id: k.id, publicKey: k.key, signature: k.signature };
}

/** Checks every key a new device registers with: encodings, and signatures by its identity key. */
function checkNewDeviceKeys(
  req: Pick<DeviceKeys, "identityKey" | "signedPreKey" | "kyberPreKey" | "kyberOneTimePreKeys" | "oneTimePreKeys">,
) {
  const signedPreKey = checkSignedPreKey(req.signedPreKey, req.identityKey);
  const lastResortKemPreKey = checkKemKey(req.kyberPreKey, req.identityKey, "last-resort KEM prekey");
  const kemOneTime = req.kyberOneTimePreKeys.map((k) => checkKemKey(k, req.identityKey, `KEM prekey ${k.id}`));
  for (const k of req.oneTimePreKeys) {
    try {
      decodePublicKey(k.key);
    } catch {
      fail("bad-request", `one-time prekey ${k.id}: not a Curve25519 public key`);
    }
  }
  return { signedPreKey, lastResortKemPreKey, kemOneTime };
}

function toWireBundle(user: string, b: StoredBundle): PreKeyBundle {
  return {
    user,
    device: b.deviceId,
    registrationId: b.registrationId,
    identityKey: b.identityKey,
    signedPreKey: { id: b.signedPreKey.id, key: b.signedPreKey.publicKey, signature: b.signedPreKey.signature },
    kyberPreKey: { id: b.kemPreKey.id, key: b.kemPreKey.publicKey, signature: b.kemPreKey.signature },
    ...(b.ecPreKey ? { oneTimePreKey: { id: b.ecPreKey.id, key: b.ecPreKey.publicKey } } : {}),
  };
}

export async function handleIq(session: ClientSession, iq: IqStanza): Promise<void> {
  try {
    const result = await run(session, iq.request);
    if (!session.send({ kind: "iq-result", id: iq.id, result }) && session.connection.state === "open") {
      // The answer does not fit one stanza: say so rather than leave the request hanging.
      session.send({
        kind: "iq-error",
        id: iq.id,
        error: { code: "too-large", text: "the answer exceeds the stanza size limit; ask for fewer" },
      });
    }
  } catch (err) {
    if (err instanceof IqFailure) {
      session.send({ kind: "iq-error", id: iq.id, error: err.error });
      return;
    }
    if (err instanceof GroupError) {
      session.send({ kind: "iq-error", id: iq.id, error: { code: err.code, text: err.message } });
      return;
    }
    if (isStorageError(err)) {
      const code = {
        NOT_FOUND: "not-found",
        CONFLICT: "conflict",
        INVALID_ARGUMENT: "bad-request",
        LIMIT_EXCEEDED: "too-large",
      }[err.code as string];
      if (code) {
        session.send({ kind: "iq-error", id: iq.id, error: { code, text: err.message } });
        return;
      }
    }
    session.send({ kind: "iq-error", id: iq.id, error: { code: "internal", text: "internal error" } });
    throw err;
  }
}

async function requireIdentityKey(session: ClientSession): Promise<Uint8Array> {
  return (await session.identityKey()) ?? fail("not-found", "this device is no longer registered");
}

async function run(session: ClientSession, req: IqRequest): Promise<IqResult> {
  const gw = session.gateway;
  const storage = gw.storage;

  if (session.account === undefined) {
    // A registering connection may only register, or link as a companion.
    if (req.op === "register-account") return registerAccount(session, req.name, req.code);
    if (req.op === "register-device") return registerPrimaryDevice(session, req);
    if (req.op === "link-wait") return linkWait(session, req.ref);
    if (req.op === "link-complete") return linkComplete(session, req);
    return fail("unauthorized", `register first (${req.op} needs a logged-in device)`);
  }
  const me = session.account;
  const myDevice = session.device!;

  switch (req.op) {
    case "register-account":
    case "register-device":
      return fail("conflict", "this connection is already logged in");

    case "upload-prekeys": {
      const identityKey = await requireIdentityKey(session);
      await storage.uploadPreKeys(me.id, myDevice, {
        ...(req.signedPreKey ? { signedPreKey: checkSignedPreKey(req.signedPreKey, identityKey) } : {}),
        ...(req.kyberPreKey
          ? { lastResortKemPreKey: checkKemKey(req.kyberPreKey, identityKey, "last-resort KEM prekey") }
          : {}),
        ecOneTime: req.oneTimePreKeys.map((k) => {
          try {
            decodePublicKey(k.key);
          } catch {
            fail("bad-request", `one-time prekey ${k.id}: not a Curve25519 public key`);
          }
          return { id: k.id, publicKey: k.key };
        }),
        kemOneTime: req.kyberOneTimePreKeys.map((k) => checkKemKey(k, identityKey, `KEM prekey ${k.id}`)),
      });
      return { op: "ok" };
    }

    case "prekey-count": {
      const c = await storage.getPreKeyCounts(me.id, myDevice);
      return { op: "prekey-count", oneTime: c.ecOneTime, kyberOneTime: c.kemOneTime };
    }

    case "fetch-bundles": {
      if (req.users.length > 64) fail("too-large", "at most 64 users per fetch");
      if (!gw.keyFetchLimiter.take(me.id, req.users.length)) fail("rate-limited", "too many key fetches");
      const bundles: PreKeyBundle[] = [];
      for (const { user, devices } of req.users) {
        const account = await storage.getAccountByName(user);
        if (!account) fail("not-found", `no account named ${user}`);
        const taken =
          devices === undefined
            ? await storage.takePreKeyBundles(account!.id)
            : await Promise.all(devices.map((d) => storage.takePreKeyBundle(account!.id, d)));
        for (const b of taken) {
          bundles.push(toWireBundle(account!.name, b));
          void warnIfLow(session, account!.id, account!.name, b.deviceId);
        }
      }
      return { op: "bundles", bundles };
    }

    case "get-devices": {
      if (req.users.length > 256) fail("too-large", "at most 256 users per request");
      const lists = [];
      for (const user of req.users) {
        const account = await storage.getAccountByName(user);
        if (!account) fail("not-found", `no account named ${user}`);
        const devices = (await storage.listDevices(account!.id)).map((d) => d.deviceId);
        const list = (await storage.getDeviceList(account!.id))?.blob ?? new Uint8Array(0);
        lists.push({ user: account!.name, devices, list });
      }
      return { op: "devices", lists };
    }

    case "set-devices": {
      if (myDevice !== 1) fail("forbidden", "only the primary device publishes the device list");
      // Defense in depth: contacts verify the list themselves; the server refuses one that would fail.
      const identityKey = await requireIdentityKey(session);
      let list: ReturnType<typeof decodeDeviceList>;
      try {
        const { list: bytes, signature } = splitSignedDeviceList(req.list);
        list = decodeDeviceList(bytes);
        checkSignature(identityKey, deviceListSignedBytes(bytes), signature, "device list");
      } catch (err) {
        if (err instanceof IqFailure) throw err;
        return fail("bad-request", `malformed device list: ${(err as Error).message}`);
      }
      if (list.user !== me.name) fail("bad-request", "the device list names another account");
      const current = (await storage.listDevices(me.id)).map((d) => d.deviceId).sort((a, b) => a - b);
      const listed = list.devices.map((d) => d.id).sort((a, b) => a - b);
      if (current.join(",") !== listed.join(",")) {
        fail("conflict", `the list must name exactly the account's devices (${current.join(", ")})`);
      }
      const stored = await storage.getDeviceList(me.id);
      if (stored && list.version <= stored.version) fail("conflict", `list version must exceed ${stored.version}`);
      await storage.setDeviceList(me.id, { version: list.version, blob: req.list });
      await notifyDevicesChanged(session);
      return { op: "ok" };
    }

    case "link-offer": {
      if (myDevice !== 1) fail("forbidden", "only the primary device links new devices");
      try {
        const device = await gw.links.offer(Buffer.from(req.ref).toString("hex"), me.name, req.payload);
        return { op: "device", device };
      } catch (err) {
        if (err instanceof LinkError) return fail(err.code, err.message);
        throw err;
      }
    }

    case "remove-device": {
      if (myDevice !== 1) fail("forbidden", "only the primary device unlinks devices");
      if (req.device === 1) fail("bad-request", "the primary device cannot be unlinked; delete the account instead");
      await storage.removeDevice(me.id, req.device);
      gw.devicesChanged(me.id, me.name);
      gw.router.publish({ type: "revoke", user: me.name, device: req.device });
      return { op: "ok" };
    }

    case "set-privacy": {
      if (req.setting !== "presence" && req.setting !== "last-seen") {
        fail("bad-request", `privacy setting ${req.setting} is not supported yet`);
      }
      await storage.setPresencePrivacy(me.id, req.value === "all" ? "everyone" : req.value);
      return { op: "ok" };
    }

    case "set-contacts": {
      if (req.users.length > 10_000) fail("too-large", "at most 10,000 contacts");
      await storage.setContacts(me.id, req.users);
      return { op: "ok" };
    }

    case "group-change": {
      const version = await gw.groups.applyChange(
        { accountId: me.id, user: me.name, device: myDevice, identityKey: await requireIdentityKey(session) },
        req.change,
      );
      return { op: "groups", groups: [{ group: splitGroupId(req.change), version }] };
    }

    case "group-log":
      return { op: "group-log", changes: await gw.groups.log(req.group, req.after, me.id) };

    case "group-invite-preview": {
      const group = await gw.groups.groupForInvite(req.code);
      return { op: "group-log", changes: await gw.groups.log(group, 0, null) };
    }

    case "groups":
      return { op: "groups", groups: await storage.listGroups(me.id) };

    case "delete-account": {
      await storage.deleteAccount(me.id);
      setImmediate(() => session.close(CloseCode.NORMAL, "account deleted"));
      return { op: "ok" };
    }

    default:
      return fail("unavailable", `${req.op} is not supported by this server yet`);
  }
}

/** The group id inside a signed change the gateway has just accepted. */
const splitGroupId = (signed: Uint8Array) => splitSignedGroupChange(signed).change.group;

async function warnIfLow(session: ClientSession, accountId: string, user: string, deviceId: number): Promise<void> {
  try {
    const c = await session.gateway.storage.getPreKeyCounts(accountId, deviceId);
    if (c.ecOneTime >= PREKEYS_LOW_WATERMARK && c.kemOneTime >= PREKEYS_LOW_WATERMARK) return;
    const names = new Map([[accountId, user]]);
    const envelope = encodeStanza({
      kind: "notification",
      id: 0,
      timestamp: Math.floor(session.gateway.clock.now() / 1000),
      event: { type: "prekeys-low", oneTime: c.ecOneTime, kyberOneTime: c.kemOneTime },
    });
    await session.gateway.enqueueAndWake([{ accountId, deviceId, envelope }], names);
  } catch (err) {
    session.gateway.log.warn({ err }, "could not queue prekeys-low notice");
  }
}

/** Tells our other devices and our contacts to refetch our device list (a queued notification). */
async function notifyDevicesChanged(session: ClientSession): Promise<void> {
  const gw = session.gateway;
  const me = session.account!;
  const envelope = encodeStanza({
    kind: "notification",
    id: 0,
    timestamp: Math.floor(gw.clock.now() / 1000),
    event: { type: "devices-changed", user: me.name },
  });
  const items = [];
  const names = new Map<string, string>([[me.id, me.name]]);
  for (const d of await gw.deviceIds(me.id))
    if (d !== session.device) items.push({ accountId: me.id, deviceId: d, envelope });
  for (const name of await gw.storage.getContacts(me.id)) {
    const contact = await gw.accountByName(name);
    if (!contact) continue;
    names.set(contact.id, contact.name);
    for (const d of await gw.deviceIds(contact.id))
      items.push({ accountId: contact.id, deviceId: d, envelope, durable: false });
  }
  if (items.length > 0) await gw.enqueueAndWake(items, names);
}

// -------------------------------------------------------------- linking

async function linkWait(session: ClientSession, ref: Uint8Array): Promise<IqResult> {
  if (ref.length !== 16) return fail("bad-request", "a link reference is 16 bytes");
  try {
    session.gateway.links.wait(Buffer.from(ref).toString("hex"), session);
  } catch (err) {
    if (err instanceof LinkError) return fail(err.code, err.message);
    throw err;
  }
  return { op: "ok" };
}

async function linkComplete(
  session: ClientSession,
  req: Extract<IqRequest, { op: "link-complete" }>,
): Promise<IqResult> {
  const gw = session.gateway;
  const ref = Buffer.from(req.ref).toString("hex");
  let identity: ReturnType<typeof decodeDeviceIdentity>;
  try {
    identity = decodeDeviceIdentity(req.deviceIdentity);
  } catch (err) {
    return fail("bad-request", `malformed device identity: ${(err as Error).message}`);
  }
  try {
    gw.links.checkComplete(ref, identity.user, session);
  } catch (err) {
    if (err instanceof LinkError) return fail(err.code, err.message);
    throw err;
  }
  if (
    !sameBytes(identity.noiseKey, session.connection.remoteStaticPublicKey) ||
    !sameBytes(req.noiseKey, identity.noiseKey)
  ) {
    fail("bad-request", "the device identity's noise key must be this connection's static key");
  }
  if (!sameBytes(identity.identityKey, req.identityKey))
    fail("bad-request", "the device identity names another identity key");
  const account = await gw.storage.getAccountByName(identity.user);
  if (!account) return fail("not-found", `no account named ${identity.user}`);
  const primary = await gw.storage.getDevice(account.id, 1);
  if (!primary) return fail("not-found", "the account has no primary device");
  // The primary signed this companion (account signature); the companion countersigned (device signature).
  checkSignature(
    primary.identityKey,
    accountSignedBytes(req.deviceIdentity),
    req.accountSignature,
    "account signature",
  );
  checkSignature(
    req.identityKey,
    deviceSignedBytes(req.deviceIdentity, primary.identityKey),
    req.deviceSignature,
    "device signature",
  );
  const { signedPreKey, lastResortKemPreKey, kemOneTime } = checkNewDeviceKeys(req);
  let device: Awaited<ReturnType<typeof gw.storage.addDevice>>;
  try {
    device = await gw.storage.addDevice(account.id, {
      noiseStaticKey: req.noiseKey,
      registrationId: req.registrationId,
      identityKey: req.identityKey,
      signedPreKey,
      lastResortKemPreKey,
    });
  } catch (err) {
    if (isStorageError(err, "LIMIT_EXCEEDED")) {
      gw.links.failed(ref, "the account already has the most linked devices allowed");
      return fail("too-large", "the account already has the most linked devices allowed (4 companions)");
    }
    throw err;
  }
  await gw.storage.uploadPreKeys(account.id, device.deviceId, {
    ecOneTime: req.oneTimePreKeys.map((k) => ({ id: k.id, publicKey: k.key })),
    kemOneTime,
  });
  gw.devicesChanged(account.id, account.name);
  gw.links.completed(ref, account.name, device.deviceId);
  gw.log.info({ user: account.name, device: device.deviceId }, "device linked");
  session.account = account;
  session.device = device.deviceId;
  gw.attach(session);
  return { op: "linked", user: account.name, device: device.deviceId };
}

// --------------------------------------------------------------- registration

async function registerAccount(session: ClientSession, rawName: string, code: string): Promise<IqResult> {
  const gw = session.gateway;
  let name: string;
  try {
    name = normalizeAccountName(rawName);
  } catch {
    return fail(
      "bad-request",
      "a name is a username (3–32 lowercase letters, digits, '.' and '_', starting with a letter) or a phone number in +E.164 form",
    );
  }
  if (await gw.storage.getAccountByName(name)) fail("name-taken", `${name} is already registered`);
  if (gw.config.dev) {
    session.verifiedName = name; // --dev: no verification, for local use and scripts
    return { op: "account", user: name };
  }
  if (code === "") {
    if (!gw.globalRegistrationLimiter.take("all") || !gw.registrationLimiter.take(name)) {
      fail("rate-limited", "too many verification codes requested; try later");
    }
    const fresh = String(randomInt(0, 1_000_000)).padStart(6, "0");
    await gw.storage.putPendingRegistration(name, fresh, gw.clock.now() + CODE_TTL_MS);
    await gw.verifier.sendCode(name, fresh);
    return { op: "ok" };
  }
  const outcome = await gw.storage.verifyPendingRegistration(name, code, MAX_CODE_ATTEMPTS);
  if (outcome !== "ok") fail("bad-code", `verification failed: ${outcome.replaceAll("_", " ")}`);
  session.verifiedName = name;
  return { op: "account", user: name };
}

async function registerPrimaryDevice(
  session: ClientSession,
  req: Extract<IqRequest, { op: "register-device" }>,
): Promise<IqResult> {
  const name = session.verifiedName;
  if (name === undefined) return fail("unauthorized", "verify an account name first (register-account)");
  if (!sameBytes(req.noiseKey, session.connection.remoteStaticPublicKey)) {
    fail("bad-request", "noiseKey must be the static key of this connection");
  }
  try {
    decodePublicKey(req.identityKey);
  } catch {
    fail("bad-request", "identityKey: not a Curve25519 public key");
  }
  const { signedPreKey, lastResortKemPreKey, kemOneTime } = checkNewDeviceKeys(req);
  const storage = session.gateway.storage;
  const { account, device } = await storage.createAccount(name, {
    noiseStaticKey: req.noiseKey,
    registrationId: req.registrationId,
    identityKey: req.identityKey,
    signedPreKey,
    lastResortKemPreKey,
  });
  await storage.uploadPreKeys(account.id, device.deviceId, {
    ecOneTime: req.oneTimePreKeys.map((k) => ({ id: k.id, publicKey: k.key })),
    kemOneTime,
  });
  session.gateway.log.info({ user: account.name }, "account registered");
  session.account = account;
  session.device = device.deviceId;
  session.gateway.attach(session);
  return { op: "device", device: device.deviceId };
}
