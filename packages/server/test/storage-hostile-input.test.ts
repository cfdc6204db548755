import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { ManualClock } from "../src/clock.ts";
import { newTestDevice } from "../src/storage/conformance.ts";
import { SqliteStorage, StorageError } from "../src/storage/index.ts";
import type { ServerStorage } from "../src/storage/types.ts";

/**
 * The gateway hands storage values decoded from client stanzas. Whatever arrives (wrong types,
 * huge numbers, NaN, nested junk), every method must settle with a result or a StorageError, never
 * throw synchronously, crash, or store anything malformed.
 */
type Call = (s: ServerStorage, a: unknown, b: unknown, c: unknown) => Promise<unknown>;

// Arguments are deliberately untyped here: this is what a buggy or hostile caller could pass.
// biome-ignore-start lint/suspicious/noExplicitAny: hostile-input test
const calls: Record<string, Call> = {
  createAccount: (s, a, b) => s.createAccount(a as any, b as any),
  getAccountByName: (s, a) => s.getAccountByName(a as any),
  getAccount: (s, a) => s.getAccount(a as any),
  deleteAccount: (s, a) => s.deleteAccount(a as any),
  setPresencePrivacy: (s, a, b) => s.setPresencePrivacy(a as any, b as any),
  putPendingRegistration: (s, a, b, c) => s.putPendingRegistration(a as any, b as any, c as any),
  verifyPendingRegistration: (s, a, b, c) => s.verifyPendingRegistration(a as any, b as any, c as any),
  setContacts: (s, a, b) => s.setContacts(a as any, b as any),
  canSeePresence: (s, a, b) => s.canSeePresence(a as any, b as any),
  listPresenceWatchers: (s, a) => s.listPresenceWatchers(a as any),
  addDevice: (s, a, b) => s.addDevice(a as any, b as any),
  listDevices: (s, a) => s.listDevices(a as any),
  getDevice: (s, a, b) => s.getDevice(a as any, b as any),
  getDeviceByNoiseKey: (s, a) => s.getDeviceByNoiseKey(a as any),
  removeDevice: (s, a, b) => s.removeDevice(a as any, b as any),
  touchDevice: (s, a, b, c) => s.touchDevice(a as any, b as any, c as any),
  setDeviceList: (s, a, b) => s.setDeviceList(a as any, b as any),
  uploadPreKeys: (s, a, b, c) => s.uploadPreKeys(a as any, b as any, c as any),
  getPreKeyCounts: (s, a, b) => s.getPreKeyCounts(a as any, b as any),
  takePreKeyBundle: (s, a, b) => s.takePreKeyBundle(a as any, b as any),
  takePreKeyBundles: (s, a) => s.takePreKeyBundles(a as any),
  enqueue: (s, a) => s.enqueue(a as any),
  enqueueShared: (s, a, b) => s.enqueueShared(a as any, b as any),
  fetch: (s, a, b, c) => s.fetch(a as any, b as any, c as any, 10),
  ack: (s, a, b, c) => s.ack(a as any, b as any, c as any),
  depth: (s, a, b) => s.depth(a as any, b as any),
  purgeExpired: (s, a) => s.purgeExpired(a as any),
};
// biome-ignore-end lint/suspicious/noExplicitAny: hostile-input test

describe("SqliteStorage under hostile arguments", () => {
  let dir: string;
  let storage: SqliteStorage;
  let accountId: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "parley-storage-hostile-"));
    storage = new SqliteStorage({ dataDir: dir, clock: new ManualClock() });
    accountId = (await storage.createAccount("victim", newTestDevice())).account.id;
  });
  after(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const junk = fc.oneof(
    fc.anything(),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 2 ** 53, 1.5, "", "victim", null, undefined),
    fc.uint8Array({ maxLength: 64 }),
    fc.array(fc.anything(), { maxLength: 4 }),
  );

  it("settles every call with a value or a StorageError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(calls)), junk, junk, junk, async (name, a, b, c) => {
        let promise: Promise<unknown>;
        try {
          promise = calls[name]!(storage, a, b, c);
        } catch (error) {
          assert.fail(`${name} threw synchronously: ${String(error)}`);
        }
        try {
          await promise;
        } catch (error) {
          assert.ok(error instanceof StorageError, `${name} rejected with ${String(error)}`);
        }
      }),
      { numRuns: 1500 },
    );
    // the one legitimate account is untouched
    assert.equal((await storage.getAccount(accountId))?.name, "victim");
    assert.equal(await storage.depth(accountId, 1), 0);
  });
});
