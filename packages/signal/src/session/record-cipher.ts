// Decrypt against a whole SessionRecord: try the current state, then each
// archived state (newest first); an archived state that works is promoted to
// current. This is what makes simultaneous initiation converge. Nothing in the
// record changes unless a state decrypts the message.

import { SignalError } from "../errors.ts";
import type { DecodedSignalMessage } from "../proto/messages.ts";
import { ratchetDecrypt } from "../ratchet/double-ratchet.ts";
import type { SessionRecord } from "./record.ts";
import { cloneState } from "./state.ts";

export function decryptWithRecord(record: SessionRecord, message: DecodedSignalMessage): Uint8Array {
  let firstError: unknown;
  if (record.current) {
    const candidate = cloneState(record.current);
    try {
      const plaintext = ratchetDecrypt(candidate, message);
      record.current = candidate;
      return plaintext;
    } catch (e) {
      // A duplicate is final: the message was for this state and is already consumed.
      if (e instanceof SignalError && e.code === "DUPLICATE_MESSAGE") throw e;
      firstError = e;
    }
  }
  for (let i = 0; i < record.previous.length; i++) {
    let candidate: ReturnType<SessionRecord["previousState"]>;
    try {
      candidate = record.previousState(i);
    } catch (e) {
      firstError ??= e;
      continue;
    }
    try {
      const plaintext = ratchetDecrypt(candidate, message);
      record.promoteOldSession(i, candidate);
      return plaintext;
    } catch (e) {
      if (e instanceof SignalError && e.code === "DUPLICATE_MESSAGE") throw e;
      firstError ??= e;
    }
  }
  if (firstError instanceof SignalError) throw firstError;
  if (firstError !== undefined) throw new SignalError("INVALID_MESSAGE", "decryption failed");
  throw new SignalError("NO_SESSION", "no session state to decrypt with");
}
