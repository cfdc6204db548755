import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { WireContext } from "../src/codec/context.ts";
import { PRIMARY_TOKENS } from "../src/codec/dictionary.ts";
import { DEFAULT_DECODE_LIMITS } from "../src/codec/limits.ts";
import { ByteReader } from "../src/codec/reader.ts";
import { readStringAtom, writeStringAtom } from "../src/codec/strings.ts";
import { ByteWriter } from "../src/codec/writer.ts";
import {
  decodeNode,
  decodeStanza,
  encodeNode,
  encodeStanza,
  type Node,
  WireError,
  type WireErrorCode,
} from "../src/index.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const bytes = (...b: number[]) => Uint8Array.from(b);
const reader = (b: Uint8Array) => new ByteReader(b, DEFAULT_DECODE_LIMITS);

function throwsCode(fn: () => unknown, code: WireErrorCode): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

describe("varint", () => {
  it("encodes known answers", () => {
    const cases: [number, string][] = [
      [0, "00"],
      [1, "01"],
      [127, "7f"],
      [128, "80 01"],
      [1234, "d2 09"],
      [2 ** 31, "80 80 80 80 08"],
      [Number.MAX_SAFE_INTEGER, "ff ff ff ff ff ff ff 0f"],
    ];
    for (const [n, want] of cases) {
      const w = new ByteWriter(1);
      w.varint(n);
      assert.equal(hex(w.finish()), want);
      assert.equal(reader(w.finish()).varint(), n);
    }
  });

  it("round-trips every safe integer", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const w = new ByteWriter(1);
        w.varint(n);
        const r = reader(w.finish());
        assert.equal(r.varint(), n);
        assert.equal(r.remaining(), 0);
      }),
    );
  });

  it("rejects overlong, oversized and truncated varints", () => {
    throwsCode(() => reader(bytes(0x80, 0x00)).varint(), "BAD_VARINT");
    throwsCode(() => reader(bytes(0xff, 0x80, 0x00)).varint(), "BAD_VARINT");
    throwsCode(() => reader(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10)).varint(), "BAD_VARINT");
    throwsCode(() => reader(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)).varint(), "BAD_VARINT");
    throwsCode(() => reader(bytes(0x80)).varint(), "TRUNCATED");
    throwsCode(() => reader(bytes()).varint(), "TRUNCATED");
  });
});

describe("string atoms", () => {
  const atom = (s: string) => {
    const w = new ByteWriter(1);
    writeStringAtom(w, s);
    return w.finish();
  };
  it("picks the most compact form", () => {
    assert.equal(hex(atom("")), "00");
    assert.equal(hex(atom("message")), "01");
    assert.equal(hex(atom("+4915112345678")), "f1 0e c4 91 51 12 34 56 78");
    assert.equal(hex(atom("123")), "f1 03 12 3f");
    assert.equal(hex(atom("3f2a9c")), "f2 06 3f 2a 9c");
    assert.equal(hex(atom("xyz")), "f3 03 93 99");
    assert.equal(hex(atom("Hi")), "f0 02 48 69");
    assert.equal(hex(atom("é")), "f0 02 c3 a9");
  });

  it("round-trips any well-formed string", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.stringMatching(/^[a-z0-9._+-]*$/)), (s) => {
        const r = reader(atom(s));
        assert.equal(readStringAtom(r, 1 << 20), s);
        assert.equal(r.remaining(), 0);
      }),
      { numRuns: 500 },
    );
    for (const s of ["\ufeffbom", "\u{1F600}", "a\u0000b"]) assert.equal(readStringAtom(reader(atom(s)), 100), s);
  });

  it("rejects malformed atoms", () => {
    throwsCode(() => readStringAtom(reader(bytes(0xf0, 0x02, 0xc3, 0x28)), 100), "BAD_UTF8");
    throwsCode(() => readStringAtom(reader(bytes(0xf0, 0x01, 0xff)), 100), "BAD_UTF8");
    throwsCode(() => readStringAtom(reader(bytes(0xf0, 0x05, 0x61)), 100), "TRUNCATED");
    throwsCode(() => readStringAtom(reader(bytes(0xf0, 0x05, 0x61, 0x61, 0x61, 0x61, 0x61)), 4), "LIMIT_EXCEEDED");
    throwsCode(() => readStringAtom(reader(bytes(0xf1, 0x01, 0x10)), 100), "BAD_TOKEN"); // bad pad nibble
    throwsCode(() => readStringAtom(reader(bytes(0xf1, 0x02, 0x1f)), 100), "BAD_TOKEN"); // nibble 15 is no char
    throwsCode(() => readStringAtom(reader(bytes(0xf3, 0x03, 0xff, 0xff)), 100), "BAD_TOKEN");
    throwsCode(() => readStringAtom(reader(bytes(PRIMARY_TOKENS.length)), 100), "BAD_TOKEN");
    throwsCode(() => readStringAtom(reader(bytes(0xec, 0x00)), 100), "BAD_TOKEN");
    throwsCode(() => readStringAtom(reader(bytes(0xf9)), 100), "BAD_TOKEN");
  });
});

describe("token dictionary", () => {
  it("has unique entries, fits 1-byte tokens, and starts with the empty string", () => {
    assert.equal(new Set(PRIMARY_TOKENS).size, PRIMARY_TOKENS.length);
    assert.ok(PRIMARY_TOKENS.length <= 0xec);
    assert.equal(PRIMARY_TOKENS[0], "");
  });
});

describe("decode limits", () => {
  const deep = (depth: number): Node =>
    depth === 0 ? { tag: "x", attrs: {} } : { tag: "x", attrs: {}, content: [deep(depth - 1)] };

  it("bounds nesting depth", () => {
    const bytes20 = encodeNode(deep(20));
    throwsCode(() => decodeNode(bytes20), "LIMIT_EXCEEDED");
    assert.deepStrictEqual(decodeNode(bytes20, { maxDepth: 32 }), deep(20));
  });

  it("bounds attributes, list lengths, strings, bytes, items and the stanza size", () => {
    const attrs = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`a${i}`, i]));
    throwsCode(() => decodeNode(encodeNode({ tag: "x", attrs }), { maxAttrs: 5 }), "LIMIT_EXCEEDED");
    const kids: Node = { tag: "x", attrs: {}, content: Array.from({ length: 10 }, () => ({ tag: "y", attrs: {} })) };
    throwsCode(() => decodeNode(encodeNode(kids), { maxListLength: 5 }), "LIMIT_EXCEEDED");
    throwsCode(() => decodeNode(encodeNode(kids), { maxItems: 5 }), "LIMIT_EXCEEDED");
    throwsCode(
      () => decodeNode(encodeNode({ tag: "x", attrs: {}, content: "é".repeat(50) }), { maxStringLength: 10 }),
      "LIMIT_EXCEEDED",
    );
    throwsCode(
      () => decodeNode(encodeNode({ tag: "x", attrs: {}, content: new Uint8Array(100) }), { maxBytesLength: 10 }),
      "LIMIT_EXCEEDED",
    );
    throwsCode(() => decodeNode(new Uint8Array(100), { maxStanzaBytes: 50 }), "FRAME_TOO_LARGE");
    const long = { kind: "presence" as const, type: "available" as const, from: "a".repeat(300) };
    throwsCode(() => decodeStanza(encodeStanza(long)), "LIMIT_EXCEEDED");
  });

  it("rejects a list count that the remaining bytes cannot hold, before allocating", () => {
    // node "x" claiming 4000 children with 0 bytes left
    throwsCode(() => decodeNode(bytes(0xf0, 0x01, 0x78, 0x03, 0xa0, 0x1f)), "TRUNCATED");
    // devack claiming 4096 seqs
    throwsCode(() => decodeStanza(bytes(0x03, 0x00, 0x80, 0x20)), "TRUNCATED");
  });

  it("rejects trailing bytes, unknown kinds, unknown header bits and duplicate attributes", () => {
    const ok = encodeStanza({ kind: "presence", type: "available" });
    throwsCode(() => decodeStanza(Uint8Array.from([...ok, 0])), "INVALID_STANZA");
    throwsCode(() => decodeStanza(bytes(0x7f)), "UNKNOWN_TYPE");
    throwsCode(() => decodeStanza(bytes(0x05, 0x40)), "INVALID_STANZA");
    // node "x" with attribute "a" twice
    throwsCode(
      () => decodeNode(bytes(0xf0, 0x01, 0x78, 0x08, 0xf0, 0x01, 0x61, 0xf4, 0x01, 0xf0, 0x01, 0x61, 0xf4, 0x02)),
      "INVALID_STANZA",
    );
    throwsCode(
      () => decodeNode(bytes(0xf0, 0x01, 0x78, 0x04, 0xf0, 0x09, ...new TextEncoder().encode("__proto__"), 0xf4, 0x01)),
      "INVALID_STANZA",
    );
  });
});

describe("interning context", () => {
  it("evicts in ring order identically on both sides", () => {
    const out = new WireContext(2);
    const inn = new WireContext(2);
    const names = ["ann", "ben", "cat", "ann", "ben", "ben", "dan", "cat"];
    const sizes: number[] = [];
    for (const from of names) {
      const bytesOut = encodeStanza({ kind: "presence", type: "available", from }, out);
      sizes.push(bytesOut.length);
      assert.deepStrictEqual(decodeStanza(bytesOut, undefined, inn), { kind: "presence", type: "available", from });
    }
    // literal (7 bytes) unless the name is still in the 2-slot ring (3 bytes)
    assert.deepStrictEqual(sizes, [7, 7, 7, 7, 7, 3, 7, 7]);
  });

  it("refuses a reference without a context or to an empty slot", () => {
    const stanza = bytes(0x05, 0x04, 0x00);
    throwsCode(() => decodeStanza(stanza), "BAD_TOKEN");
    throwsCode(() => decodeStanza(stanza, undefined, new WireContext()), "BAD_TOKEN");
  });

  it("rolls back inserts of a stanza that fails to decode", () => {
    const out = new WireContext();
    const good = encodeStanza({ kind: "chatstate", state: "paused", from: "zoe", to: "yan" }, out);
    const inn = new WireContext();
    // truncated copy: "zoe" is read and inserted, then the decode fails
    throwsCode(() => decodeStanza(good.subarray(0, good.length - 2), undefined, inn), "TRUNCATED");
    assert.deepStrictEqual(decodeStanza(good, undefined, inn), {
      kind: "chatstate",
      state: "paused",
      from: "zoe",
      to: "yan",
    });
  });
});

describe("size-limited encoding with a context", () => {
  it("a stanza over maxBytes throws FRAME_TOO_LARGE and interns nothing", async () => {
    const { encodeStanza, decodeStanza } = await import("../src/stanza/codec.ts");
    const { isWireError } = await import("../src/errors.ts");
    const out = new WireContext();
    const peer = new WireContext();
    const big = { kind: "presence" as const, type: "available" as const, from: "someone.with.a.long.name" };
    assert.throws(
      () => encodeStanza(big, out, 4),
      (e: unknown) => isWireError(e, "FRAME_TOO_LARGE"),
    );
    // The refused stanza never reached the peer: the next one must still decode there.
    const next = encodeStanza(big, out, 1000);
    assert.deepEqual(decodeStanza(next, undefined, peer), big);
  });
});
