// fast-check properties of the Double Ratchet sessions: delivery order, loss
// and duplication; tamper rejection; forward secrecy; post-compromise recovery.

import assert from "node:assert/strict";
import { it } from "node:test";
import fc from "fast-check";
import { toHex } from "../src/crypto/bytes.ts";
import { SignalError } from "../src/errors.ts";
import { decodeSignalMessage } from "../src/proto/messages.ts";
import { type CiphertextMessage, decryptMessage, encryptMessage, processPreKeyBundle } from "../src/session/cipher.ts";
import { InMemorySignalStores } from "../src/stores/memory.ts";
import { type Device, describeEachProvider, makeDevice, str, text } from "./fixtures/sessions/helpers.ts";

async function established(): Promise<{ alice: Device; bob: Device }> {
  const alice = await makeDevice("alice");
  const bob = await makeDevice("bob");
  await processPreKeyBundle(bob.address, bob.bundle(), alice.stores);
  const first = await encryptMessage(bob.address, text("setup"), alice.stores);
  await decryptMessage(alice.address, first.type, first.body, bob.stores);
  const reply = await encryptMessage(alice.address, text("ack"), bob.stores);
  await decryptMessage(bob.address, reply.type, reply.body, alice.stores);
  return { alice, bob };
}

/** A copy of `device`'s stores holding only its current session record with `peer` (an attacker's snapshot). */
async function snapshot(device: Device, peer: Device): Promise<InMemorySignalStores> {
  const copy = new InMemorySignalStores(
    await device.stores.identity.getIdentityKeyPair(),
    await device.stores.identity.getLocalRegistrationId(),
  );
  await copy.sessions.storeSession(peer.address, (await device.stores.sessions.loadSession(peer.address))!.slice());
  return copy;
}

const typed = (e: unknown) => e instanceof SignalError;

type Action =
  | { kind: "send"; fromAlice: boolean }
  | { kind: "deliver"; toAlice: boolean; pick: number; duplicate: boolean }
  | { kind: "drop"; toAlice: boolean; pick: number };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("send" as const), fromAlice: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("deliver" as const),
      toAlice: fc.boolean(),
      pick: fc.nat(),
      duplicate: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("drop" as const), toAlice: fc.boolean(), pick: fc.nat() }) },
);

interface InFlight {
  id: number;
  message: CiphertextMessage;
  ratchetKey: string;
}

describeEachProvider("session properties", (provider) => {
  const runs = provider.name === "node" ? 25 : 8;

  it("any order, loss and duplication: every surviving message decrypts exactly once", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 30 }), async (actions) => {
        const { alice, bob } = await established();
        const queues = { toAlice: [] as InFlight[], toBob: [] as InFlight[] };
        const delivered = new Set<number>();
        // Ratchet keys each receiver has seen, newest last: libsignal keeps 5 receiving chains.
        const chainsSeen = { toAlice: [] as string[], toBob: [] as string[] };
        let nextId = 0;
        const deliver = async (toAlice: boolean, item: InFlight) => {
          const [receiver, sender] = toAlice ? [alice, bob] : [bob, alice];
          const seen = toAlice ? chainsSeen.toAlice : chainsSeen.toBob;
          if (!seen.includes(item.ratchetKey)) seen.push(item.ratchetKey);
          const withinBounds = seen.length - seen.indexOf(item.ratchetKey) <= 5;
          try {
            const plain = await decryptMessage(sender.address, item.message.type, item.message.body, receiver.stores);
            assert.equal(delivered.has(item.id), false, "a message decrypted twice");
            assert.equal(str(plain), `m${item.id}`);
            delivered.add(item.id);
          } catch (e) {
            assert.ok(typed(e), String(e));
            if (!delivered.has(item.id) && withinBounds) throw e;
            if (delivered.has(item.id)) assert.equal((e as SignalError).code, "DUPLICATE_MESSAGE");
          }
        };
        for (const action of actions) {
          if (action.kind === "send") {
            const [from, to] = action.fromAlice ? [alice, bob] : [bob, alice];
            const id = nextId++;
            const message = await encryptMessage(to.address, text(`m${id}`), from.stores);
            const ratchetKey = toHex(decodeSignalMessage(message.body).fields.ratchetKey);
            (action.fromAlice ? queues.toBob : queues.toAlice).push({ id, message, ratchetKey });
          } else {
            const queue = action.toAlice ? queues.toAlice : queues.toBob;
            if (queue.length === 0) continue;
            const index = action.pick % queue.length;
            const item = queue[index]!;
            if (action.kind === "drop" || !action.duplicate) queue.splice(index, 1);
            if (action.kind === "deliver") await deliver(action.toAlice, item);
          }
        }
        for (const item of queues.toBob) await deliver(false, item);
        for (const item of queues.toAlice) await deliver(true, item);
      }),
      { numRuns: runs },
    );
  });

  it("a flipped bit anywhere in a message is rejected, typed, and the session stays usable", async () => {
    const { alice, bob } = await established();
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 0, max: 7 }), fc.boolean(), async (position, bit, bobSends) => {
        const [from, to] = bobSends ? [bob, alice] : [alice, bob];
        const message = await encryptMessage(to.address, text("tamper me"), from.stores);
        const bad = message.body.slice();
        const i = position % bad.length;
        bad[i]! ^= 1 << bit;
        await assert.rejects(decryptMessage(from.address, message.type, bad, to.stores), typed);
        assert.equal(str(await decryptMessage(from.address, message.type, message.body, to.stores)), "tamper me");
      }),
      { numRuns: runs * 2 },
    );
  });

  it("forward secrecy: a copy of today's state cannot decrypt earlier messages", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.boolean(), async (count, ratchetInBetween) => {
        const { alice, bob } = await established();
        const old: CiphertextMessage[] = [];
        for (let i = 0; i < count; i++) old.push(await encryptMessage(bob.address, text(`old ${i}`), alice.stores));
        for (const m of old) await decryptMessage(alice.address, m.type, m.body, bob.stores);
        if (ratchetInBetween) {
          const r = await encryptMessage(alice.address, text("turn"), bob.stores);
          await decryptMessage(bob.address, r.type, r.body, alice.stores);
        }
        const stolen = await snapshot(bob, alice);
        for (const m of old) await assert.rejects(decryptMessage(alice.address, m.type, m.body, stolen), typed);
      }),
      { numRuns: runs },
    );
  });

  it("post-compromise recovery: after one round trip an old state copy decrypts nothing new", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), async (after) => {
        const { alice, bob } = await established();
        const stolen = await snapshot(bob, alice);
        // One round trip: Alice -> Bob, Bob -> Alice (the DH ratchet turns on both sides).
        const a1 = await encryptMessage(bob.address, text("a1"), alice.stores);
        await decryptMessage(alice.address, a1.type, a1.body, bob.stores);
        const b1 = await encryptMessage(alice.address, text("b1"), bob.stores);
        await decryptMessage(bob.address, b1.type, b1.body, alice.stores);
        for (let i = 0; i < after; i++) {
          const m = await encryptMessage(bob.address, text(`new ${i}`), alice.stores);
          await assert.rejects(decryptMessage(alice.address, m.type, m.body, stolen), typed);
          assert.equal(str(await decryptMessage(alice.address, m.type, m.body, bob.stores)), `new ${i}`);
        }
      }),
      { numRuns: runs },
    );
  });
});
