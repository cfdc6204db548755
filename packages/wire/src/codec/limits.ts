/**
 * Bounds enforced WHILE decoding, so hostile input can neither allocate unboundedly nor recurse
 * deeply: every length is checked against these and against the bytes actually remaining before
 * anything is allocated.
 */
export interface DecodeLimits {
  /** largest encoded stanza accepted (bytes) */
  maxStanzaBytes: number;
  /** deepest nesting of generic nodes / structures */
  maxDepth: number;
  /** most elements in one list (children, enc entries, ids, prekeys...) */
  maxListLength: number;
  /** most attributes on one generic node */
  maxAttrs: number;
  /** longest string, in UTF-8 bytes (or characters for packed forms) */
  maxStringLength: number;
  /** longest user / group name */
  maxNameLength: number;
  /** longest byte field (ciphertext, key, node content) */
  maxBytesLength: number;
  /** total decoded items (nodes, attributes, list elements, strings, byte fields) per stanza */
  maxItems: number;
}

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxStanzaBytes: 1 << 20,
  maxDepth: 16,
  maxListLength: 4096,
  maxAttrs: 64,
  maxStringLength: 16 * 1024,
  maxNameLength: 256,
  maxBytesLength: 1 << 20,
  maxItems: 1 << 16,
});

export function resolveLimits(partial?: Partial<DecodeLimits>): DecodeLimits {
  if (partial === undefined) return DEFAULT_DECODE_LIMITS as DecodeLimits;
  return { ...DEFAULT_DECODE_LIMITS, ...partial };
}

/** Seconds since the Unix epoch of 2025-01-01T00:00:00Z: timestamps are sent relative to it (zigzag). */
export const PARLEY_EPOCH = 1_735_689_600;
