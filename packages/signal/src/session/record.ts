// A SessionRecord: the current session state with a peer device plus up to 40
// archived states (libsignal's SessionRecord). Archived states stay as their
// serialized bytes and are parsed only when a message needs them, so loading
// and storing a record costs one state parse/serialize in the common case.
//
// record := u8 format(=1) ‖ u8 hasCurrent ‖ [u32 len ‖ state] ‖ u8 previousCount ‖ { u32 len ‖ state }

import { bytesEqual } from "../crypto/bytes.ts";
import { SignalError } from "../errors.ts";
import { ByteReader, ByteWriter } from "./codec.ts";
import { deserializeState, serializeState } from "./serialize.ts";
import { ARCHIVED_STATES_MAX_LENGTH, type SessionState } from "./state.ts";

const RECORD_FORMAT = 1;
/** Generous upper bound on one serialized state: 5 chains × 2,000 skipped keys × 36 B plus headers. */
const MAX_STATE_BYTES = 400_000;

export class SessionRecord {
  constructor(
    public current: SessionState | undefined = undefined,
    /** Serialized archived states, most recent first. */
    public previous: Uint8Array[] = [],
  ) {}

  static deserialize(bytes: Uint8Array): SessionRecord {
    const r = new ByteReader(bytes, "INVALID_RECORD", "session record");
    if (r.u8() !== RECORD_FORMAT) r.fail("unknown record format");
    const hasCurrent = r.u8();
    if (hasCurrent > 1) r.fail("bad current-state flag");
    const current = hasCurrent ? deserializeState(r.bytes32(MAX_STATE_BYTES)) : undefined;
    const count = r.u8();
    if (count > ARCHIVED_STATES_MAX_LENGTH) r.fail("too many archived states");
    const previous: Uint8Array[] = [];
    for (let i = 0; i < count; i++) previous.push(r.bytes32(MAX_STATE_BYTES));
    r.end();
    return new SessionRecord(current, previous);
  }

  serialize(): Uint8Array {
    const current = this.current ? serializeState(this.current) : undefined;
    let size = 3 + (current ? 4 + current.length : 0);
    for (const p of this.previous) size += 4 + p.length;
    const w = new ByteWriter(size);
    w.u8(RECORD_FORMAT).u8(current ? 1 : 0);
    if (current) w.bytes32(current);
    w.u8(this.previous.length);
    for (const p of this.previous) w.bytes32(p);
    return w.finish();
  }

  /** Parse archived state `index`; a corrupt one raises INVALID_RECORD. */
  previousState(index: number): SessionState {
    const bytes = this.previous[index];
    if (!bytes) throw new SignalError("INVALID_RECORD", "no such archived state");
    return deserializeState(bytes);
  }

  /** Move the current state (if any) to the front of the archive, dropping the oldest beyond 40. */
  archiveCurrentState(): void {
    if (!this.current) return;
    if (this.previous.length >= ARCHIVED_STATES_MAX_LENGTH) this.previous.pop();
    this.previous.unshift(serializeState(this.current));
    this.current = undefined;
  }

  promoteState(state: SessionState): void {
    this.archiveCurrentState();
    this.current = state;
  }

  /** An archived state decrypted a message: it becomes current, the old current is archived. */
  promoteOldSession(index: number, updated: SessionState): void {
    this.previous.splice(index, 1);
    this.promoteState(updated);
  }

  /** Does any state (current or archived) come from the X3DH run with this version and base key? */
  hasSessionState(version: number, aliceBaseKey: Uint8Array): boolean {
    const matches = (s: SessionState) => s.version === version && bytesEqual(s.aliceBaseKey, aliceBaseKey);
    if (this.current && matches(this.current)) return true;
    for (let i = 0; i < this.previous.length; i++) {
      // A corrupt archived state cannot match; skip it rather than fail the whole record.
      let state: SessionState;
      try {
        state = this.previousState(i);
      } catch {
        continue;
      }
      if (matches(state)) return true;
    }
    return false;
  }
}
