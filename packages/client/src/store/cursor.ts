// History cursors: the (sortAt, rowId) of the last message of a page, as an opaque string.
// Keyset paging on that pair is stable: inserts never shift later pages.
import { StoreError } from "./errors.ts";
import type { HistoryCursor } from "./types.ts";

export interface CursorPosition {
  readonly sortAt: number;
  readonly rowId: number;
}

export function encodeCursor(position: CursorPosition): HistoryCursor {
  return `${position.sortAt}:${position.rowId}`;
}

const CURSOR = /^(-?\d{1,16}):(\d{1,16})$/;

export function decodeCursor(cursor: HistoryCursor): CursorPosition {
  const m = CURSOR.exec(cursor);
  const sortAt = m ? Number(m[1]) : Number.NaN;
  const rowId = m ? Number(m[2]) : Number.NaN;
  if (!Number.isSafeInteger(sortAt) || !Number.isSafeInteger(rowId)) {
    throw new StoreError("INVALID_ARGUMENT", "malformed history cursor");
  }
  return { sortAt, rowId };
}
