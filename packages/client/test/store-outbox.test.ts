import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { directChatId, openProfileStore, StoreError } from "../src/store/index.node.ts";
import { ALICE, BOB, tempDir, withStore } from "./store-helpers.ts";

const bobChat = directChatId(BOB);

describe("outbox", () => {
  it("survives close and reopen, then drains with markSent", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const first = await openProfileStore({ dir });
      first.setMeta("accountName", ALICE);
      first.setMeta("deviceId", 1);
      for (let i = 0; i < 5; i++)
        first.queueOutgoing({ id: `o${i}`, chatId: bobChat, body: `msg ${i}`, sentAt: 1000 + i });
      first.markAttemptFailed("o1", 5000, "socket closed");
      first.close();

      const store = await openProfileStore({ dir });
      assert.equal(store.outboxSize(), 5);
      assert.equal(store.nextOutboxAttemptAt(), 1000, "the earliest entry's time");
      const due = store.nextOutboxBatch({ now: 2000 });
      assert.deepEqual(
        due.map((i) => i.message.id),
        ["o0", "o2", "o3", "o4"],
      );
      assert.equal(due[0]?.message.status, "pending");
      assert.equal(due[0]?.message.body, "msg 0");
      const later = store.nextOutboxBatch({ now: 5000, limit: 2 });
      assert.deepEqual(
        later.map((i) => [i.message.id, i.attempts, i.lastError]),
        [
          ["o0", 0, null],
          ["o1", 1, "socket closed"],
        ],
      );
      for (const id of ["o0", "o2", "o3", "o4"]) store.markSent(id, 7000);
      assert.equal(store.nextOutboxAttemptAt(), 5000, "only the put-off entry is left");
      for (const item of store.nextOutboxBatch({ now: 9999 })) {
        assert.equal(store.markSent(item.message.id, 7000), true);
      }
      assert.equal(store.outboxSize(), 0);
      assert.equal(store.nextOutboxAttemptAt(), undefined);
      assert.equal(store.getMessage(ALICE, "o3")?.status, "sent");
      assert.equal(store.getMessage(ALICE, "o3")?.serverAt, 7000);
      assert.equal(store.markSent("o3", 8000), false, "second ack is a no-op");
      assert.equal(store.getMessage(ALICE, "o3")?.serverAt, 7000);
      assert.equal(store.markSent("never-queued", 1), false);
      store.close();
    } finally {
      cleanup();
    }
  });

  it("queueing the same id twice is idempotent", () =>
    withStore((store) => {
      const a = store.queueOutgoing({
        id: "o1",
        chatId: bobChat,
        body: "x",
        sentAt: 1,
        sender: ALICE,
        senderDevice: 1,
      });
      const b = store.queueOutgoing({
        id: "o1",
        chatId: bobChat,
        body: "x",
        sentAt: 1,
        sender: ALICE,
        senderDevice: 1,
      });
      assert.equal(a.isNew, true);
      assert.equal(b.isNew, false);
      assert.equal(store.outboxSize(), 1);
    }));

  it("needs a sender: from meta or the input", () =>
    withStore((store) => {
      assert.throws(
        () => store.queueOutgoing({ id: "o1", chatId: bobChat, body: "x", sentAt: 1 }),
        (e: unknown) => e instanceof StoreError && e.code === "NOT_FOUND",
      );
      assert.equal(store.countMessages(), 0);
    }));

  it("permanent failure leaves the outbox; retry puts it back; a late ack still upgrades", () =>
    withStore((store) => {
      store.queueOutgoing({ id: "o1", chatId: bobChat, body: "x", sentAt: 1, sender: ALICE, senderDevice: 1 });
      store.markAttemptFailed("o1", 10);
      store.markFailed("o1", "recipient unknown");
      assert.equal(store.getMessage(ALICE, "o1")?.status, "failed");
      assert.equal(store.outboxSize(), 0);
      assert.throws(
        () => store.markAttemptFailed("o1", 20),
        (e: unknown) => e instanceof StoreError && e.code === "NOT_FOUND",
      );
      assert.equal(store.retryFailed("o1", 50), true);
      assert.equal(store.retryFailed("o1", 50), false, "only failed messages can be retried");
      const [item] = store.nextOutboxBatch({ now: 50 });
      assert.equal(item?.attempts, 0);
      assert.equal(item?.message.status, "pending");
      store.markFailed("o1");
      assert.equal(store.markSent("o1", 60), true, "the server did get it after all");
      assert.equal(store.getMessage(ALICE, "o1")?.status, "sent");
    }));

  it("rejects bad arguments with typed errors", () =>
    withStore((store) => {
      const invalid = (e: unknown) => e instanceof StoreError && e.code === "INVALID_ARGUMENT";
      assert.throws(() => store.nextOutboxBatch({ now: Number.NaN }), invalid);
      assert.throws(() => store.nextOutboxBatch({ now: 1, limit: 0 }), invalid);
      assert.throws(() => store.nextOutboxBatch({ now: 1, limit: 10_000 }), invalid);
      assert.throws(
        () => store.queueOutgoing({ id: "", chatId: bobChat, body: "x", sentAt: 1, sender: ALICE, senderDevice: 1 }),
        invalid,
      );
      assert.throws(
        () => store.queueOutgoing({ id: "o", chatId: bobChat, body: "x", sentAt: -5, sender: ALICE, senderDevice: 1 }),
        invalid,
      );
    }));
});
