import { WireError } from "../errors.ts";
import { MAX_NOISE_MESSAGE } from "../noise/suite.ts";
import type { TransportLimits } from "./types.ts";

export const DEFAULT_LIMITS: Readonly<TransportLimits> = {
  maxFrameSize: MAX_NOISE_MESSAGE,
  maxHandshakeFrameSize: 4096,
  highWaterMark: 1024 * 1024,
  maxBufferedBytes: 8 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  keepAliveIntervalMs: 0,
  rekeyAfterRecords: 2 ** 24,
  closeTimeoutMs: 2_000,
};

/**
 * Resolved limits by the options object they came from: a server passes the same options for every
 * connection, and every session keeps a reference, so they share one object (not ~100 bytes each).
 */
const resolvedByOptions = new WeakMap<Partial<TransportLimits>, TransportLimits>();
let resolvedDefault: TransportLimits | undefined;

/** The limits with defaults filled in and checked; the result is shared, frozen, and must not change. */
export function resolveLimits(partial: Partial<TransportLimits> | undefined): TransportLimits {
  if (partial === undefined) {
    resolvedDefault ??= check({ ...DEFAULT_LIMITS });
    return resolvedDefault;
  }
  let limits = resolvedByOptions.get(partial);
  if (limits === undefined) {
    limits = check({ ...DEFAULT_LIMITS, ...partial });
    resolvedByOptions.set(partial, limits);
  }
  return limits;
}

function check(limits: TransportLimits): TransportLimits {
  if (!(limits.maxFrameSize >= 64 && limits.maxFrameSize <= MAX_NOISE_MESSAGE)) {
    throw new WireError("LIMIT_EXCEEDED", `maxFrameSize must be within 64..${MAX_NOISE_MESSAGE}`);
  }
  if (!(limits.maxHandshakeFrameSize >= 128 && limits.maxHandshakeFrameSize <= MAX_NOISE_MESSAGE)) {
    throw new WireError("LIMIT_EXCEEDED", `maxHandshakeFrameSize must be within 128..${MAX_NOISE_MESSAGE}`);
  }
  if (!(limits.rekeyAfterRecords >= 1)) throw new WireError("LIMIT_EXCEEDED", "rekeyAfterRecords must be >= 1");
  return Object.freeze(limits);
}
