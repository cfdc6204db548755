import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { ManualClock } from "../clock.ts";
import { StorageError, type StorageErrorCode } from "./errors.ts";
import type {
  AccountId,
  GroupUpdate,
  KemPreKey,
  NewDevice,
  OneTimePreKey,
  QueueEntry,
  ServerStorage,
} from "./types.ts";

/**
 * The behaviour every ServerStorage implementation must show. An implementation's test file calls
 * runStorageConformance with a factory for fresh, empty stores; the SQLite one runs it on real temp
 * files, a PostgreSQL one would run it on a fresh schema.
 */
export interface StorageHarness {
  storage: ServerStorage;
  /** Closes everything this harness opened and deletes the store. */
  cleanup(): Promise<void>;
  /** Closes `storage` and opens the same store again (durability checks). Optional. */
  reopen?(): Promise<ServerStorage>;
  /** Opens a second, independent connection to the same store (cross-connection atomicity). Optional. */
  openPeer?(): Promise<ServerStorage>;
  /** How many shared payloads the store holds (checks that a group payload is stored once). Optional. */
  payloadCount?(): Promise<number>;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const START_MS = Date.UTC(2026, 0, 1);

export function newTestDevice(seed = randomBytes(4).readUInt32BE(0)): NewDevice {
  const fill = (length: number, byte: number) => {
    const out = randomBytes(length);
    out[0] = byte;
    return new Uint8Array(out);
  };
  return {
    noiseStaticKey: new Uint8Array(randomBytes(32)),
    registrationId: seed % 16380 || 1,
    identityKey: fill(33, 5),
    signedPreKey: { id: 1, publicKey: fill(33, 5), signature: fill(64, 1) },
    lastResortKemPreKey: { id: 1000, publicKey: fill(1569, 8), signature: fill(64, 2) },
  };
}

function ecKeys(from: number, count: number): OneTimePreKey[] {
  return Array.from({ length: count }, (_, i) => ({ id: from + i, publicKey: new Uint8Array(randomBytes(33)) }));
}

function kemKeys(from: number, count: number): KemPreKey[] {
  return Array.from({ length: count }, (_, i) => ({
    id: from + i,
    publicKey: new Uint8Array(randomBytes(1569)),
    signature: new Uint8Array(randomBytes(64)),
  }));
}

function envelope(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

async function rejectsWith(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StorageError, `expected StorageError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

export function runStorageConformance(name: string, make: () => Promise<StorageHarness>, clock: ManualClock): void {
  describe(`ServerStorage conformance: ${name}`, () => {
    let harness: StorageHarness;
    let store: ServerStorage;
    let counter = 0;

    beforeEach(async () => {
      clock.set(START_MS);
      harness = await make();
      store = harness.storage;
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    async function newAccount(device = newTestDevice()): Promise<AccountId> {
      counter++;
      const { account } = await store.createAccount(`user${counter}_${randomBytes(3).toString("hex")}`, device);
      return account.id;
    }

    describe("accounts", () => {
      it("creates an account with its primary device and finds it by normalized name and id", async () => {
        const device = newTestDevice();
        const { account, device: primary } = await store.createAccount("  Alice.Smith ", device);
        assert.equal(account.name, "alice.smith");
        assert.equal(account.createdAt, START_MS);
        assert.equal(account.privacy, "contacts");
        assert.equal(account.lastSeenAt, null);
        assert.equal(primary.deviceId, 1);
        assert.equal(primary.accountId, account.id);
        assert.deepEqual(primary.noiseStaticKey, device.noiseStaticKey);
        assert.deepEqual(primary.identityKey, device.identityKey);
        assert.deepEqual(primary.signedPreKey, device.signedPreKey);
        assert.deepEqual(primary.lastResortKemPreKey, device.lastResortKemPreKey);
        assert.deepEqual(await store.getAccountByName("ALICE.SMITH"), account);
        assert.deepEqual(await store.getAccount(account.id), account);
        assert.equal(await store.getAccountByName("bob"), null);
        assert.equal(await store.getAccountByName("not a valid name!"), null);
        assert.equal(await store.getAccount("no-such-id"), null);
      });

      it("normalizes phone numbers", async () => {
        const { account } = await store.createAccount("+1 (555) 010-0000", newTestDevice());
        assert.equal(account.name, "+15550100000");
        assert.equal((await store.getAccountByName("+1-555-010-0000"))?.id, account.id);
      });

      it("refuses a taken name, whatever its spelling, with CONFLICT", async () => {
        await store.createAccount("carol", newTestDevice());
        await rejectsWith(store.createAccount("Carol", newTestDevice()), "CONFLICT");
        await store.createAccount("+4915112345678", newTestDevice());
        await rejectsWith(store.createAccount("+49 151 1234 5678", newTestDevice()), "CONFLICT");
      });

      it("refuses concurrent creations of one name but one", async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, () => store.createAccount("dave", newTestDevice())),
        );
        assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
        for (const r of results) {
          if (r.status === "rejected") assert.equal((r.reason as StorageError).code, "CONFLICT");
        }
      });

      it("rejects malformed names and devices with INVALID_ARGUMENT", async () => {
        for (const bad of ["", "ab", "1abc", "a b", "+12", "+0123456789", "x".repeat(65), "éve"]) {
          await rejectsWith(store.createAccount(bad, newTestDevice()), "INVALID_ARGUMENT");
        }
        const device = newTestDevice();
        await rejectsWith(
          store.createAccount("erin", { ...device, noiseStaticKey: new Uint8Array(31) }),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(
          store.createAccount("erin", { ...device, identityKey: new Uint8Array(32) }),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(
          store.createAccount("erin", {
            ...device,
            signedPreKey: { ...device.signedPreKey, signature: new Uint8Array(3) },
          }),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(store.createAccount("erin", { ...device, registrationId: -1 }), "INVALID_ARGUMENT");
        assert.equal(await store.getAccountByName("erin"), null);
      });

      it("deletes an account with its devices, prekeys, device list, contacts and queues", async () => {
        const device = newTestDevice();
        const { account } = await store.createAccount("frank", device);
        const linked = await store.addDevice(account.id, newTestDevice());
        await store.uploadPreKeys(account.id, 1, { ecOneTime: ecKeys(1, 5), kemOneTime: kemKeys(1, 5) });
        await store.setDeviceList(account.id, { version: 1, blob: envelope("list") });
        await store.setContacts(account.id, ["grace"]);
        await store.enqueue([
          { accountId: account.id, deviceId: 1, envelope: envelope("a") },
          { accountId: account.id, deviceId: linked.deviceId, envelope: envelope("b") },
        ]);
        await store.enqueueShared(envelope("group"), [{ accountId: account.id, deviceId: 1 }]);

        await store.deleteAccount(account.id);
        assert.equal(await store.getAccount(account.id), null);
        assert.equal(await store.getAccountByName("frank"), null);
        assert.equal(await store.getDeviceByNoiseKey(device.noiseStaticKey), null);
        assert.deepEqual(await store.listDevices(account.id), []);
        assert.equal(await store.getDeviceList(account.id), null);
        assert.equal(await store.depth(account.id, 1), 0);
        assert.equal(await store.depth(account.id, linked.deviceId), 0);
        if (harness.payloadCount) assert.equal(await harness.payloadCount(), 0);
        await rejectsWith(store.deleteAccount(account.id), "NOT_FOUND");
        // the name and the noise key are free again
        const again = await store.createAccount("frank", device);
        assert.notEqual(again.account.id, account.id);
        assert.deepEqual(await store.getPreKeyCounts(again.account.id, 1), { ecOneTime: 0, kemOneTime: 0 });
      });
    });

    describe("groups", () => {
      const G = "00112233445566778899aabbccddeeff";
      const update = (version: number, members: AccountId[], extra: Partial<GroupUpdate> = {}): GroupUpdate => ({
        group: G,
        version,
        state: `{"v":${version}}`,
        members,
        inviteHash: null,
        change: envelope(`change ${version}`),
        ...extra,
      });

      it("creates a group, applies changes in version order, keeps the log and the member index", async () => {
        const [a, b, c] = [await newAccount(), await newAccount(), await newAccount()];
        await store.applyGroupUpdate(update(1, [a, b]));
        await store.applyGroupUpdate(update(2, [a, b, c]));
        await store.applyGroupUpdate(update(3, [a, c]));
        const g = await store.getGroup(G);
        assert.deepEqual(g, { group: G, version: 3, state: '{"v":3}', members: [a, c] });
        assert.deepEqual((await store.getGroupLog(G, 0, 100)).map(text), ["change 1", "change 2", "change 3"]);
        assert.deepEqual((await store.getGroupLog(G, 2, 100)).map(text), ["change 3"]);
        assert.deepEqual(await store.listGroups(a), [{ group: G, version: 3 }]);
        assert.deepEqual(await store.listGroups(b), []);
        assert.equal(await store.getGroup("ffffffffffffffffffffffffffffffff"), null);
      });

      it("refuses a change that does not extend the stored version (two admins at once): CONFLICT", async () => {
        const a = await newAccount();
        await store.applyGroupUpdate(update(1, [a]));
        await rejectsWith(store.applyGroupUpdate(update(1, [a])), "CONFLICT");
        const results = await Promise.allSettled([
          store.applyGroupUpdate(update(2, [a])),
          store.applyGroupUpdate(update(2, [a])),
        ]);
        assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
        await rejectsWith(store.applyGroupUpdate(update(4, [a])), "CONFLICT");
        assert.equal((await store.getGroupLog(G, 0, 10)).length, 2);
      });

      it("finds a group by its invite hash; one invite hash belongs to one group", async () => {
        const a = await newAccount();
        const hash = new Uint8Array(32).fill(5);
        await store.applyGroupUpdate(update(1, [a], { inviteHash: hash }));
        assert.equal(await store.findGroupByInvite(hash), G);
        await rejectsWith(
          store.applyGroupUpdate(update(1, [a], { group: "ffffffffffffffffffffffffffffffff", inviteHash: hash })),
          "CONFLICT",
        );
        await store.applyGroupUpdate(update(2, [a]));
        assert.equal(await store.findGroupByInvite(hash), null);
      });

      it("rejects malformed updates with INVALID_ARGUMENT", async () => {
        const a = await newAccount();
        await rejectsWith(store.applyGroupUpdate(update(1, [a], { group: "../../etc/passwd" })), "INVALID_ARGUMENT");
        await rejectsWith(store.applyGroupUpdate(update(0, [a])), "INVALID_ARGUMENT");
        await rejectsWith(store.applyGroupUpdate(update(1, [a, a])), "INVALID_ARGUMENT");
        await rejectsWith(
          store.applyGroupUpdate(update(1, [a], { inviteHash: new Uint8Array(3) })),
          "INVALID_ARGUMENT",
        );
      });
    });

    describe("pending registrations", () => {
      it("accepts the right code once, within its lifetime", async () => {
        await store.putPendingRegistration("+15550100001", "123456", START_MS + 600_000);
        assert.equal(await store.verifyPendingRegistration("+1 555 010 0001", "654321", 3), "wrong_code");
        assert.equal(await store.verifyPendingRegistration("+15550100001", "123456", 3), "ok");
        assert.equal(await store.verifyPendingRegistration("+15550100001", "123456", 3), "not_found");
      });

      it("counts attempts and locks after maxAttempts, even for the right code", async () => {
        await store.putPendingRegistration("henry", "111111", START_MS + 600_000);
        for (let i = 0; i < 3; i++)
          assert.equal(await store.verifyPendingRegistration("henry", "000000", 3), "wrong_code");
        assert.equal(await store.verifyPendingRegistration("henry", "111111", 3), "too_many_attempts");
        // concurrent guesses cannot exceed the limit either
        await store.putPendingRegistration("ivy", "222222", START_MS + 600_000);
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.verifyPendingRegistration("ivy", "999999", 5)),
        );
        assert.equal(results.filter((r) => r === "wrong_code").length, 5);
        assert.equal(results.filter((r) => r === "too_many_attempts").length, 15);
        // a new code resets the counter
        await store.putPendingRegistration("ivy", "333333", START_MS + 600_000);
        assert.equal(await store.verifyPendingRegistration("ivy", "333333", 5), "ok");
      });

      it("expires codes by the clock, and purgeExpired removes them", async () => {
        await store.putPendingRegistration("jack", "123456", START_MS + 60_000);
        await store.putPendingRegistration("kate", "123456", START_MS + 60_000);
        clock.advance(60_000);
        assert.equal(await store.verifyPendingRegistration("jack", "123456", 3), "expired");
        await store.purgeExpired(clock.now());
        assert.equal(await store.verifyPendingRegistration("kate", "123456", 3), "not_found");
      });

      it("answers not_found for unknown or invalid names and rejects bad codes", async () => {
        assert.equal(await store.verifyPendingRegistration("nobody", "1", 3), "not_found");
        assert.equal(await store.verifyPendingRegistration("!!", "1", 3), "not_found");
        await rejectsWith(store.putPendingRegistration("liam", "", START_MS + 1), "INVALID_ARGUMENT");
        await rejectsWith(store.putPendingRegistration("!!", "1", START_MS + 1), "INVALID_ARGUMENT");
      });
    });

    describe("contacts and presence", () => {
      it("stores the uploaded contact list normalized, deduplicated and replaced on upload", async () => {
        const id = await newAccount();
        await store.setContacts(id, ["Mia", "mia", "+1 555 010 0002", "not valid!", "noah"]);
        assert.deepEqual(await store.getContacts(id), ["+15550100002", "mia", "noah"]);
        await store.setContacts(id, ["olivia"]);
        assert.deepEqual(await store.getContacts(id), ["olivia"]);
        await rejectsWith(store.setContacts("missing", ["olivia"]), "NOT_FOUND");
      });

      it("applies the privacy setting: everyone, contacts, nobody", async () => {
        const { account: paul } = await store.createAccount("paul", newTestDevice());
        const { account: quinn } = await store.createAccount("quinn", newTestDevice());
        const { account: rose } = await store.createAccount("rose", newTestDevice());
        // quinn and rose both have paul as a contact; paul has only quinn
        await store.setContacts(quinn.id, ["paul"]);
        await store.setContacts(rose.id, ["paul"]);
        await store.setContacts(paul.id, ["quinn"]);

        assert.equal(await store.canSeePresence(paul.id, paul.id), true);
        // default "contacts"
        assert.equal(await store.canSeePresence(quinn.id, paul.id), true);
        assert.equal(await store.canSeePresence(rose.id, paul.id), false);
        assert.deepEqual(await store.listPresenceWatchers(paul.id), [quinn.id]);

        await store.setPresencePrivacy(paul.id, "everyone");
        assert.equal((await store.getAccount(paul.id))?.privacy, "everyone");
        assert.equal(await store.canSeePresence(rose.id, paul.id), true);
        assert.deepEqual(await store.listPresenceWatchers(paul.id), [quinn.id, rose.id].sort());

        await store.setPresencePrivacy(paul.id, "nobody");
        assert.equal(await store.canSeePresence(quinn.id, paul.id), false);
        assert.deepEqual(await store.listPresenceWatchers(paul.id), []);

        await rejectsWith(store.setPresencePrivacy(paul.id, "friends" as "everyone"), "INVALID_ARGUMENT");
        await rejectsWith(store.setPresencePrivacy("missing", "everyone"), "NOT_FOUND");
      });

      it("stamps last seen on the device and the account, never moving the account's backwards", async () => {
        const id = await newAccount();
        const linked = await store.addDevice(id, newTestDevice());
        await store.touchDevice(id, linked.deviceId, START_MS + 5000);
        await store.touchDevice(id, 1, START_MS + 1000);
        assert.equal((await store.getDevice(id, linked.deviceId))?.lastSeenAt, START_MS + 5000);
        assert.equal((await store.getDevice(id, 1))?.lastSeenAt, START_MS + 1000);
        assert.equal((await store.getAccount(id))?.lastSeenAt, START_MS + 5000);
        await rejectsWith(store.touchDevice(id, 99, START_MS), "NOT_FOUND");
      });
    });

    describe("devices", () => {
      it("adds linked devices with increasing ids that are never reused", async () => {
        const id = await newAccount();
        clock.advance(1000);
        const second = await store.addDevice(id, newTestDevice());
        const third = await store.addDevice(id, newTestDevice());
        assert.equal(second.deviceId, 2);
        assert.equal(third.deviceId, 3);
        assert.equal(second.createdAt, START_MS + 1000);
        await store.removeDevice(id, 3);
        const fourth = await store.addDevice(id, newTestDevice());
        assert.equal(fourth.deviceId, 4);
        assert.deepEqual(
          (await store.listDevices(id)).map((d) => d.deviceId),
          [1, 2, 4],
        );
        assert.deepEqual(await store.getDevice(id, 2), second);
        assert.equal(await store.getDevice(id, 3), null);
      });

      it("finds a device by its noise static key (login) and keeps keys unique across accounts", async () => {
        const device = newTestDevice();
        const id = await newAccount(device);
        const found = await store.getDeviceByNoiseKey(device.noiseStaticKey);
        assert.equal(found?.accountId, id);
        assert.equal(found?.deviceId, 1);
        assert.equal(await store.getDeviceByNoiseKey(new Uint8Array(32)), null);
        await rejectsWith(store.getDeviceByNoiseKey(new Uint8Array(5)), "INVALID_ARGUMENT");

        const other = await newAccount();
        await rejectsWith(
          store.addDevice(other, { ...newTestDevice(), noiseStaticKey: device.noiseStaticKey }),
          "CONFLICT",
        );
        await rejectsWith(
          store.createAccount("sam", { ...newTestDevice(), noiseStaticKey: device.noiseStaticKey }),
          "CONFLICT",
        );
        assert.equal(await store.getAccountByName("sam"), null, "a failed creation leaves no account behind");
      });

      it("caps devices per account", async () => {
        const id = await newAccount();
        for (let i = 2; i <= 6; i++) await store.addDevice(id, newTestDevice());
        await rejectsWith(store.addDevice(id, newTestDevice()), "LIMIT_EXCEEDED");
        await rejectsWith(store.addDevice("missing", newTestDevice()), "NOT_FOUND");
      });

      it("removes a linked device with its prekeys and queue; refuses the primary", async () => {
        const id = await newAccount();
        const linked = await store.addDevice(id, newTestDevice());
        await store.uploadPreKeys(id, linked.deviceId, { ecOneTime: ecKeys(1, 3) });
        await store.enqueue([{ accountId: id, deviceId: linked.deviceId, envelope: envelope("x") }]);
        await store.removeDevice(id, linked.deviceId);
        assert.equal(await store.getDeviceByNoiseKey(linked.noiseStaticKey), null);
        assert.equal(await store.depth(id, linked.deviceId), 0);
        await rejectsWith(store.getPreKeyCounts(id, linked.deviceId), "NOT_FOUND");
        await rejectsWith(store.removeDevice(id, linked.deviceId), "NOT_FOUND");
        await rejectsWith(store.removeDevice(id, 1), "INVALID_ARGUMENT");
        await rejectsWith(store.removeDevice(id, 0), "INVALID_ARGUMENT");
      });

      it("stores the signed device list and only accepts newer versions", async () => {
        const id = await newAccount();
        assert.equal(await store.getDeviceList(id), null);
        await store.setDeviceList(id, { version: 1, blob: envelope("v1") });
        await store.setDeviceList(id, { version: 3, blob: envelope("v3") });
        await rejectsWith(store.setDeviceList(id, { version: 3, blob: envelope("again") }), "CONFLICT");
        await rejectsWith(store.setDeviceList(id, { version: 2, blob: envelope("older") }), "CONFLICT");
        const list = await store.getDeviceList(id);
        assert.equal(list?.version, 3);
        assert.equal(text(list!.blob), "v3");
        await rejectsWith(store.setDeviceList("missing", { version: 1, blob: envelope("x") }), "NOT_FOUND");
        await rejectsWith(store.setDeviceList(id, { version: -1, blob: envelope("x") }), "INVALID_ARGUMENT");
      });
    });

    describe("prekeys", () => {
      it("counts uploads and hands out one EC and one KEM one-time key per bundle", async () => {
        const device = newTestDevice();
        const id = await newAccount(device);
        const ec = ecKeys(10, 3);
        const kem = kemKeys(20, 2);
        await store.uploadPreKeys(id, 1, { ecOneTime: ec, kemOneTime: kem });
        assert.deepEqual(await store.getPreKeyCounts(id, 1), { ecOneTime: 3, kemOneTime: 2 });

        const bundle = await store.takePreKeyBundle(id, 1);
        assert.equal(bundle.accountId, id);
        assert.equal(bundle.deviceId, 1);
        assert.equal(bundle.registrationId, device.registrationId);
        assert.deepEqual(bundle.identityKey, device.identityKey);
        assert.deepEqual(bundle.signedPreKey, device.signedPreKey);
        assert.ok(
          ec.some((k) => k.id === bundle.ecPreKey?.id && Buffer.from(k.publicKey).equals(bundle.ecPreKey.publicKey)),
        );
        assert.ok(kem.some((k) => k.id === bundle.kemPreKey.id));
        assert.equal(bundle.kemPreKeyIsLastResort, false);
        assert.deepEqual(await store.getPreKeyCounts(id, 1), { ecOneTime: 2, kemOneTime: 1 });
      });

      it("falls back to the last-resort KEM key, which is never removed, and to no EC key", async () => {
        const device = newTestDevice();
        const id = await newAccount(device);
        await store.uploadPreKeys(id, 1, { kemOneTime: kemKeys(1, 1) });
        assert.equal((await store.takePreKeyBundle(id, 1)).kemPreKeyIsLastResort, false);
        for (let i = 0; i < 3; i++) {
          const bundle = await store.takePreKeyBundle(id, 1);
          assert.equal(bundle.ecPreKey, null);
          assert.equal(bundle.kemPreKeyIsLastResort, true);
          assert.deepEqual(bundle.kemPreKey, device.lastResortKemPreKey);
        }
      });

      it("replaces the signed prekey and the last-resort KEM key", async () => {
        const id = await newAccount();
        const signedPreKey = {
          id: 2,
          publicKey: new Uint8Array(randomBytes(33)),
          signature: new Uint8Array(randomBytes(64)),
        };
        const lastResortKemPreKey = kemKeys(2000, 1)[0]!;
        await store.uploadPreKeys(id, 1, { signedPreKey, lastResortKemPreKey });
        const bundle = await store.takePreKeyBundle(id, 1);
        assert.deepEqual(bundle.signedPreKey, signedPreKey);
        assert.deepEqual(bundle.kemPreKey, lastResortKemPreKey);
        assert.deepEqual((await store.getDevice(id, 1))?.signedPreKey, signedPreKey);
      });

      it("replaces a one-time key uploaded again under the same id, and caps the count", async () => {
        const id = await newAccount();
        await store.uploadPreKeys(id, 1, { ecOneTime: ecKeys(1, 2) });
        const replacement = ecKeys(1, 1);
        await store.uploadPreKeys(id, 1, { ecOneTime: replacement });
        assert.deepEqual(await store.getPreKeyCounts(id, 1), { ecOneTime: 2, kemOneTime: 0 });
        assert.deepEqual((await store.takePreKeyBundle(id, 1)).ecPreKey, replacement[0]);

        await store.uploadPreKeys(id, 1, { ecOneTime: ecKeys(100, 999) });
        await rejectsWith(store.uploadPreKeys(id, 1, { ecOneTime: ecKeys(5000, 2) }), "LIMIT_EXCEEDED");
        assert.equal((await store.getPreKeyCounts(id, 1)).ecOneTime, 1000, "a refused upload stores nothing");
        await rejectsWith(store.uploadPreKeys(id, 1, { ecOneTime: ecKeys(1, 1001) }), "LIMIT_EXCEEDED");
      });

      it("rejects malformed keys and unknown devices", async () => {
        const id = await newAccount();
        await rejectsWith(
          store.uploadPreKeys(id, 1, { ecOneTime: [{ id: 1, publicKey: new Uint8Array(32) }] }),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(
          store.uploadPreKeys(id, 1, {
            kemOneTime: [{ id: -5, publicKey: new Uint8Array(10), signature: new Uint8Array(64) }],
          }),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(
          store.uploadPreKeys(id, 1, {
            kemOneTime: [{ id: 5, publicKey: new Uint8Array(5000), signature: new Uint8Array(64) }],
          }),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(store.uploadPreKeys(id, 7, { ecOneTime: ecKeys(1, 1) }), "NOT_FOUND");
        await rejectsWith(store.takePreKeyBundle(id, 7), "NOT_FOUND");
        await rejectsWith(store.takePreKeyBundles("missing"), "NOT_FOUND");
      });

      it("hands out each one-time key at most once under 50 concurrent takes", async () => {
        const id = await newAccount();
        await store.uploadPreKeys(id, 1, { ecOneTime: ecKeys(1, 30), kemOneTime: kemKeys(1, 30) });
        const peer = harness.openPeer ? await harness.openPeer() : store;
        const bundles = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : peer).takePreKeyBundle(id, 1)),
        );
        const ecIds = bundles.flatMap((b) => (b.ecPreKey ? [b.ecPreKey.id] : []));
        const kemIds = bundles.filter((b) => !b.kemPreKeyIsLastResort).map((b) => b.kemPreKey.id);
        assert.equal(ecIds.length, 30);
        assert.equal(new Set(ecIds).size, 30);
        assert.equal(kemIds.length, 30);
        assert.equal(new Set(kemIds).size, 30);
        assert.equal(bundles.filter((b) => b.kemPreKeyIsLastResort).length, 20);
        assert.deepEqual(await store.getPreKeyCounts(id, 1), { ecOneTime: 0, kemOneTime: 0 });
      });

      it("takes one bundle per device of an account", async () => {
        const id = await newAccount();
        await store.addDevice(id, newTestDevice());
        await store.uploadPreKeys(id, 2, { ecOneTime: ecKeys(1, 1) });
        const bundles = await store.takePreKeyBundles(id);
        assert.deepEqual(
          bundles.map((b) => [b.deviceId, b.ecPreKey?.id ?? null]),
          [
            [1, null],
            [2, 1],
          ],
        );
      });
    });

    describe("queues", () => {
      it("fetches in enqueue order after a seq, with a limit, and reports depth", async () => {
        const id = await newAccount();
        const sender = await newAccount();
        const seqs: number[] = [];
        for (let i = 0; i < 5; i++) {
          const [seq] = await store.enqueue([
            {
              accountId: id,
              deviceId: 1,
              envelope: envelope(`m${i}`),
              senderAccountId: sender,
              senderDeviceId: 1,
              messageId: `id${i}`,
            },
          ]);
          seqs.push(seq!);
        }
        assert.deepEqual(
          [...seqs].sort((a, b) => a - b),
          seqs,
        );
        assert.equal(await store.depth(id, 1), 5);
        const all = await store.fetch(id, 1, 0, 100);
        assert.deepEqual(
          all.map((e) => text(e.envelope)),
          ["m0", "m1", "m2", "m3", "m4"],
        );
        assert.deepEqual(all[0], {
          seq: seqs[0],
          accountId: id,
          deviceId: 1,
          envelope: envelope("m0"),
          senderAccountId: sender,
          senderDeviceId: 1,
          messageId: "id0",
          createdAt: START_MS,
        });
        const page = await store.fetch(id, 1, seqs[1]!, 2);
        assert.deepEqual(
          page.map((e) => e.seq),
          [seqs[2], seqs[3]],
        );
        assert.deepEqual(await store.fetch(id, 1, seqs[4]!, 10), []);
      });

      it("keeps the order of entries enqueued concurrently and gives each its own seq", async () => {
        const id = await newAccount();
        const calls = Array.from({ length: 200 }, (_, i) =>
          store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope(`c${i}`) }]),
        );
        const seqs = (await Promise.all(calls)).map((s) => s[0]!);
        assert.equal(new Set(seqs).size, 200);
        const fetched = await store.fetch(id, 1, 0, 1000);
        assert.deepEqual(
          fetched.map((e) => e.seq),
          [...seqs].sort((a, b) => a - b),
        );
        assert.deepEqual(
          fetched.map((e) => text(e.envelope)),
          Array.from({ length: 200 }, (_, i) => `c${i}`),
        );
      });

      it("tells the caller about committed entries before the enqueue resolves, and not about failed ones", async () => {
        const ids = [await newAccount(), await newAccount(), await newAccount()];
        const items = ids.map((accountId, i) => ({ accountId, deviceId: 1, envelope: envelope(`early${i}`) }));
        const calls: (number | undefined)[][] = [];
        const visible: Promise<QueueEntry[]>[] = [];
        let resolved = false;
        const enqueued = store
          .enqueue(items, (seqs) => {
            assert.equal(resolved, false, "onCommitted runs before the promise resolves");
            calls.push([...seqs]);
            // committed: already readable (the read runs now, synchronously)
            seqs.forEach((seq, i) => {
              if (seq !== undefined) visible.push(store.fetch(ids[i]!, 1, 0, 10));
            });
          })
          .then((seqs) => {
            resolved = true;
            return seqs;
          });
        const seqs = await enqueued;
        // One call naming, with their final seqs, the entries this handle stores: all of them, or
        // with queue shards those of its own shard (none: no call).
        const storedHere = (seqList: readonly number[]) =>
          seqList.map((seq, i) =>
            store.queueOwner === undefined || store.queueOwner(ids[i]!) === store.shardIndex ? seq : undefined,
          );
        const expected = storedHere(seqs);
        assert.deepEqual(calls, expected.some((seq) => seq !== undefined) ? [expected] : []);
        for (const [k, read] of (await Promise.all(visible)).entries()) assert.equal(read.length, 1, `read ${k}`);
        // a call that fails as a whole reports nothing
        let failedCalls = 0;
        await rejectsWith(
          store.enqueue(
            [
              { accountId: ids[0]!, deviceId: 1, envelope: envelope("lost") },
              { accountId: ids[0]!, deviceId: 9, envelope: envelope("nowhere") },
            ],
            () => failedCalls++,
          ),
          "NOT_FOUND",
        );
        assert.equal(failedCalls, 0);
        // shared payloads too
        const shared: (number | undefined)[][] = [];
        const sharedSeqs = await store.enqueueShared(envelope("group"), items, (s) => shared.push([...s]));
        const expectedShared = storedHere(sharedSeqs);
        assert.deepEqual(shared, expectedShared.some((seq) => seq !== undefined) ? [expectedShared] : []);
      });

      it("separates queues per device", async () => {
        const id = await newAccount();
        const linked = await store.addDevice(id, newTestDevice());
        const [a, b] = await store.enqueue([
          { accountId: id, deviceId: 1, envelope: envelope("for 1") },
          { accountId: id, deviceId: linked.deviceId, envelope: envelope("for 2") },
        ]);
        assert.deepEqual(
          (await store.fetch(id, 1, 0, 10)).map((e) => e.seq),
          [a],
        );
        assert.deepEqual(
          (await store.fetch(id, linked.deviceId, 0, 10)).map((e) => e.seq),
          [b],
        );
        // an ack on the wrong device's queue deletes nothing, and the right device can still ack it
        assert.deepEqual(await store.ack(id, 1, [b!]), []);
        assert.equal(await store.depth(id, linked.deviceId), 1);
        assert.deepEqual(
          (await store.ack(id, linked.deviceId, [b!])).map((e) => e.seq),
          [b],
        );
      });

      it("acks delete entries and return what existed, with sender and message id", async () => {
        const id = await newAccount();
        const sender = await newAccount();
        const seqs = await store.enqueue([
          { accountId: id, deviceId: 1, envelope: envelope("1"), senderAccountId: sender, messageId: "x1" },
          { accountId: id, deviceId: 1, envelope: envelope("2") },
          {
            accountId: id,
            deviceId: 1,
            envelope: envelope("3"),
            senderAccountId: sender,
            senderDeviceId: 2,
            messageId: "x3",
          },
        ]);
        const acked = await store.ack(id, 1, [seqs[0]!, seqs[2]!, 999_999_999]);
        assert.deepEqual(acked, [
          { seq: seqs[0], senderAccountId: sender, senderDeviceId: null, messageId: "x1", shared: false },
          { seq: seqs[2], senderAccountId: sender, senderDeviceId: 2, messageId: "x3", shared: false },
        ]);
        assert.deepEqual(await store.ack(id, 1, [seqs[0]!]), [], "a second ack finds nothing");
        assert.deepEqual(await store.ack(id, 1, []), []);
        assert.equal(await store.depth(id, 1), 1);
        assert.deepEqual(
          (await store.fetch(id, 1, 0, 10)).map((e) => e.seq),
          [seqs[1]],
        );
      });

      it("acks return the sender and message id also for entries stored before a restart", async (t) => {
        if (!harness.reopen) {
          t.skip("harness cannot reopen");
          return;
        }
        const id = await newAccount();
        const sender = await newAccount();
        const seqs = await store.enqueue([
          { accountId: id, deviceId: 1, envelope: envelope("1"), senderAccountId: sender, messageId: "r1" },
          { accountId: id, deviceId: 1, envelope: envelope("2"), senderAccountId: sender, messageId: "r2" },
        ]);
        store = await harness.reopen();
        assert.deepEqual(await store.ack(id, 1, [seqs[1]!, seqs[0]!]), [
          { seq: seqs[1], senderAccountId: sender, senderDeviceId: null, messageId: "r2", shared: false },
          { seq: seqs[0], senderAccountId: sender, senderDeviceId: null, messageId: "r1", shared: false },
        ]);
        assert.equal(await store.depth(id, 1), 0);
      });

      it("never reuses a seq, even after the newest entry is acked", async () => {
        const id = await newAccount();
        const [first] = await store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("a") }]);
        await store.ack(id, 1, [first!]);
        const [second] = await store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("b") }]);
        assert.ok(second! > first!);
      });

      it("stores nothing of an enqueue call that names a missing device, without failing the others", async () => {
        const id = await newAccount();
        const good = store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("ok") }]);
        const bad = store.enqueue([
          { accountId: id, deviceId: 1, envelope: envelope("lost") },
          { accountId: id, deviceId: 9, envelope: envelope("nowhere") },
        ]);
        await rejectsWith(bad, "NOT_FOUND");
        assert.equal((await good).length, 1);
        assert.deepEqual(
          (await store.fetch(id, 1, 0, 10)).map((e) => text(e.envelope)),
          ["ok"],
        );
        await rejectsWith(store.enqueue([{ accountId: "missing", deviceId: 1, envelope: envelope("x") }]), "NOT_FOUND");
      });

      it("rejects malformed queue arguments with INVALID_ARGUMENT", async () => {
        const id = await newAccount();
        await rejectsWith(store.enqueue([]), "INVALID_ARGUMENT");
        await rejectsWith(
          store.enqueue([{ accountId: id, deviceId: 1, envelope: new Uint8Array(0) }]),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(store.enqueue([{ accountId: id, deviceId: 0, envelope: envelope("x") }]), "INVALID_ARGUMENT");
        await rejectsWith(
          store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("x"), messageId: "m".repeat(129) }]),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(
          store.enqueue([{ accountId: id, deviceId: 1, envelope: new Uint8Array(256 * 1024 + 1) }]),
          "INVALID_ARGUMENT",
        );
        await rejectsWith(store.enqueueShared(envelope("x"), []), "INVALID_ARGUMENT");
        await rejectsWith(store.fetch(id, 1, -1, 10), "INVALID_ARGUMENT");
        await rejectsWith(store.fetch(id, 1, 0, 0), "INVALID_ARGUMENT");
        await rejectsWith(store.ack(id, 1, [1.5]), "INVALID_ARGUMENT");
        assert.equal(await store.depth(id, 1), 0);
      });

      it("purges entries older than the retention (30 days) and counts them", async () => {
        const id = await newAccount();
        await store.enqueue([
          { accountId: id, deviceId: 1, envelope: envelope("old1") },
          { accountId: id, deviceId: 1, envelope: envelope("old2") },
        ]);
        await store.enqueueShared(envelope("old group"), [{ accountId: id, deviceId: 1 }]);
        clock.advance(29 * DAY_MS);
        await store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("recent") }]);
        assert.equal(await store.purgeExpired(clock.now()), 0);
        clock.advance(DAY_MS + 1);
        assert.equal(await store.purgeExpired(clock.now()), 3);
        assert.deepEqual(
          (await store.fetch(id, 1, 0, 10)).map((e) => text(e.envelope)),
          ["recent"],
        );
        if (harness.payloadCount) assert.equal(await harness.payloadCount(), 0);
        clock.advance(30 * DAY_MS);
        assert.equal(await store.purgeExpired(clock.now()), 1);
        assert.equal(await store.depth(id, 1), 0);
      });

      it("stores a shared payload once and drops it with the last reference", async () => {
        const alice = await newAccount();
        const bob = await newAccount();
        const bobLaptop = await store.addDevice(bob, newTestDevice());
        const payload = new Uint8Array(randomBytes(4096));
        const seqs = await store.enqueueShared(payload, [
          { accountId: alice, deviceId: 1, senderAccountId: bob, senderDeviceId: 1, messageId: "g1" },
          { accountId: bob, deviceId: bobLaptop.deviceId, senderAccountId: bob, senderDeviceId: 1, messageId: "g1" },
          { accountId: bob, deviceId: 1 },
        ]);
        assert.equal(seqs.length, 3);
        if (harness.payloadCount) assert.equal(await harness.payloadCount(), 1);
        const [forAlice] = await store.fetch(alice, 1, 0, 10);
        assert.deepEqual(forAlice?.envelope, payload);
        assert.equal(forAlice?.messageId, "g1");
        assert.deepEqual((await store.fetch(bob, bobLaptop.deviceId, 0, 10))[0]?.envelope, payload);

        assert.deepEqual(await store.ack(alice, 1, [seqs[0]!]), [
          { seq: seqs[0], senderAccountId: bob, senderDeviceId: 1, messageId: "g1", shared: true },
        ]);
        // removing a device releases its reference too
        await store.removeDevice(bob, bobLaptop.deviceId);
        if (harness.payloadCount) assert.equal(await harness.payloadCount(), 1);
        assert.deepEqual((await store.fetch(bob, 1, 0, 10))[0]?.envelope, payload);
        await store.ack(bob, 1, [seqs[2]!]);
        if (harness.payloadCount) assert.equal(await harness.payloadCount(), 0);
      });

      it("rejects a shared enqueue naming a missing device as a whole", async () => {
        const alice = await newAccount();
        await rejectsWith(
          store.enqueueShared(envelope("g"), [
            { accountId: alice, deviceId: 1 },
            { accountId: alice, deviceId: 5 },
          ]),
          "NOT_FOUND",
        );
        assert.equal(await store.depth(alice, 1), 0);
        if (harness.payloadCount) assert.equal(await harness.payloadCount(), 0);
      });

      it("matches a model queue under random enqueues and acks", async () => {
        const id = await newAccount();
        const model = new Map<number, string>();
        let next = 0;
        for (let round = 0; round < 30; round++) {
          const n = 1 + (round % 4);
          const items = Array.from({ length: n }, () => ({
            accountId: id,
            deviceId: 1,
            envelope: envelope(`e${next++}`),
          }));
          const seqs =
            round % 3 === 0
              ? await store.enqueueShared(
                  items[0]!.envelope,
                  items.map(({ envelope: _, ...r }) => r),
                )
              : await store.enqueue(items);
          seqs.forEach((seq, i) => {
            model.set(seq, text(round % 3 === 0 ? items[0]!.envelope : items[i]!.envelope));
          });
          const present = [...model.keys()];
          const toAck = present.filter((_, i) => (i + round) % 3 === 0);
          const acked = await store.ack(id, 1, [...toAck, 123_456_789]);
          assert.deepEqual(
            acked.map((a) => a.seq),
            toAck,
          );
          for (const seq of toAck) model.delete(seq);
          const fetched = await store.fetch(id, 1, 0, 1000);
          assert.deepEqual(
            fetched.map((e) => [e.seq, text(e.envelope)]),
            [...model.entries()].sort((a, b) => a[0] - b[0]),
          );
          assert.equal(await store.depth(id, 1), model.size);
        }
      });
    });

    describe("durability and lifecycle", () => {
      it("keeps every resolved enqueue across a reopen", async (t) => {
        if (!harness.reopen) {
          t.skip("harness cannot reopen");
          return;
        }
        const device = newTestDevice();
        const id = await newAccount(device);
        await store.uploadPreKeys(id, 1, { ecOneTime: ecKeys(1, 2) });
        const seqs = (
          await Promise.all(
            Array.from({ length: 50 }, (_, i) =>
              store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope(`d${i}`) }]),
            ),
          )
        ).flat();
        const shared = await store.enqueueShared(envelope("shared"), [{ accountId: id, deviceId: 1 }]);
        store = await harness.reopen();
        const fetched = await store.fetch(id, 1, 0, 1000);
        assert.deepEqual(
          fetched.map((e) => e.seq),
          [...seqs, ...shared],
        );
        assert.equal(text(fetched.at(-1)!.envelope), "shared");
        assert.equal((await store.getDeviceByNoiseKey(device.noiseStaticKey))?.accountId, id);
        assert.deepEqual(await store.getPreKeyCounts(id, 1), { ecOneTime: 2, kemOneTime: 0 });
      });

      it("fails calls after close with CLOSED", async () => {
        const id = await newAccount();
        const pending = store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("flushed by close") }]);
        await store.close();
        assert.equal((await pending).length, 1, "close() commits what was queued");
        await rejectsWith(store.depth(id, 1), "CLOSED");
        await rejectsWith(store.enqueue([{ accountId: id, deviceId: 1, envelope: envelope("x") }]), "CLOSED");
        await store.close(); // idempotent
      });
    });
  });
}
