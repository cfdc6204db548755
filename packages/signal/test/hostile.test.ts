// Hostile input: every bad message gets a typed SignalError and leaves the
// session usable for the next good message (state commits only on success).

import assert from "node:assert/strict";
import { it } from "node:test";
import { SignalError } from "../src/errors.ts";
import { decryptMessage, encryptMessage, processPreKeyBundle } from "../src/session/cipher.ts";
import { SessionRecord } from "../src/session/record.ts";
import { describeEachProvider, makeDevice, str, text } from "./fixtures/sessions/helpers.ts";

async function established() {
  const alice = await makeDevice("alice");
  const bob = await makeDevice("bob");
  await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
  const first = await encryptMessage(bob.address, text("setup"), alice.stores);
  await decryptMessage(alice.address, first.type, first.body, bob.stores);
  const reply = await encryptMessage(alice.address, text("ack"), bob.stores);
  await decryptMessage(bob.address, reply.type, reply.body, alice.stores);
  return { alice, bob };
}

function isTyped(e: unknown): boolean {
  return e instanceof SignalError && typeof e.code === "string";
}

describeEachProvider("hostile messages", () => {
  it("truncated, oversized, wrong-version, wrong-MAC, replayed and too-far-ahead messages", async () => {
    const { alice, bob } = await established();
    const good = await encryptMessage(bob.address, text("good"), alice.stores);
    const before = await bob.stores.sessions.loadSession(alice.address);
    const cases: [string, Uint8Array, string | undefined][] = [
      ["empty", new Uint8Array(0), "INVALID_MESSAGE"],
      ["truncated", good.body.subarray(0, good.body.length - 3), undefined],
      ["oversized", new Uint8Array(2 << 20).fill(0x44), "INVALID_MESSAGE"],
      ["wrong version", Uint8Array.from([0x24, ...good.body.subarray(1)]), "UNSUPPORTED_VERSION"],
      ["future version", Uint8Array.from([0x54, ...good.body.subarray(1)]), "UNSUPPORTED_VERSION"],
      ["v3 on a v4 session", Uint8Array.from([0x34, ...good.body.subarray(1)]), "UNSUPPORTED_VERSION"],
      ["wrong MAC", Uint8Array.from([...good.body.subarray(0, -1), good.body[good.body.length - 1]! ^ 1]), "BAD_MAC"],
      ["garbage", new Uint8Array(200).fill(0xa5), undefined],
    ];
    for (const [name, body, code] of cases) {
      await assert.rejects(decryptMessage(alice.address, "whisper", body, bob.stores), (e: unknown) => {
        assert.ok(isTyped(e), `${name}: ${String(e)}`);
        if (code) assert.equal((e as SignalError).code, code, name);
        return true;
      });
      assert.deepEqual(await bob.stores.sessions.loadSession(alice.address), before, `${name} changed the session`);
    }
    assert.equal(str(await decryptMessage(alice.address, good.type, good.body, bob.stores)), "good");
    // Replay of a consumed message.
    await assert.rejects(decryptMessage(alice.address, good.type, good.body, bob.stores), {
      code: "DUPLICATE_MESSAGE",
    });
    const next = await encryptMessage(bob.address, text("next"), alice.stores);
    assert.equal(str(await decryptMessage(alice.address, next.type, next.body, bob.stores)), "next");
  });

  it("a message more than 25,000 ahead is TOO_FAR_AHEAD and the session still works", async () => {
    const { alice, bob } = await established();
    // Forge a far-ahead counter in Alice's state to make a real (correctly MACed) message.
    const aliceRecordBytes = (await alice.stores.sessions.loadSession(bob.address))!;
    const record = SessionRecord.deserialize(aliceRecordBytes);
    record.current!.senderChain!.chainKey = { ...record.current!.senderChain!.chainKey, index: 25_002 };
    await alice.stores.sessions.storeSession(bob.address, record.serialize());
    const far = await encryptMessage(bob.address, text("far"), alice.stores);
    await alice.stores.sessions.storeSession(bob.address, aliceRecordBytes);
    await assert.rejects(decryptMessage(alice.address, far.type, far.body, bob.stores), { code: "TOO_FAR_AHEAD" });
    const ok = await encryptMessage(bob.address, text("still fine"), alice.stores);
    assert.equal(str(await decryptMessage(alice.address, ok.type, ok.body, bob.stores)), "still fine");
  });

  it("hostile PreKeySignalMessages are typed and consume no prekeys", async () => {
    const alice = await makeDevice("alice");
    const bob = await makeDevice("bob");
    await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
    const m = await encryptMessage(bob.address, text("pk"), alice.stores);
    for (let i = 0; i < m.body.length; i += Math.max(1, Math.floor(m.body.length / 97))) {
      const bad = m.body.slice();
      bad[i]! ^= 0x10;
      await assert.rejects(decryptMessage(alice.address, "prekey", bad, bob.stores), (e: unknown) => isTyped(e));
    }
    await assert.rejects(decryptMessage(alice.address, "prekey", m.body.subarray(0, 40), bob.stores), (e: unknown) =>
      isTyped(e),
    );
    assert.equal(bob.stores.preKeys.size, 3);
    assert.equal(await bob.stores.sessions.loadSession(alice.address), undefined);
    assert.equal(str(await decryptMessage(alice.address, m.type, m.body, bob.stores)), "pk");
  });

  it("corrupt stored records raise INVALID_RECORD", async () => {
    const { alice, bob } = await established();
    const bytes = (await bob.stores.sessions.loadSession(alice.address))!;
    for (const bad of [bytes.subarray(0, 10), Uint8Array.from([9, ...bytes.subarray(1)]), new Uint8Array(0)]) {
      assert.throws(() => SessionRecord.deserialize(bad), { code: "INVALID_RECORD" });
    }
    await bob.stores.sessions.storeSession(alice.address, bytes.subarray(0, 50));
    const m = await encryptMessage(bob.address, text("x"), alice.stores);
    await assert.rejects(decryptMessage(alice.address, m.type, m.body, bob.stores), { code: "INVALID_RECORD" });
  });
});
