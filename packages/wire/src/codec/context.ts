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
  private readonly outSlots: (string | undefined)[];
  private readonly outIndex = new Map<string, number>();
  private outCount = 0;
  private readonly inSlots: (string | undefined)[];
  private inCount = 0;
  /** undo journal of the stanza in progress: [slot, previous value] per insert */
  private journal: [number, string | undefined][] = [];

  constructor(capacity = DEFAULT_CONTEXT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 8192) {
      throw new RangeError("WireContext capacity must be an integer in 1..8192");
    }
    this.capacity = capacity;
    // Grown by appending as names arrive (slots are taken in order), not preallocated: an idle
    // connection's context costs a few hundred bytes instead of two 1,024-slot arrays (16 KiB).
    this.outSlots = [];
    this.inSlots = [];
  }

  /** Encoder: slot of an already-sent name, or undefined. */
  lookupOut(name: string): number | undefined {
    return this.outIndex.get(name);
  }

  /** Encoder: assign the next slot to `name` (only for names not yet in the table). */
  insertOut(name: string): void {
    const slot = this.outCount % this.capacity;
    const previous = this.outSlots[slot];
    if (previous !== undefined && this.outIndex.get(previous) === slot) this.outIndex.delete(previous);
    this.outSlots[slot] = name;
    this.outIndex.set(name, slot);
    this.outCount++;
    this.journal.push([slot, previous]);
  }

  /** Decoder: the name in `slot`. */
  lookupIn(slot: number): string {
    const name = slot < this.capacity ? this.inSlots[slot] : undefined;
    if (name === undefined) throw new WireError("BAD_TOKEN", `name slot ${slot} is empty`);
    return name;
  }

  insertIn(name: string): void {
    const slot = this.inCount % this.capacity;
    this.journal.push([slot, this.inSlots[slot]]);
    this.inSlots[slot] = name;
    this.inCount++;
  }

  /** Start of one stanza's encode or decode. */
  begin(): void {
    this.journal.length = 0;
  }

  /** The stanza completed: keep its inserts. */
  commit(): void {
    this.journal.length = 0;
  }

  rollbackOut(): void {
    for (let i = this.journal.length - 1; i >= 0; i--) {
      const [slot, previous] = this.journal[i]!;
      const name = this.outSlots[slot];
      if (name !== undefined && this.outIndex.get(name) === slot) this.outIndex.delete(name);
      this.outSlots[slot] = previous;
      if (previous !== undefined) this.outIndex.set(previous, slot);
      this.outCount--;
    }
    this.journal.length = 0;
  }

  rollbackIn(): void {
    for (let i = this.journal.length - 1; i >= 0; i--) {
      const [slot, previous] = this.journal[i]!;
      this.inSlots[slot] = previous;
      this.inCount--;
    }
    this.journal.length = 0;
  }
}
