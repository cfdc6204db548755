// Message status transitions. Receipts arrive late, twice and out of order, so the store
// only ever moves a status forward; this pure function is the single rule.
import type { MessageStatus } from "./types.ts";

const RANK: Record<Exclude<MessageStatus, "failed">, number> = { pending: 0, sent: 1, delivered: 2, read: 3 };

/**
 * Whether `from` may become `to`:
 * - pending < sent < delivered < read, only upwards;
 * - failed only from pending (the send gave up);
 * - from failed only upwards to sent/delivered/read (a late receipt proves it arrived);
 *   going back to pending is the explicit `retryFailed`, not a transition.
 */
export function canTransition(from: MessageStatus, to: MessageStatus): boolean {
  if (from === to) return false;
  if (to === "failed") return from === "pending";
  if (from === "failed") return to !== "pending";
  return RANK[to] > RANK[from];
}

export const MESSAGE_STATUSES: readonly MessageStatus[] = ["pending", "sent", "delivered", "read", "failed"];
