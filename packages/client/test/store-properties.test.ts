import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { canTransition, directChatId, MESSAGE_STATUSES, StoreError } from "../src/store/index.node.ts";
import type { MessageStatus, StoredMessage } from "../src/store/types.ts";
import { ALICE, withStore } from "./store-helpers.ts";

const status = fc.constantFrom(...MESSAGE_STATUSES);
const DELIVERY_RANK: Record<MessageStatus, number> = { pending: 0, failed: 0, sent: 1, delivered: 2, read: 3 };

describe("status transitions (property)", () => {
  it("canTransition never lowers the delivery rank and never leaves a delivered state for pending/failed", () => {
    fc.assert(
      fc.property(status, status, (from, to) => {
        if (!canTransition(from, to)) return;
        assert.notEqual(from, to);
        assert.ok(DELIVERY_RANK[to] >= DELIVERY_RANK[from]);
        if (DELIVERY_RANK[from] > 0) assert.ok(to !== "pending" && to !== "failed");
      }),
    );
  });

  it("the store follows the rule for any sequence of updates, and read is final", () =>
    withStore((store) => {
      let n = 0;
      fc.assert(
        fc.property(fc.array(status, { maxLength: 20 }), (updates) => {
          const id = `p${n++}`;
          store.queueOutgoing({
            id,
            chatId: directChatId("bob"),
            body: "x",
            sentAt: n,
            sender: ALICE,
            senderDevice: 1,
          });
          let model: MessageStatus = "pending";
          for (const to of updates) {
            const before: MessageStatus = model;
            const changed = store.setStatus(ALICE, id, to);
            assert.equal(changed, canTransition(before, to));
            if (changed) model = to;
            const actual = store.getMessage(ALICE, id)!.status;
            assert.equal(actual, model);
            assert.ok(DELIVERY_RANK[actual] >= DELIVERY_RANK[before]);
            if (before === "read") assert.equal(actual, "read");
          }
          // Beyond pending the message is out of the outbox; pending keeps it there.
          const queued = store
            .nextOutboxBatch({ now: Number.MAX_SAFE_INTEGER, limit: 1000 })
            .some((i) => i.message.id === id);
          assert.equal(queued, model === "pending");
        }),
        { numRuns: 150 },
      );
    }));
});

describe("history paging and idempotent insert (property)", () => {
  it("every message appears exactly once across pages, in (sortAt desc, rowId desc) order", () =>
    withStore((store) => {
      let run = 0;
      fc.assert(
        fc.property(
          fc.array(fc.record({ id: fc.integer({ min: 0, max: 60 }), at: fc.integer({ min: 0, max: 15 }) }), {
            maxLength: 80,
          }),
          fc.integer({ min: 1, max: 12 }),
          (inserts, limit) => {
            const chatId = directChatId(`peer${run++}`);
            const sender = chatId.slice(2);
            const distinct = new Set<number>();
            for (const m of inserts) {
              const r = store.insertIncoming({
                id: `m${m.id}`,
                chatId,
                sender,
                senderDevice: 1,
                body: "b",
                sentAt: m.at,
              });
              assert.equal(r.isNew, !distinct.has(m.id));
              distinct.add(m.id);
            }
            assert.equal(store.countMessages(chatId), distinct.size);
            const seen: StoredMessage[] = [];
            let before: string | null = null;
            for (let guard = 0; guard <= distinct.size + 1; guard++) {
              const page = store.history(chatId, { before, limit });
              assert.ok(page.messages.length <= limit);
              seen.push(...page.messages);
              if (page.nextCursor === null) break;
              assert.equal(page.messages.length, limit, "only the last page may be short");
              before = page.nextCursor;
            }
            assert.equal(seen.length, distinct.size);
            assert.equal(new Set(seen.map((m) => m.id)).size, distinct.size);
            for (let i = 1; i < seen.length; i++) {
              const a = seen[i - 1]!;
              const b = seen[i]!;
              assert.ok(a.sortAt > b.sortAt || (a.sortAt === b.sortAt && a.rowId > b.rowId));
            }
          },
        ),
        { numRuns: 120 },
      );
    }));
});

describe("hostile input (property)", () => {
  it("search and history cursors accept any string without crashing", () =>
    withStore((store) => {
      store.insertIncoming({
        id: "1",
        chatId: directChatId("b"),
        sender: "b",
        senderDevice: 1,
        body: "hello wörld 你好世界",
        sentAt: 1,
      });
      fc.assert(
        fc.property(fc.string({ unit: "grapheme", maxLength: 64 }), fc.string({ maxLength: 40 }), (q, cursor) => {
          const hits = store.search(q);
          assert.ok(Array.isArray(hits));
          try {
            store.history(directChatId("b"), { before: cursor });
          } catch (e) {
            assert.ok(e instanceof StoreError && e.code === "INVALID_ARGUMENT");
          }
        }),
        { numRuns: 300 },
      );
    }));
});
