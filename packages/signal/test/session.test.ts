import assert from "node:assert/strict";
import { it } from "node:test";
import { SignalError } from "../src/errors.ts";
import {
  type CiphertextMessage,
  decryptMessage,
  encryptMessage,
  hasSession,
  processPreKeyBundle,
} from "../src/session/cipher.ts";
import { SessionRecord } from "../src/session/record.ts";
import { describeEachProvider, makeDevice, str, text } from "./fixtures/sessions/helpers.ts";

describeEachProvider("1:1 sessions", () => {
  it("PQXDH with a one-time prekey: prekey messages until the reply, then whisper both ways", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    assert.equal(await hasSession(bob.address, alice.stores), true);

    const m1 = await encryptMessage(bob.address, text("hello 1"), alice.stores);
    const m2 = await encryptMessage(bob.address, text("hello 2"), alice.stores);
    assert.equal(m1.type, "prekey");
    assert.equal(m2.type, "prekey");
    assert.equal(str(await decryptMessage(alice.address, m1.type, m1.body, bob.stores)), "hello 1");
    assert.equal(str(await decryptMessage(alice.address, m2.type, m2.body, bob.stores)), "hello 2");
    // One-time EC and KEM prekeys are consumed; the last-resort KEM key stays.
    assert.equal(bob.stores.preKeys.size, 2);
    assert.equal(await bob.stores.kyberPreKeys.getKyberPreKey(bob.kyberPreKeys[0]!.id), undefined);
    assert.ok(await bob.stores.kyberPreKeys.getKyberPreKey(bob.lastResort.id));

    const r1 = await encryptMessage(alice.address, text("reply"), bob.stores);
    assert.equal(r1.type, "whisper");
    assert.equal(str(await decryptMessage(bob.address, r1.type, r1.body, alice.stores)), "reply");
    const m3 = await encryptMessage(bob.address, text("after reply"), alice.stores);
    assert.equal(m3.type, "whisper");
    assert.equal(str(await decryptMessage(alice.address, m3.type, m3.body, bob.stores)), "after reply");

    const record = SessionRecord.deserialize((await alice.stores.sessions.loadSession(bob.address))!);
    assert.equal(record.current?.version, 4);
  });

  it("works without a one-time prekey and with the last-resort KEM key", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle({ oneTime: false, kyber: "last-resort" }), alice.stores);
    const m = await encryptMessage(bob.address, text("no opk"), alice.stores);
    assert.equal(str(await decryptMessage(alice.address, m.type, m.body, bob.stores)), "no opk");
    assert.ok(await bob.stores.kyberPreKeys.getKyberPreKey(bob.lastResort.id), "last resort stays");
    assert.equal(bob.stores.preKeys.size, 3);
  });

  it("classical X3DH (v3) only when allowed on both sides", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await assert.rejects(
      processPreKeyBundle(bob.address, bob.bundle({ kyber: "none" }), alice.stores),
      (e: unknown) => e instanceof SignalError && e.code === "INVALID_KEY",
    );
    await processPreKeyBundle(bob.address, bob.bundle({ kyber: "none" }), alice.stores, { allowClassical: true });
    const m = await encryptMessage(bob.address, text("v3"), alice.stores);
    assert.equal(m.body[0], 0x34);
    await assert.rejects(
      decryptMessage(alice.address, m.type, m.body, bob.stores),
      (e: unknown) => e instanceof SignalError && e.code === "UNSUPPORTED_VERSION",
    );
    const plain = await decryptMessage(alice.address, m.type, m.body, bob.stores, { allowClassical: true });
    assert.equal(str(plain), "v3");
    const r = await encryptMessage(alice.address, text("v3 reply"), bob.stores);
    assert.equal(str(await decryptMessage(bob.address, r.type, r.body, alice.stores)), "v3 reply");
  });

  it("long alternating conversation with out-of-order delivery inside each chain", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    const first = await encryptMessage(bob.address, text("start"), alice.stores);
    await decryptMessage(alice.address, first.type, first.body, bob.stores);
    let [from, to] = [bob, alice];
    for (let round = 0; round < 6; round++) {
      const batch: CiphertextMessage[] = [];
      for (let i = 0; i < 4; i++) batch.push(await encryptMessage(to.address, text(`r${round} m${i}`), from.stores));
      for (const i of [2, 0, 3, 1]) {
        const m = batch[i]!;
        assert.equal(str(await decryptMessage(from.address, m.type, m.body, to.stores)), `r${round} m${i}`);
      }
      [from, to] = [to, from];
    }
  });

  it("rejects a bundle with a bad signed-prekey or KEM signature", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    const bundle = bob.bundle();
    const badSpk = {
      ...bundle,
      signedPreKey: { ...bundle.signedPreKey, signature: bundle.signedPreKey.signature.slice() },
    };
    badSpk.signedPreKey.signature[5]! ^= 1;
    await assert.rejects(processPreKeyBundle(bob.address, badSpk, alice.stores), { code: "INVALID_SIGNATURE" });
    const badKem = {
      ...bundle,
      kyberPreKey: { ...bundle.kyberPreKey!, signature: bundle.kyberPreKey!.signature.slice() },
    };
    badKem.kyberPreKey.signature[7]! ^= 1;
    await assert.rejects(processPreKeyBundle(bob.address, badKem, alice.stores), { code: "INVALID_SIGNATURE" });
    assert.equal(await hasSession(bob.address, alice.stores), false);
  });

  it("a changed identity key is refused with UNTRUSTED_IDENTITY and an event, until accepted", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    const events: unknown[] = [];
    alice.stores.identity.onIdentityChange((e) => events.push(e));
    const bob2 = await makeDevice("bob"); // reinstalled: same address, new identity
    await assert.rejects(processPreKeyBundle(bob2.address, bob2.bundle(), alice.stores), (e: unknown) => {
      assert.ok(e instanceof SignalError && e.code === "UNTRUSTED_IDENTITY");
      assert.deepEqual(e.details?.identityKey, bob2.identityKey);
      return true;
    });
    assert.equal(events.length, 1);
    // Incoming: bob2 starts a session with alice; alice refuses it too.
    await processPreKeyBundle(alice.address, alice.bundle(), bob2.stores);
    const m = await encryptMessage(alice.address, text("it's me"), bob2.stores);
    await assert.rejects(decryptMessage(bob2.address, m.type, m.body, alice.stores), { code: "UNTRUSTED_IDENTITY" });
    assert.equal(alice.stores.identity.acceptIdentity(bob2.address, bob2.identityKey), true);
    assert.equal(str(await decryptMessage(bob2.address, m.type, m.body, alice.stores)), "it's me");
  });

  it("no session: NO_SESSION for encrypt and whisper decrypt; missing prekey ids are typed", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await assert.rejects(encryptMessage(bob.address, text("x"), alice.stores), { code: "NO_SESSION" });
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    const m = await encryptMessage(bob.address, text("x"), alice.stores);
    const carol = await makeDevice("carol");
    await carol.stores.kyberPreKeys.markKyberPreKeyUsed(200);
    await assert.rejects(decryptMessage(alice.address, m.type, m.body, carol.stores), { code: "INVALID_PREKEY_ID" });
  });

  it("simultaneous initiation converges", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    await processPreKeyBundle(alice.address, alice.bundle(), bob.stores);
    const a1 = await encryptMessage(bob.address, text("a1"), alice.stores);
    const b1 = await encryptMessage(alice.address, text("b1"), bob.stores);
    assert.equal(a1.type, "prekey");
    assert.equal(b1.type, "prekey");
    assert.equal(str(await decryptMessage(alice.address, a1.type, a1.body, bob.stores)), "a1");
    assert.equal(str(await decryptMessage(bob.address, b1.type, b1.body, alice.stores)), "b1");
    // Each side now holds two states; keep talking until both use the same one.
    for (let i = 0; i < 3; i++) {
      const a = await encryptMessage(bob.address, text(`a${i + 2}`), alice.stores);
      assert.equal(str(await decryptMessage(alice.address, a.type, a.body, bob.stores)), `a${i + 2}`);
      const b = await encryptMessage(alice.address, text(`b${i + 2}`), bob.stores);
      assert.equal(str(await decryptMessage(bob.address, b.type, b.body, alice.stores)), `b${i + 2}`);
    }
    const aliceRecord = SessionRecord.deserialize((await alice.stores.sessions.loadSession(bob.address))!);
    const bobRecord = SessionRecord.deserialize((await bob.stores.sessions.loadSession(alice.address))!);
    assert.deepEqual(aliceRecord.current!.aliceBaseKey, bobRecord.current!.aliceBaseKey, "same session on both sides");
    const last = await encryptMessage(bob.address, text("converged"), alice.stores);
    assert.equal(last.type, "whisper");
    assert.equal(str(await decryptMessage(alice.address, last.type, last.body, bob.stores)), "converged");
  });

  it("concurrent operations on one address are serialized (no lost updates)", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    const msgs = await Promise.all(
      Array.from({ length: 10 }, (_, i) => encryptMessage(bob.address, text(`c${i}`), alice.stores)),
    );
    const plains = await Promise.all(msgs.map((m) => decryptMessage(alice.address, m.type, m.body, bob.stores)));
    assert.deepEqual(plains.map(str).sort(), Array.from({ length: 10 }, (_, i) => `c${i}`).sort());
  });
});
