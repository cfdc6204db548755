// Encode + decode throughput per stanza kind (stateless codec and with per-connection interning).
import { decodeStanza, encodeStanza, type Stanza, WireContext } from "../../packages/wire/src/index.ts";
import type { Row } from "./row.ts";

const now = 1_780_000_000;
const id = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const body = new Uint8Array(90).fill(7);
const alice = { user: "alice.smith", device: 1 };

export const SAMPLES: Record<string, Stanza> = {
  delivery: { kind: "delivery", id, from: alice, timestamp: now, seq: 48_213, type: "msg", body },
  message: {
    kind: "message",
    id,
    to: "bob",
    timestamp: now,
    enc: [
      { to: { user: "bob", device: 0 }, type: "msg", body },
      { to: { user: "bob", device: 1 }, type: "pkmsg", body },
    ],
  },
  ack: { kind: "ack", id, timestamp: now },
  devack: { kind: "devack", seqs: [48_213, 48_214] },
  receipt: { kind: "receipt", type: "read", ids: [id, id], from: alice, timestamp: now },
  presence: { kind: "presence", type: "unavailable", from: "alice.smith", lastSeen: now },
  chatstate: { kind: "chatstate", state: "composing", from: "alice.smith" },
  iq: { kind: "iq", id: 17, request: { op: "fetch-bundles", users: [{ user: "bob" }] } },
  "iq-result": {
    kind: "iq-result",
    id: 17,
    result: {
      op: "bundles",
      bundles: [
        {
          user: "bob",
          device: 1,
          registrationId: 4242,
          identityKey: new Uint8Array(33),
          signedPreKey: { id: 1, key: new Uint8Array(33), signature: new Uint8Array(64) },
          kyberPreKey: { id: 2, key: new Uint8Array(1569), signature: new Uint8Array(64) },
          oneTimePreKey: { id: 3, key: new Uint8Array(33) },
        },
      ],
    },
  },
  "iq-error": { kind: "iq-error", id: 17, error: { code: "not-found" } },
  notification: { kind: "notification", id: 99, timestamp: now, event: { type: "devices-changed", user: "bob" } },
  node: {
    kind: "node",
    node: { tag: "call", attrs: { id: "3f2a9c", to: alice }, content: [{ tag: "offer", attrs: {} }] },
  },
};

function measure(fn: () => void, minMs: number): number {
  for (let i = 0; i < 2000; i++) fn(); // warm up the JIT
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    elapsed = performance.now() - start;
  }
  return (n / elapsed) * 1000;
}

export function throughputRows(minMs = 300): Row[] {
  const rows: Row[] = [];
  for (const [kind, stanza] of Object.entries(SAMPLES)) {
    const bytes = encodeStanza(stanza);
    const encode = measure(() => encodeStanza(stanza), minMs);
    const decode = measure(() => decodeStanza(bytes), minMs);
    const both = measure(() => decodeStanza(encodeStanza(stanza)), minMs);
    const out = new WireContext();
    const inn = new WireContext();
    const interned = measure(() => decodeStanza(encodeStanza(stanza, out), undefined, inn), minMs);
    rows.push({
      kind,
      bytes: bytes.length,
      "encode /s": Math.round(encode),
      "decode /s": Math.round(decode),
      "encode+decode /s": Math.round(both),
      "encode+decode interned /s": Math.round(interned),
    });
  }
  return rows;
}
