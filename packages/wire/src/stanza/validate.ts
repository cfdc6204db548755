import { WireError } from "../errors.ts";
import type { Stanza } from "./types.ts";

function invalid(message: string): never {
  throw new WireError("INVALID_STANZA", message);
}

/**
 * Cross-field rules the layout alone cannot express; applied on encode (catch bugs early) and on
 * decode (never hand the application a stanza that breaks the model).
 */
export function validateStanza(s: Stanza): void {
  if (s === null || typeof s !== "object") invalid("stanza must be an object");
  switch (s.kind) {
    case "message":
      if ((s.to === undefined) === (s.group === undefined)) invalid("message needs exactly one of to / group");
      if (!Array.isArray(s.enc)) invalid("message enc must be an array");
      if (s.enc.length === 0 && s.skmsg === undefined) invalid("message carries no ciphertext");
      if (s.skmsg !== undefined && s.group === undefined) invalid("skmsg requires a group");
      return;
    case "delivery":
      if (s.type === "skmsg" && s.group === undefined) invalid("skmsg delivery requires a group");
      return;
    case "receipt":
      if (!Array.isArray(s.ids) || s.ids.length === 0) invalid("receipt needs at least one id");
      if ((s.type === "retry") !== (s.retry !== undefined)) invalid("retry details go with (only) retry receipts");
      return;
    case "devack":
      if (!Array.isArray(s.seqs) || s.seqs.length === 0) invalid("devack needs at least one seq");
      return;
  }
}
