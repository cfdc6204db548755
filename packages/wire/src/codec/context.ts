import { WireError } from "../errors.ts";

/** Names longer than this are always sent literally (bounds the memory a context can hold). */
export const MAX_INTERNED_NAME_LENGTH = 128;
export const DEFAULT_CONTEXT_CAPACITY = 1024;

/**
 * Per-connection name interning (users, group ids), like HPACK's dynamic table but simpler: the
 * first time a name is sent on a connection it goes literally and takes the next slot of a ring
 * of `capacity` slots; later occurrences send the slot number (1 byte for the 64 most recent slots,
 * 2 bytes up to 8191). Each direction has its own table; the encoder side (`out`) and the decoder
 * side (`in`) of one connection end live in one WireContext.
 *
 * Contract: every stanza encoded with a context MUST be delivered to the peer, in order, and
 * decoded with the peer's context for that connection. An encode that throws leaves the table
 * unchanged. A decode that throws also rolls back, but the connection should then be closed.
 * Stanzas encoded WITHOUT a context carry only literals and decode with or without one.
 */
export class WireContext {
  readonly capacity: number;
  // Every table is created on its first insert and grown by appending (slots are taken in order), not
  // preallocated: an idle connection's context is one small object instead of two 1,024-slot arrays
  // (16 KiB), and even empty arrays and a Map cost ~350 bytes per connection.
  private outSlots: (string | undefined)[] | undefined;
  private outIndex: Map<string, number> | undefined;
  private outCount = 0;
  private inSlots: (string | undefined)[] | undefined;
  private inCount = 0;
  /** undo journal of the stanza in progress: [slot, previous value] per insert */
  private journal: [number, string | undefined][] | undefined;

  constructor(capacity = DEFAULT_CONTEXT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 8192) {
      throw new RangeError("WireContext capacity must be an integer in 1..8192");
    }
    this.capacity = capacity;
  }

  /** Encoder: slot of an already-sent name, or undefined. */
  lookupOut(name: string): number | undefined {
    return this.outIndex?.get(name);
  }

  /** Encoder: assign the next slot to `name` (only for names not yet in the table). */
  insertOut(name: string): void {
    this.outSlots ??= [];
    this.outIndex ??= new Map();
    const slots = this.outSlots;
    const index = this.outIndex;
    const slot = this.outCount % this.capacity;
    const previous = slots[slot];
    if (previous !== undefined && index.get(previous) === slot) index.delete(previous);
    slots[slot] = name;
    index.set(name, slot);
    this.outCount++;
    this.journal ??= [];
    this.journal.push([slot, previous]);
  }

  /** Decoder: the name in `slot`. */
  lookupIn(slot: number): string {
    const name = slot < this.capacity ? this.inSlots?.[slot] : undefined;
    if (name === undefined) throw new WireError("BAD_TOKEN", `name slot ${slot} is empty`);
    return name;
  }

  insertIn(name: string): void {
    this.inSlots ??= [];
    const slots = this.inSlots;
    const slot = this.inCount % this.capacity;
    this.journal ??= [];
    this.journal.push([slot, slots[slot]]);
    slots[slot] = name;
    this.inCount++;
  }

  /** Start of one stanza's encode or decode. */
  begin(): void {
    if (this.journal !== undefined) this.journal.length = 0;
  }

  /** The stanza completed: keep its inserts. */
  commit(): void {
    if (this.journal !== undefined) this.journal.length = 0;
  }

  rollbackOut(): void {
    const journal = this.journal;
    if (journal === undefined || journal.length === 0) return;
    const slots = this.outSlots!;
    const index = this.outIndex!;
    for (let i = journal.length - 1; i >= 0; i--) {
      const [slot, previous] = journal[i]!;
      const name = slots[slot];
      if (name !== undefined && index.get(name) === slot) index.delete(name);
      slots[slot] = previous;
      if (previous !== undefined) index.set(previous, slot);
      this.outCount--;
    }
    journal.length = 0;
  }

  rollbackIn(): void {
    const journal = this.journal;
    if (journal === undefined || journal.length === 0) return;
    const slots = this.inSlots!;
    for (let i = journal.length - 1; i >= 0; i--) {
      const [slot, previous] = journal[i]!;
      slots[slot] = previous;
      this.inCount--;
    }
    journal.length = 0;
  }
}
