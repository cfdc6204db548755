import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { getCrypto } from "../src/crypto/index.ts";
import { encodePublicKey, generateKeyPair } from "../src/curve/index.ts";
import { isSignalError, SignalError } from "../src/errors.ts";
import {
  decodePreKeySignalMessage,
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  decodeSignalMessage,
  encodePreKeySignalMessage,
  encodeSenderKeyDistributionMessage,
  encodeSenderKeyMessage,
  encodeSignalMessage,
  verifySignalMessageMac,
} from "../src/proto/messages.ts";
import { decodeProto, encodeProto } from "../src/proto/protobuf.ts";
import { describeEachProvider } from "./fixtures/primitives/helpers.ts";

const SCHEMA = {
  a: { field: 1, type: "uint32" },
  b: { field: 2, type: "uint64" },
  c: { field: 3, type: "bytes" },
  d: { field: 900, type: "bytes" },
} as const;

const key33 = () => encodePublicKey(generateKeyPair().publicKey);

function throwsOnlySignalError(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    if (!(e instanceof SignalError)) throw e;
  }
}

describe("protobuf codec", () => {
  it("round trips any values (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            a: fc.nat({ max: 0xffffffff }),
            b: fc.maxSafeNat(),
            c: fc.uint8Array({ maxLength: 300 }),
            d: fc.uint8Array({ maxLength: 5 }),
          },
          { requiredKeys: [] },
        ),
        (values) => {
          assert.deepEqual(decodeProto(encodeProto(SCHEMA, values), SCHEMA), { ...values });
        },
      ),
    );
  });

  it("writes ascending field order and canonical varints (prost layout)", () => {
    const bytes = encodeProto(SCHEMA, { c: Uint8Array.of(9), a: 300 });
    assert.deepEqual(bytes, Uint8Array.of(0x08, 0xac, 0x02, 0x1a, 0x01, 0x09));
  });

  it("skips unknown fields of every wire type, including nested groups", () => {
    const unknown = Uint8Array.of(
      0x28,
      0xff,
      0x01, // field 5 varint
      0x31,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // field 6 fixed64
      0x3a,
      0x02,
      0xaa,
      0xbb, // field 7 bytes
      0x45,
      1,
      2,
      3,
      4, // field 8 fixed32
      0x4b,
      0x53,
      0x08,
      0x01,
      0x54,
      0x4c, // field 9 group containing field 10 group containing a varint
    );
    const known = encodeProto(SCHEMA, { a: 7 });
    assert.deepEqual(decodeProto(Uint8Array.of(...unknown, ...known), SCHEMA), { a: 7 });
  });

  it("rejects malformed input with INVALID_MESSAGE", () => {
    const bad: number[][] = [
      [0x08], // truncated varint value
      [0x08, 0x80], // truncated varint
      [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // > 64 bits
      [0x08, 0x80, 0x80, 0x80, 0x80, 0x10], // uint32 out of range
      [0x1a, 0x05, 0x01], // length beyond buffer
      [0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f], // huge length
      [0x00, 0x01], // field 0
      [0x0e], // wire type 6
      [0x0c], // stray end group
      [0x0b, 0x08, 0x01], // unterminated group
      [0x0b, 0x14], // mismatched end group
      [0x0a, 0x00], // uint32 field sent as bytes
      [0x18, 0x01], // bytes field sent as varint
      Array(40).fill(0x0b), // groups nested too deeply
    ];
    for (const b of bad) {
      assert.throws(
        () => decodeProto(Uint8Array.from(b), SCHEMA),
        (e) => isSignalError(e, "INVALID_MESSAGE"),
        `${b}`,
      );
    }
    assert.throws(
      () => decodeProto(new Uint8Array(101), SCHEMA, 100),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
  });

  it("random bytes either decode or throw SignalError, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => throwsOnlySignalError(() => decodeProto(bytes, SCHEMA))),
      { numRuns: 2000 },
    );
  });
});

describeEachProvider("Signal wire messages", () => {
  const macKey = getCrypto().randomBytes(32);
  const senderIk = key33();
  const receiverIk = key33();

  function sampleSignalMessage(version: number, pq?: Uint8Array) {
    return encodeSignalMessage(
      version,
      { ratchetKey: key33(), counter: 12, previousCounter: 3, ciphertext: Uint8Array.of(1, 2, 3), pqRatchet: pq },
      macKey,
      senderIk,
      receiverIk,
    );
  }

  it("SignalMessage: version byte, fields, MAC round trip and MAC binding", () => {
    for (const [version, first] of [
      [3, 0x34],
      [4, 0x44],
    ] as const) {
      const bytes = sampleSignalMessage(version, version === 4 ? Uint8Array.of(9, 9) : undefined);
      assert.equal(bytes[0], first);
      const msg = decodeSignalMessage(bytes);
      assert.equal(msg.version, version);
      assert.equal(msg.fields.counter, 12);
      assert.equal(msg.fields.previousCounter, 3);
      assert.deepEqual(msg.fields.ciphertext, Uint8Array.of(1, 2, 3));
      assert.deepEqual(msg.fields.pqRatchet, version === 4 ? Uint8Array.of(9, 9) : undefined);
      assert.equal(verifySignalMessageMac(msg, macKey, senderIk, receiverIk), true);
      assert.equal(verifySignalMessageMac(msg, macKey, receiverIk, senderIk), false);
      assert.equal(verifySignalMessageMac(msg, getCrypto().randomBytes(32), senderIk, receiverIk), false);
    }
  });

  it("SignalMessage: every flipped bit fails decoding or the MAC", () => {
    const bytes = sampleSignalMessage(4, Uint8Array.of(5));
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const copy = bytes.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      try {
        const msg = decodeSignalMessage(copy);
        assert.equal(verifySignalMessageMac(msg, macKey, senderIk, receiverIk), false, `bit ${bit}`);
      } catch (e) {
        assert.ok(e instanceof SignalError, `bit ${bit}`);
      }
    }
  });

  it("version bytes outside 3..4 are UNSUPPORTED_VERSION", () => {
    const bytes = sampleSignalMessage(3);
    for (const v of [0x24, 0x54, 0x04, 0xf4]) {
      bytes[0] = v;
      assert.throws(
        () => decodeSignalMessage(bytes),
        (e) => isSignalError(e, "UNSUPPORTED_VERSION"),
      );
    }
    bytes[0] = 0x33; // old libsignal low nibble: accepted, as libsignal reads only the high nibble
    assert.equal(decodeSignalMessage(bytes).version, 3);
  });

  it("PreKeySignalMessage round trip (v3 without KEM, v4 with) and libsignal's KEM-field rules", () => {
    const inner = sampleSignalMessage(4);
    const base = { registrationId: 77, signedPreKeyId: 5, baseKey: key33(), identityKey: senderIk, message: inner };
    const v4 = encodePreKeySignalMessage(4, {
      ...base,
      preKeyId: 9,
      kyberPreKeyId: 11,
      kyberCiphertext: Uint8Array.of(0x0a, 1, 2),
    });
    const d4 = decodePreKeySignalMessage(v4);
    assert.equal(v4[0], 0x44);
    assert.deepEqual(d4.fields, {
      ...base,
      preKeyId: 9,
      kyberPreKeyId: 11,
      kyberCiphertext: Uint8Array.of(0x0a, 1, 2),
    });
    const v3 = decodePreKeySignalMessage(encodePreKeySignalMessage(3, base));
    assert.deepEqual(v3.fields, base);
    assert.throws(
      () => decodePreKeySignalMessage(encodePreKeySignalMessage(4, base)),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
    const half = encodeProto({ k: { field: 7, type: "uint32" } }, { k: 1 });
    assert.throws(
      () => decodePreKeySignalMessage(Uint8Array.of(...encodePreKeySignalMessage(3, base), ...half)),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
  });

  it("SenderKey messages round trip with 0x33 version byte", () => {
    const distributionId = getCrypto().randomBytes(16);
    const skm = encodeSenderKeyMessage({ distributionId, chainId: 5, iteration: 0, ciphertext: Uint8Array.of(4) }, () =>
      new Uint8Array(64).fill(1),
    );
    assert.equal(skm[0], 0x33);
    const d = decodeSenderKeyMessage(skm);
    assert.deepEqual(d.fields, { distributionId, chainId: 5, iteration: 0, ciphertext: Uint8Array.of(4) });
    const skdm = encodeSenderKeyDistributionMessage({
      distributionId,
      chainId: 5,
      iteration: 2,
      chainKey: new Uint8Array(32).fill(3),
      signingKey: senderIk,
    });
    assert.equal(skdm[0], 0x33);
    assert.deepEqual(decodeSenderKeyDistributionMessage(skdm).fields.signingKey, senderIk);
  });

  it("every decoder on random and mutated bytes throws only SignalError", () => {
    const decoders = [
      decodeSignalMessage,
      decodePreKeySignalMessage,
      decodeSenderKeyMessage,
      decodeSenderKeyDistributionMessage,
    ];
    const seeds = [
      sampleSignalMessage(4, Uint8Array.of(1)),
      encodePreKeySignalMessage(3, {
        registrationId: 1,
        signedPreKeyId: 2,
        baseKey: key33(),
        identityKey: key33(),
        message: sampleSignalMessage(3),
      }),
      encodeSenderKeyDistributionMessage({
        distributionId: new Uint8Array(16),
        chainId: 1,
        iteration: 1,
        chainKey: new Uint8Array(32),
        signingKey: key33(),
      }),
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc
            .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 6 }))
            .map(([seed, edits]) => {
              const copy = seed.slice();
              for (const [pos, value] of edits) copy[pos % copy.length] = value;
              return copy;
            }),
          fc.constantFrom(...seeds).chain((s) => fc.nat({ max: s.length }).map((n) => s.slice(0, n))),
        ),
        (bytes) => {
          for (const decode of decoders) throwsOnlySignalError(() => decode(bytes));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("oversized messages are refused before parsing", () => {
    assert.throws(
      () => decodeSignalMessage(new Uint8Array(2 << 20)),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
    assert.throws(
      () => decodeSignalMessage(sampleSignalMessage(3), { maxSize: 20 }),
      (e) => isSignalError(e, "INVALID_MESSAGE"),
    );
  });
});
