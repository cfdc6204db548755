/**
 * Device acks (devack) that may wait, as TCP delays its ACKs: the acks of queue entries whose ack
 * nobody waits for (receipts, notifications) ride in the same record as the next stanza the client
 * sends, or leave on their own after `maxDelayMs` or once `maxPending` are waiting.
 *
 * Why: a chat client that receives a receipt otherwise sends a record of its own just to ack it,
 * which costs both ends a write, a read and an AEAD call each (on the server a whole wake-up of its
 * event loop). Only the server's queue deletion waits; the client has processed the entry already.
 * A delivery's ack is NOT deferred: it is what tells the sender "delivered" (two ticks).
 *
 * If the connection drops first, the pending acks are lost and the server sends those entries again
 * after the reconnect; receipts and notifications are idempotent, so the client only re-acks them.
 */
export interface DeferredAcksOptions {
  /** Longest an ack waits (default 250 ms, far below any server-side redelivery timer). */
  maxDelayMs?: number;
  /** Acks waiting at most (default 64, well inside the server's delivery window of 256). */
  maxPending?: number;
}

export class DeferredAcks {
  private seqs: number[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly maxDelayMs: number;
  private readonly maxPending: number;

  /** `sendAcks` sends one devack stanza with these seqs (it may throw if the connection is gone). */
  constructor(
    private readonly sendAcks: (seqs: number[]) => void,
    options: DeferredAcksOptions = {},
  ) {
    this.maxDelayMs = options.maxDelayMs ?? 250;
    this.maxPending = options.maxPending ?? 64;
  }

  /** Acks `seq` later (see the class comment for when). */
  add(seq: number): void {
    this.seqs.push(seq);
    if (this.seqs.length >= this.maxPending) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Sends every waiting ack now: before another stanza (same record) and before a graceful close. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.seqs.length === 0) return;
    const seqs = this.seqs;
    this.seqs = [];
    this.sendAcks(seqs);
  }

  /** The connection is gone: forget the waiting acks (the server sends those entries again). */
  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.seqs = [];
  }

  get pending(): number {
    return this.seqs.length;
  }
}
