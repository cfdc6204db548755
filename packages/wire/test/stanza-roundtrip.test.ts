import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decodeBatch,
  decodeClientHello,
  decodeNode,
  decodeServerHello,
  decodeStanza,
  encodeBatch,
  encodeClientHello,
  encodeNode,
  encodeServerHello,
  encodeStanza,
  type Stanza,
  WireContext,
  WireError,
} from "../src/index.ts";
import { clientHello, node, serverHello, stanza, stanzaByKind } from "./stanza-arbitraries.ts";

describe("stanza round trip", () => {
  for (const [kind, arb] of Object.entries(stanzaByKind)) {
    it(`decode(encode(x)) deep-equals x for ${kind}`, () => {
      fc.assert(
        fc.property(arb, (s) => {
          assert.deepStrictEqual(decodeStanza(encodeStanza(s)), s);
        }),
        { numRuns: 300 },
      );
    });
  }

  it("is deterministic", () => {
    fc.assert(
      fc.property(stanza, (s) => {
        assert.deepStrictEqual(encodeStanza(s), encodeStanza(structuredClone(s)));
      }),
      { numRuns: 300 },
    );
  });

  it("round-trips a whole connection's stream through interning contexts", () => {
    fc.assert(
      fc.property(fc.array(stanza, { maxLength: 30 }), fc.integer({ min: 1, max: 8 }), (stream, capacity) => {
        const out = new WireContext(capacity);
        const inn = new WireContext(capacity);
        for (const s of stream) {
          assert.deepStrictEqual(decodeStanza(encodeStanza(s, out), undefined, inn), s);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("a stanza encoded without a context decodes with one (and keeps the tables in step)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(stanza, fc.boolean()), { maxLength: 20 }), (stream) => {
        const out = new WireContext(4);
        const inn = new WireContext(4);
        for (const [s, useCtx] of stream) {
          const bytes = encodeStanza(s, useCtx ? out : undefined);
          assert.deepStrictEqual(decodeStanza(bytes, undefined, inn), s);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("round-trips generic nodes, batches and login payloads", () => {
    fc.assert(
      fc.property(node, (n) => {
        assert.deepStrictEqual(decodeNode(encodeNode(n)), n);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.array(stanza, { maxLength: 6 }), (batch) => {
        assert.deepStrictEqual(decodeBatch(encodeBatch(batch)), batch);
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(clientHello, (h) => {
        assert.deepStrictEqual(decodeClientHello(encodeClientHello(h)), h);
      }),
    );
    fc.assert(
      fc.property(serverHello, (h) => {
        assert.deepStrictEqual(decodeServerHello(encodeServerHello(h)), h);
      }),
    );
  });
});

function rejects(s: unknown, why: string): void {
  assert.throws(
    () => encodeStanza(s as Stanza),
    (e: unknown) => e instanceof WireError && e.code === "INVALID_STANZA",
    why,
  );
}

describe("stanza model rules", () => {
  const id = new Uint8Array(8);
  const enc = [{ to: { user: "bob", device: 1 }, type: "msg" as const, body: new Uint8Array(3) }];
  it("rejects invalid stanzas on encode with INVALID_STANZA", () => {
    rejects({ kind: "message", id, timestamp: 1, enc }, "no to/group");
    rejects({ kind: "message", id, to: "bob", group: "g", timestamp: 1, enc }, "both to and group");
    rejects({ kind: "message", id, to: "bob", timestamp: 1, enc: [] }, "no ciphertext");
    rejects({ kind: "message", id: new Uint8Array(0), to: "bob", timestamp: 1, enc }, "empty id");
    rejects({ kind: "message", id: new Uint8Array(33), to: "bob", timestamp: 1, enc }, "long id");
    rejects({ kind: "message", id, to: "", timestamp: 1, enc }, "empty user");
    rejects({ kind: "message", id, to: "bob", timestamp: 1.5, enc }, "fractional time");
    rejects({ kind: "message", id, to: "bob", timestamp: 1, enc: [{ ...enc[0], type: "skmsg" }] }, "skmsg per device");
    rejects({ kind: "receipt", type: "read", ids: [], timestamp: 1 }, "no ids");
    rejects({ kind: "receipt", type: "retry", ids: [id], timestamp: 1 }, "retry without details");
    rejects({ kind: "presence", type: "away" }, "unknown presence type");
    rejects({ kind: "devack", seqs: [-1] }, "negative seq");
    rejects({ kind: "bogus" }, "unknown kind");
    rejects({ kind: "presence", type: "available", from: "a\ud800" }, "lone surrogate");
    rejects({ kind: "node", node: { tag: "x", attrs: { n: 1.5 } } }, "fractional attribute");
    rejects({ kind: "node", node: { tag: "x", attrs: { a: null } } }, "null attribute");
    rejects({ kind: "iq", id: 1, request: { op: "nope" } }, "unknown iq op");
    rejects(null, "null");
  });

  it("leaves the interning table unchanged when an encode fails", () => {
    const out = new WireContext();
    const inn = new WireContext();
    const good: Stanza = { kind: "presence", type: "available", from: "carol" };
    assert.throws(() =>
      encodeStanza({ kind: "message", id, to: "dave", timestamp: 1, enc: [{ ...enc[0]!, body: "x" }] } as never, out),
    );
    // "dave" must not have been interned: the next stanza naming dave must still carry it literally.
    const first = encodeStanza({ kind: "presence", type: "available", from: "dave" }, out);
    assert.deepStrictEqual(decodeStanza(first, undefined, inn), { kind: "presence", type: "available", from: "dave" });
    assert.deepStrictEqual(decodeStanza(encodeStanza(good, out), undefined, inn), good);
  });
});
