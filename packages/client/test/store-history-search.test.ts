import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { directChatId, StoreError } from "../src/store/index.node.ts";
import type { ProfileStore, StoredMessage } from "../src/store/types.ts";
import { BOB, withStore } from "./store-helpers.ts";

const bobChat = directChatId(BOB);
const carolChat = directChatId("carol");

function add(store: ProfileStore, id: string, body: string, at: number, chatId = bobChat, sender = BOB) {
  store.insertIncoming({ id, chatId, sender, senderDevice: 1, body, sentAt: at, serverAt: at });
}

function allPages(store: ProfileStore, chatId: string, limit: number): StoredMessage[][] {
  const pages: StoredMessage[][] = [];
  let before: string | null = null;
  for (;;) {
    const page = store.history(chatId, { before, limit });
    pages.push(page.messages);
    if (page.nextCursor === null) return pages;
    before = page.nextCursor;
  }
}

describe("history", () => {
  it("pages newest first with stable cursors, ties broken by insertion order", () =>
    withStore((store) => {
      for (let i = 0; i < 25; i++) add(store, `m${i}`, `body ${i}`, 1000 + Math.floor(i / 3));
      add(store, "other", "in another chat", 1005, carolChat, "carol");
      const pages = allPages(store, bobChat, 10);
      assert.deepEqual(
        pages.map((p) => p.length),
        [10, 10, 5],
      );
      const ids = pages.flat().map((m) => m.id);
      assert.deepEqual(
        ids,
        Array.from({ length: 25 }, (_, i) => `m${24 - i}`),
      );
      assert.equal(store.countMessages(bobChat), 25);
      assert.equal(store.countMessages(), 26);
    }));

  it("a cursor stays valid when newer and older messages arrive", () =>
    withStore((store) => {
      for (let i = 0; i < 6; i++) add(store, `m${i}`, "x", 100 + i);
      const first = store.history(bobChat, { limit: 3 });
      add(store, "newer", "x", 500);
      add(store, "late-old", "x", 50);
      const second = store.history(bobChat, { before: first.nextCursor, limit: 3 });
      assert.deepEqual(
        second.messages.map((m) => m.id),
        ["m2", "m1", "m0"],
      );
      const third = store.history(bobChat, { before: second.nextCursor, limit: 3 });
      assert.deepEqual(
        third.messages.map((m) => m.id),
        ["late-old"],
      );
      assert.equal(third.nextCursor, null);
    }));

  it("an exact-multiple last page ends with a null cursor; empty chats are empty", () =>
    withStore((store) => {
      for (let i = 0; i < 4; i++) add(store, `m${i}`, "x", i);
      assert.deepEqual(
        allPages(store, bobChat, 2).map((p) => p.length),
        [2, 2],
      );
      assert.deepEqual(store.history(directChatId("nobody")), { messages: [], nextCursor: null });
    }));

  it("rejects malformed cursors and limits", () =>
    withStore((store) => {
      const invalid = (e: unknown) => e instanceof StoreError && e.code === "INVALID_ARGUMENT";
      for (const before of ["", "abc", "1:", ":1", "1:2:3", "1e3:4", `${"9".repeat(30)}:1`, "1;DROP TABLE x:1"]) {
        assert.throws(() => store.history(bobChat, { before }), invalid, before);
      }
      assert.throws(() => store.history(bobChat, { limit: 0 }), invalid);
      assert.throws(() => store.history(bobChat, { limit: 1.5 }), invalid);
    }));
});

describe("full-text search", () => {
  it("finds words with snippets, newest first, optionally per chat", () =>
    withStore((store) => {
      add(store, "a", "Let us meet at the station tomorrow", 1);
      add(store, "b", "The STATION was closed", 2);
      add(store, "c", "nothing here", 3);
      add(store, "d", "station in carol's chat", 4, carolChat, "carol");
      const hits = store.search("station");
      assert.deepEqual(
        hits.map((h) => h.message.id),
        ["d", "b", "a"],
      );
      assert.match(hits[1]!.snippet, /«STATION»/);
      assert.deepEqual(
        store.search("station", { chatId: bobChat }).map((h) => h.message.id),
        ["b", "a"],
      );
      assert.deepEqual(
        store.search("station closed").map((h) => h.message.id),
        ["b"],
      );
      assert.equal(store.search("station", { limit: 1 }).length, 1);
      assert.deepEqual(store.search("   "), []);
      assert.deepEqual(store.search("absent"), []);
    }));

  it("handles non-ASCII: diacritics, Cyrillic, Greek, CJK, emoji", () =>
    withStore((store) => {
      add(store, "fr", "Le café est délicieux à Zürich", 1);
      add(store, "ru", "Привет, как дела? Встреча завтра", 2);
      add(store, "el", "Καλημέρα κόσμε", 3);
      add(store, "zh", "我们明天在火车站见面", 4);
      add(store, "ja", "東京駅で会いましょう", 5);
      add(store, "emoji", "party 🎉🎉🎉 tonight", 6);
      const ids = (q: string) => store.search(q).map((h) => h.message.id);
      assert.deepEqual(ids("café"), ["fr"]);
      assert.deepEqual(ids("cafe"), ["fr"], "diacritics are ignored");
      assert.deepEqual(ids("ZURICH"), ["fr"]);
      assert.deepEqual(ids("встреча"), ["ru"], "Cyrillic, case-insensitive");
      assert.deepEqual(ids("καλημέρα"), ["el"]);
      assert.deepEqual(ids("火车站"), ["zh"], "CJK substring without word breaks");
      assert.deepEqual(ids("東京駅"), ["ja"]);
      assert.deepEqual(ids("🎉🎉🎉"), ["emoji"]);
      assert.match(store.search("火车站")[0]!.snippet, /«火车站»/);
    }));

  it("short terms (under 3 characters) still match, with a snippet", () =>
    withStore((store) => {
      add(store, "a", "go to the zoo now", 1);
      add(store, "b", "我们去", 2);
      add(store, "c", "nothing", 3);
      assert.deepEqual(
        store.search("zo").map((h) => h.message.id),
        ["a"],
      );
      assert.equal(store.search("zo")[0]!.snippet, "go to the «zo»o now");
      assert.deepEqual(
        store.search("我们").map((h) => h.message.id),
        ["b"],
      );
      assert.deepEqual(
        store.search("zoo no").map((h) => h.message.id),
        ["a"],
      );
      assert.deepEqual(store.search("%"), []);
      assert.deepEqual(store.search("_"), []);
    }));

  it("FTS syntax in the query is treated as text, never as an error", () =>
    withStore((store) => {
      add(store, "a", 'he said "NEAR(x y)" AND OR NOT * ^ : - ( ) \\', 1);
      for (const q of [
        '"',
        '""',
        "NEAR(",
        "AND",
        "OR NOT",
        "*",
        "^",
        "a:b",
        "(x",
        "x)",
        "body:he",
        '"NEAR(x',
        "\\",
        "\u0000",
        "'; DROP TABLE messages; --",
      ]) {
        assert.doesNotThrow(() => store.search(q), q);
      }
      assert.deepEqual(
        store.search('"NEAR(x').map((h) => h.message.id),
        ["a"],
      );
      assert.equal(store.countMessages(), 1);
    }));

  it("the index follows updates and deletes", () =>
    withStore((store) => {
      store.insertPlaceholder({ id: "ph", chatId: bobChat, sender: BOB, senderDevice: 1, sentAt: 5 });
      assert.deepEqual(store.search("secret"), []);
      store.insertIncoming({
        id: "m",
        chatId: bobChat,
        sender: BOB,
        senderDevice: 1,
        body: "the secret word",
        sentAt: 5,
      });
      assert.equal(store.search("secret").length, 1);
      store.deleteMessage(BOB, "m");
      assert.deepEqual(store.search("secret"), []);
    }));
});
