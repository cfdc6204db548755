import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { directChatId, groupChatId, StoreError } from "../src/store/index.node.ts";
import type { ProfileStore } from "../src/store/types.ts";
import { ALICE, BOB, withStore } from "./store-helpers.ts";

const bobChat = directChatId(BOB);

function incoming(store: ProfileStore, id: string, body: string, sentAt: number, sender = BOB, chatId = bobChat) {
  return store.insertIncoming({
    id,
    chatId,
    sender,
    senderDevice: 1,
    body,
    sentAt,
    serverAt: sentAt + 5,
    receivedAt: sentAt + 9,
  });
}

function isCode(code: string) {
  return (e: unknown) => e instanceof StoreError && e.code === code;
}

describe("meta and opaque values", () => {
  it("round-trips typed meta values and rejects wrong types", () =>
    withStore((store) => {
      assert.equal(store.getMeta("accountName"), undefined);
      store.setMeta("accountName", ALICE);
      store.setMeta("deviceId", 3);
      store.setMeta("serverStaticPublicKey", new Uint8Array([1, 2, 3]));
      assert.equal(store.getMeta("accountName"), ALICE);
      assert.equal(store.getMeta("deviceId"), 3);
      assert.deepEqual(store.getMeta("serverStaticPublicKey"), new Uint8Array([1, 2, 3]));
      store.setMeta("deviceId", 4);
      assert.equal(store.getMeta("deviceId"), 4);
      store.deleteMeta("deviceId");
      assert.equal(store.getMeta("deviceId"), undefined);
      // @ts-expect-error wrong value type on purpose
      assert.throws(() => store.setMeta("deviceId", "seven"), isCode("INVALID_ARGUMENT"));
      assert.throws(() => store.setMeta("deviceId", 1.5), isCode("INVALID_ARGUMENT"));
      // @ts-expect-error unknown key on purpose
      assert.throws(() => store.getMeta("nope"), isCode("INVALID_ARGUMENT"));
      store.setOpaque("own-identity", new Uint8Array([9, 9]));
      assert.deepEqual(store.getOpaque("own-identity"), new Uint8Array([9, 9]));
      store.deleteOpaque("own-identity");
      assert.equal(store.getOpaque("own-identity"), undefined);
    }));
});

describe("signal state records", () => {
  it("identities: trust on first use, a changed key is flagged unverified", () =>
    withStore((store) => {
      const addr = { name: BOB, deviceId: 1 };
      const k1 = new Uint8Array(33).fill(1);
      const k2 = new Uint8Array(33).fill(2);
      assert.equal(store.isTrustedIdentity(addr, k1), true);
      assert.deepEqual(store.saveIdentity(addr, k1, 100), { replaced: false });
      assert.deepEqual(store.saveIdentity(addr, k1, 200), { replaced: false });
      assert.equal(store.getIdentity(addr)?.firstSeenAt, 100);
      store.setIdentityTrust(addr, "verified");
      assert.equal(store.isTrustedIdentity(addr, k2), false);
      assert.deepEqual(store.saveIdentity(addr, k2, 300), { replaced: true });
      const rec = store.getIdentity(addr)!;
      assert.deepEqual(rec.publicKey, k2);
      assert.equal(rec.trust, "unverified");
      assert.equal(rec.firstSeenAt, 300);
      assert.equal(store.isTrustedIdentity(addr, k2), true);
      assert.equal(store.listIdentities(BOB).length, 1);
      assert.throws(() => store.setIdentityTrust({ name: "nobody", deviceId: 1 }, "verified"), isCode("NOT_FOUND"));
    }));

  it("prekeys of three kinds with a used flag", () =>
    withStore((store) => {
      store.savePreKey("prekey", 1, new Uint8Array([1]));
      store.savePreKey("prekey", 2, new Uint8Array([2]));
      store.savePreKey("kyber", 1, new Uint8Array([3]));
      store.savePreKey("signed", 7, new Uint8Array([4]));
      assert.deepEqual(store.getPreKey("kyber", 1)?.record, new Uint8Array([3]));
      assert.equal(store.getPreKey("signed", 1), undefined);
      store.markPreKeyUsed("kyber", 1);
      assert.equal(store.getPreKey("kyber", 1)?.used, true);
      assert.equal(store.countPreKeys("kyber", { unusedOnly: true }), 0);
      assert.equal(store.countPreKeys("prekey"), 2);
      store.removePreKey("prekey", 1);
      assert.deepEqual(
        store.listPreKeys("prekey").map((p) => p.id),
        [2],
      );
      assert.throws(() => store.markPreKeyUsed("prekey", 99), isCode("NOT_FOUND"));
      // @ts-expect-error bad kind on purpose
      assert.throws(() => store.getPreKey("other", 1), isCode("INVALID_ARGUMENT"));
    }));

  it("sessions per device, sender keys per distribution id, shared-with bookkeeping", () =>
    withStore((store) => {
      store.saveSession({ name: BOB, deviceId: 2 }, new Uint8Array([2]));
      store.saveSession({ name: BOB, deviceId: 1 }, new Uint8Array([1]));
      store.saveSession({ name: BOB, deviceId: 1 }, new Uint8Array([11]));
      assert.deepEqual(store.getSession({ name: BOB, deviceId: 1 }), new Uint8Array([11]));
      assert.deepEqual(store.listSessionDevices(BOB), [1, 2]);
      store.deleteSession({ name: BOB, deviceId: 2 });
      assert.deepEqual(store.listSessionDevices(BOB), [1]);
      store.deleteAllSessions(BOB);
      assert.equal(store.getSession({ name: BOB, deviceId: 1 }), undefined);

      const dist = "8e7f6a2c-0000-4000-8000-000000000001";
      store.saveSenderKey({ name: BOB, deviceId: 1 }, dist, new Uint8Array([5]));
      assert.deepEqual(store.getSenderKey({ name: BOB, deviceId: 1 }, dist), new Uint8Array([5]));
      assert.equal(store.getSenderKey({ name: BOB, deviceId: 1 }, "other"), undefined);
      store.markSenderKeyShared(dist, [
        { name: BOB, deviceId: 1 },
        { name: "carol", deviceId: 1 },
        { name: BOB, deviceId: 1 },
      ]);
      assert.deepEqual(store.listSenderKeyShared(dist), [
        { name: BOB, deviceId: 1 },
        { name: "carol", deviceId: 1 },
      ]);
      store.clearSenderKeyShared(dist, [{ name: BOB, deviceId: 1 }]);
      assert.equal(store.listSenderKeyShared(dist).length, 1);
      store.clearSenderKeyShared(dist);
      assert.equal(store.listSenderKeyShared(dist).length, 0);
      store.deleteSenderKey({ name: BOB, deviceId: 1 }, dist);
      assert.equal(store.getSenderKey({ name: BOB, deviceId: 1 }, dist), undefined);
    }));

  it("rejects malformed addresses with INVALID_ARGUMENT", () =>
    withStore((store) => {
      assert.throws(() => store.getSession({ name: "", deviceId: 1 }), isCode("INVALID_ARGUMENT"));
      assert.throws(() => store.getSession({ name: BOB, deviceId: -1 }), isCode("INVALID_ARGUMENT"));
      assert.throws(() => store.getSession({ name: BOB, deviceId: 1.5 }), isCode("INVALID_ARGUMENT"));
      assert.throws(() => store.getSession({ name: "x".repeat(300), deviceId: 1 }), isCode("INVALID_ARGUMENT"));
    }));
});

describe("contacts and chats", () => {
  it("contacts: upsert keeps addedAt, updates the display name, blocks", () =>
    withStore((store) => {
      store.upsertContact({ name: BOB, displayName: "Bob", addedAt: 10 });
      store.upsertContact({ name: BOB, addedAt: 99 });
      assert.deepEqual(store.getContact(BOB), { name: BOB, displayName: "Bob", addedAt: 10, blocked: false });
      store.upsertContact({ name: BOB, displayName: "Robert" });
      store.setContactBlocked(BOB, true);
      assert.deepEqual(store.getContact(BOB), { name: BOB, displayName: "Robert", addedAt: 10, blocked: true });
      assert.equal(store.listContacts().length, 1);
      store.removeContact(BOB);
      assert.equal(store.getContact(BOB), undefined);
      assert.throws(() => store.setContactBlocked(BOB, false), isCode("NOT_FOUND"));
    }));

  it("chats: kind from the id, last message, unread, muted, ordered by activity", () =>
    withStore((store) => {
      const group = groupChatId("team");
      store.ensureChat(group, { title: "Team", now: 1 });
      assert.equal(store.getChat(group)?.kind, "group");
      incoming(store, "b1", "hello from bob", 1000);
      incoming(store, "c1", "carol in team", 500, "carol", group);
      const chats = store.listChats();
      assert.deepEqual(
        chats.map((c) => c.id),
        [bobChat, group],
      );
      assert.equal(chats[0]?.kind, "direct");
      assert.equal(chats[0]?.lastMessagePreview, "hello from bob");
      assert.equal(chats[0]?.unreadCount, 1);
      store.setChatMuted(group, true);
      store.setChatTitle(group, "Team 2");
      assert.equal(store.getChat(group)?.muted, true);
      assert.equal(store.getChat(group)?.title, "Team 2");
      assert.throws(() => store.ensureChat("bogus"), isCode("INVALID_ARGUMENT"));
      assert.throws(() => store.setChatMuted(directChatId("nobody"), true), isCode("NOT_FOUND"));
    }));
});

describe("messages", () => {
  it("inserting the same (sender, id) twice stores it once", () =>
    withStore((store) => {
      const first = incoming(store, "m1", "hi", 1000);
      assert.equal(first.isNew, true);
      const second = incoming(store, "m1", "a different body from a replay", 2000);
      assert.equal(second.isNew, false);
      assert.equal(second.message.body, "hi");
      assert.equal(store.countMessages(bobChat), 1);
      // The same id from another sender is another message.
      assert.equal(incoming(store, "m1", "carol's", 1000, "carol", directChatId("carol")).isNew, true);
      assert.equal(store.countMessages(), 2);
    }));

  it("a placeholder keeps its place in history and is replaced by the decrypted message", () =>
    withStore((store) => {
      incoming(store, "m0", "before", 100);
      const ph = store.insertPlaceholder({
        id: "ph:guid-1",
        chatId: bobChat,
        sender: BOB,
        senderDevice: 1,
        sentAt: 200,
        serverAt: 205,
      });
      assert.equal(ph.message.kind, "placeholder");
      assert.equal(ph.message.body, null);
      incoming(store, "m2", "after", 300);
      assert.equal(store.getChat(bobChat)?.unreadCount, 2, "placeholders are not unread");
      assert.equal(
        store.insertPlaceholder({ id: "ph:guid-1", chatId: bobChat, sender: BOB, senderDevice: 1, sentAt: 200 }).isNew,
        false,
      );

      const real = store.insertIncoming({
        id: "m1",
        chatId: bobChat,
        sender: BOB,
        senderDevice: 1,
        body: "retried",
        sentAt: 200,
      });
      assert.equal(real.isNew, true);
      assert.equal(real.replacedPlaceholder, true);
      assert.equal(real.message.rowId, ph.message.rowId);
      assert.equal(real.message.kind, "text");
      assert.equal(real.message.serverAt, 205);
      assert.equal(store.getMessage(BOB, "ph:guid-1"), undefined);
      assert.deepEqual(
        store.history(bobChat).messages.map((m) => m.body),
        ["after", "retried", "before"],
      );
      assert.equal(store.search("retried").length, 1);
      assert.equal(store.getChat(bobChat)?.unreadCount, 3);
    }));

  it("status only moves forward", () =>
    withStore((store) => {
      store.setMeta("accountName", ALICE);
      store.setMeta("deviceId", 1);
      store.queueOutgoing({ id: "o1", chatId: bobChat, body: "x", sentAt: 1 });
      const status = () => store.getMessage(ALICE, "o1")?.status;
      assert.equal(status(), "pending");
      assert.equal(store.setStatus(ALICE, "o1", "read"), true);
      assert.equal(store.setStatus(ALICE, "o1", "delivered"), false);
      assert.equal(store.setStatus(ALICE, "o1", "sent"), false);
      assert.equal(store.setStatus(ALICE, "o1", "failed"), false);
      assert.equal(store.setStatus(ALICE, "o1", "pending"), false);
      assert.equal(status(), "read");
      assert.equal(store.outboxSize(), 0, "a read message is not resent");
      assert.throws(() => store.setStatus(ALICE, "nope", "read"), isCode("NOT_FOUND"));
      // @ts-expect-error bad status on purpose
      assert.throws(() => store.setStatus(ALICE, "o1", "seen"), isCode("INVALID_ARGUMENT"));
    }));

  it("deleting a message removes it from history, search and the outbox", () =>
    withStore((store) => {
      store.queueOutgoing({
        id: "o1",
        chatId: bobChat,
        body: "delete me please",
        sentAt: 1,
        sender: ALICE,
        senderDevice: 1,
      });
      assert.equal(store.search("delete").length, 1);
      store.deleteMessage(ALICE, "o1");
      assert.equal(store.search("delete").length, 0);
      assert.equal(store.outboxSize(), 0);
      assert.equal(store.countMessages(), 0);
    }));
});

describe("receipts", () => {
  it("delivered/read receipts upgrade our messages, per recipient device, only from the peer", () =>
    withStore((store) => {
      store.setMeta("accountName", ALICE);
      store.setMeta("deviceId", 1);
      store.queueOutgoing({ id: "o1", chatId: bobChat, body: "one", sentAt: 1 });
      store.queueOutgoing({ id: "o2", chatId: bobChat, body: "two", sentAt: 2 });
      assert.equal(store.markSent("o1", 10), true);
      assert.deepEqual(
        store.applyReceipt({
          status: "delivered",
          messageIds: ["o1", "o2", "unknown"],
          from: { name: BOB, deviceId: 1 },
          at: 20,
        }),
        ["o1", "o2"],
      );
      assert.equal(store.outboxSize(), 0, "a delivered message left the outbox even before markSent");
      // A forged receipt from a stranger changes nothing.
      assert.deepEqual(
        store.applyReceipt({ status: "read", messageIds: ["o1"], from: { name: "mallory", deviceId: 1 }, at: 25 }),
        [],
      );
      assert.deepEqual(
        store.applyReceipt({ status: "read", messageIds: ["o1"], from: { name: BOB, deviceId: 2 }, at: 30 }),
        ["o1"],
      );
      // Late "delivered" after "read": ignored.
      assert.deepEqual(
        store.applyReceipt({ status: "delivered", messageIds: ["o1"], from: { name: BOB, deviceId: 2 }, at: 40 }),
        [],
      );
      assert.equal(store.getMessage(ALICE, "o1")?.status, "read");
      assert.deepEqual(store.listReceipts("o1"), [
        { recipient: { name: BOB, deviceId: 1 }, status: "delivered", at: 20 },
        { recipient: { name: BOB, deviceId: 2 }, status: "read", at: 30 },
      ]);
    }));

  it("markChatRead returns the read receipts to send, once, and zeroes unread", () =>
    withStore((store) => {
      const group = groupChatId("g");
      store.insertIncoming({ id: "g1", chatId: group, sender: BOB, senderDevice: 1, body: "a", sentAt: 1 });
      store.insertIncoming({ id: "g2", chatId: group, sender: "carol", senderDevice: 2, body: "b", sentAt: 2 });
      store.insertIncoming({ id: "g3", chatId: group, sender: BOB, senderDevice: 1, body: "c", sentAt: 3 });
      store.insertPlaceholder({ id: "ph", chatId: group, sender: BOB, senderDevice: 3, sentAt: 4 });
      incoming(store, "d1", "direct", 5);
      assert.equal(store.getChat(group)?.unreadCount, 3);
      assert.equal(store.totalUnread(), 4);
      assert.deepEqual(store.markChatRead(group), [
        { sender: BOB, senderDevice: 1, messageIds: ["g1", "g3"] },
        { sender: "carol", senderDevice: 2, messageIds: ["g2"] },
      ]);
      assert.equal(store.getChat(group)?.unreadCount, 0);
      assert.equal(store.totalUnread(), 1);
      assert.deepEqual(store.markChatRead(group), []);
      assert.equal(store.getMessage(BOB, "g1")?.status, "read");
    }));
});

describe("transactions", () => {
  it("roll back every write when the function throws", () =>
    withStore((store) => {
      const boom = new Error("boom");
      assert.throws(
        () =>
          store.transaction(() => {
            incoming(store, "t1", "inside", 1);
            throw boom;
          }),
        (e: unknown) => e === boom,
      );
      assert.equal(store.countMessages(), 0);
      assert.equal(store.getChat(bobChat), undefined);
    }));
});
