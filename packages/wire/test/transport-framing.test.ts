import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isWireError, WireError } from "../src/errors.ts";
import { FRAME_HEADER_SIZE, FrameDecoder, parleyPrologue, writeFrameHeader } from "../src/transport/index.ts";
import { decodeClose, encodeClose, readStanzas, varintSize, writeVarint } from "../src/transport/record.ts";

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  out.set(body, FRAME_HEADER_SIZE);
  writeFrameHeader(out);
  return out;
}

describe("frame decoder", () => {
  it("reassembles frames from any chunking", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        (bodies, cuts) => {
          const stream = Uint8Array.from(bodies.flatMap((b) => [...frame(b)]));
          const decoder = new FrameDecoder(300);
          const got: Uint8Array[] = [];
          let offset = 0;
          let i = 0;
          while (offset < stream.length) {
            const n = cuts[i++ % cuts.length]!;
            decoder.push(stream.subarray(offset, offset + n), (f) => got.push(f.slice()));
            offset += n;
          }
          assert.deepEqual(got, bodies);
          assert.equal(decoder.bufferedBytes, 0);
        },
      ),
    );
  });

  it("refuses an oversized length from the prefix alone", () => {
    const decoder = new FrameDecoder(1000);
    assert.throws(
      () => decoder.push(Uint8Array.from([0x03, 0xe9]), () => {}),
      (err) => isWireError(err, "FRAME_TOO_LARGE"),
    );
  });

  it("refuses empty frames", () => {
    assert.throws(
      () => new FrameDecoder(1000).push(Uint8Array.from([0, 0]), () => {}),
      (err) => isWireError(err, "PROTOCOL_VIOLATION"),
    );
  });

  it("never throws anything but WireError on random input", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 10 }), (chunks) => {
        const decoder = new FrameDecoder(64);
        try {
          for (const c of chunks) decoder.push(c, () => {});
        } catch (err) {
          assert.ok(err instanceof WireError);
        }
      }),
    );
  });
});

describe("record bodies", () => {
  it("stanza batches round-trip", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 20_000 }), { minLength: 1, maxLength: 8 }), (stanzas) => {
        const size = 1 + stanzas.reduce((n, s) => n + varintSize(s.length) + s.length, 0);
        const record = new Uint8Array(size);
        let offset = 1;
        for (const s of stanzas) {
          offset = writeVarint(record, offset, s.length);
          record.set(s, offset);
          offset += s.length;
        }
        const got: Uint8Array[] = [];
        readStanzas(record, 1, (s) => got.push(s.slice()));
        assert.deepEqual(got, stanzas);
      }),
    );
  });

  it("malformed stanza batches fail with WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 50 }), (body) => {
        const record = Uint8Array.from([0, ...body]);
        try {
          readStanzas(record, 1, () => {});
        } catch (err) {
          assert.ok(err instanceof WireError);
        }
      }),
    );
  });

  it("close records carry code and a UTF-8-safe truncated reason", () => {
    const long = "é".repeat(100);
    const decoded = decodeClose(encodeClose(1005, long));
    assert.equal(decoded.code, 1005);
    assert.ok(long.startsWith(decoded.reason));
    assert.ok(new TextEncoder().encode(decoded.reason).length <= 123);
  });

  it("the prologue binds protocol and dictionary versions", () => {
    assert.notDeepEqual(parleyPrologue(1, 1), parleyPrologue(1, 2));
    assert.equal(new TextDecoder().decode(parleyPrologue().subarray(0, 6)), "PARLEY");
  });
});
