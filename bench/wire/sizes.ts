// Bytes on the wire: Parley vs XMPP (ejabberd 23.01, server → client, measured on this machine),
// E2E payload held equal and excluded.
import {
  encodeBatch,
  encodeClientHello,
  encodeServerHello,
  encodeStanza,
  type Stanza,
  WireContext,
} from "../../packages/wire/src/index.ts";
import { FRAME_HEADER_SIZE } from "../../packages/wire/src/transport/framing.ts";
import type { Row } from "./row.ts";

/** Frame model given in the brief: 3-byte length prefix + 16-byte AEAD tag, one stanza per frame. */
export const BRIEF_FRAME_OVERHEAD = 3 + 16;
/** Parley's actual transport record: frame header + record type byte + varint stanza length + AEAD tag. */
export const TRANSPORT_RECORD_OVERHEAD = FRAME_HEADER_SIZE + 1 + 16;
const AMORTIZE = 10;
const TAG = 16;
const DH = 32;

const XMPP = { message: 170, receipt: 154, typing: 165, presence: 116, login: 656 + 1475 };

const now = 1_780_000_000;
const id = Uint8Array.from([0x5b, 0x11, 0x9c, 0x02, 0xe7, 0x40, 0x8a, 0x3d]);
/** A SignalMessage for a 20-character text is ~90 bytes: the length prefix is 1 byte (counted), the body excluded. */
const BODY = new Uint8Array(90);

function varintLen(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : 3;
}

interface Case {
  name: string;
  xmpp?: number;
  goal?: number;
  build: (sender: string) => Stanza;
  /** bytes of E2E payload inside the stanza, excluded from the overhead */
  payload: (s: Stanza) => number;
}

const noPayload = () => 0;
const cases: Case[] = [
  {
    name: "message (server→client delivery)",
    xmpp: XMPP.message,
    build: (from) => ({
      kind: "delivery",
      id,
      from: { user: from, device: 1 },
      timestamp: now,
      seq: 48_213,
      type: "msg",
      body: BODY,
    }),
    payload: () => BODY.length,
  },
  {
    name: "message (client→server, 2 recipient devices + 1 own)",
    build: (to) => ({
      kind: "message",
      id,
      to,
      timestamp: now,
      enc: [
        { to: { user: to, device: 0 }, type: "msg", body: BODY },
        { to: { user: to, device: 1 }, type: "msg", body: BODY },
        { to: { user: "me.myself", device: 1 }, type: "msg", body: BODY },
      ],
    }),
    payload: () => 3 * BODY.length,
  },
  {
    name: "delivery receipt (server→client)",
    xmpp: XMPP.receipt,
    build: (from) => ({
      kind: "receipt",
      type: "delivered",
      ids: [id],
      from: { user: from, device: 1 },
      timestamp: now,
    }),
    payload: noPayload,
  },
  {
    name: "typing (server→client)",
    xmpp: XMPP.typing,
    build: (from) => ({ kind: "chatstate", state: "composing", from }),
    payload: noPayload,
  },
  {
    name: "presence change (server→client)",
    xmpp: XMPP.presence,
    build: (from) => ({ kind: "presence", type: "available", from }),
    payload: noPayload,
  },
  {
    name: "server ack (first tick)",
    build: () => ({ kind: "ack", id, timestamp: now }),
    payload: noPayload,
  },
  {
    name: "device ack (3 seqs)",
    build: () => ({ kind: "devack", seqs: [48_213, 48_214, 48_216] }),
    payload: noPayload,
  },
];

export function sizeRows(): Row[] {
  const rows: Row[] = [];
  for (const user of ["alice.smith", "+4915112345678"]) {
    for (const c of cases) {
      const stanza = c.build(user);
      const cold = encodeStanza(stanza).length - c.payload(stanza);
      // warm: the name was already sent on this connection (interned), the steady state of a chat
      const ctx = new WireContext();
      encodeStanza(stanza, ctx);
      const warm = encodeStanza(stanza, ctx).length - c.payload(stanza);
      const batch = encodeBatch(
        Array.from({ length: AMORTIZE }, () => stanza),
        ctx,
      );
      const amortized = (batch.length - AMORTIZE * c.payload(stanza) + BRIEF_FRAME_OVERHEAD) / AMORTIZE;
      const goal = c.xmpp === undefined ? undefined : Math.floor(c.xmpp / 4);
      const framedWarm = warm + BRIEF_FRAME_OVERHEAD;
      const framedCold = cold + BRIEF_FRAME_OVERHEAD;
      rows.push({
        stanza: c.name,
        user,
        "stanza B (warm)": warm,
        "stanza B (cold)": cold,
        "framed B (warm)": framedWarm,
        "framed B (cold)": framedCold,
        "amortized B (10/frame)": Number(amortized.toFixed(1)),
        "transport B (warm)": warm + TRANSPORT_RECORD_OVERHEAD + varintLen(warm + c.payload(stanza)),
        "XMPP B": c.xmpp ?? "-",
        "goal B (25%)": goal ?? "-",
        "warm vs goal": goal === undefined ? "-" : framedWarm <= goal ? "met" : "MISSED",
        "cold vs goal": goal === undefined ? "-" : framedCold <= goal ? "met" : "MISSED",
        "% of XMPP (warm)": c.xmpp === undefined ? "-" : Number(((100 * framedWarm) / c.xmpp).toFixed(1)),
      });
    }
  }
  return rows;
}

/**
 * Full connect + login. Parley's transport (packages/wire/src/transport): each handshake frame is
 * frame header + 1 handshake type byte + Noise message; the login result of XX travels in a LOGIN
 * record (type byte + status byte + ServerHello, AEAD-sealed).
 */
export function loginRows(): Row[] {
  const clientHello = encodeClientHello({
    protocolVersion: 1,
    dictionaryVersion: 1,
    user: "alice.smith",
    device: 1,
    passive: false,
    userAgent: "parley-web/0.1",
  }).length;
  const serverHello = encodeServerHello({ result: "ok", serverTime: now, queueCount: 12 }).length;
  const hs = FRAME_HEADER_SIZE + 1;
  const xxUp = hs + DH + (hs + DH + TAG + clientHello + TAG);
  const xxDown = hs + DH + DH + TAG + TAG + (FRAME_HEADER_SIZE + 1 + 1 + serverHello + TAG);
  const ikUp = hs + DH + DH + TAG + clientHello + TAG;
  const ikDown = hs + DH + 1 + serverHello + TAG;
  const goal = Math.floor(XMPP.login / 4);
  const row = (name: string, up: number, down: number): Row => ({
    login: name,
    "up B": up,
    "down B": down,
    "total B": up + down,
    "XMPP B": XMPP.login,
    "goal B (25%)": goal,
    result: up + down <= goal ? "met" : "MISSED",
    "% of XMPP": Number(((100 * (up + down)) / XMPP.login).toFixed(1)),
  });
  return [
    row(`Noise XX first contact (ClientHello ${clientHello} B, ServerHello ${serverHello} B)`, xxUp, xxDown),
    row("Noise IK reconnect", ikUp, ikDown),
  ];
}
