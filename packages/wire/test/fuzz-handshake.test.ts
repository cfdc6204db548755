import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isWireError, WireError } from "../src/errors.ts";
import { HandshakeState, type KeyPair } from "../src/noise/index.ts";
import { nodeSuite } from "../src/noise/suite.node.ts";
import {
  acceptLink,
  generateStaticKeyPair,
  HandshakeFrameType,
  PARLEY_NOISE_CIPHER,
  parleyPrologue,
  resolveLimits,
  runClientHandshake,
} from "../src/transport/index.node.ts";
import { bytes, memoryLinkPair, until } from "./transport-helpers.ts";

const server = generateStaticKeyPair();
const client = generateStaticKeyPair();
const prologue = parleyPrologue();

function hs(pattern: "XX" | "IK", initiator: boolean, s: KeyPair, rs?: Uint8Array) {
  return new HandshakeState({
    suite: nodeSuite,
    pattern,
    cipher: PARLEY_NOISE_CIPHER,
    initiator,
    prologue,
    s,
    ...(rs ? { rs } : {}),
  });
}

/** Valid first messages to mutate. */
const ikInit = hs("IK", true, client, server.publicKey).writeMessage(bytes("login payload"));
const xxInit = hs("XX", true, client).writeMessage();

const mutation = (base: Uint8Array) =>
  fc.oneof(
    // flip bits
    fc
      .array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })
      .map((flips) => {
        const out = base.slice();
        for (const [i, x] of flips) out[i]! ^= x;
        return out;
      }),
    // truncate
    fc.nat(base.length - 1).map((n) => base.slice(0, n)),
    // extend
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => Uint8Array.from([...base, ...extra])),
    // replace
    fc.uint8Array({ maxLength: 300 }),
  );

describe("handshake fuzzing", () => {
  it("HandshakeState.readMessage rejects mutated messages only with WireError", () => {
    fc.assert(
      fc.property(fc.oneof(mutation(ikInit), mutation(xxInit)), fc.boolean(), (message, asIk) => {
        const responder = hs(asIk ? "IK" : "XX", false, server);
        try {
          responder.readMessage(message);
        } catch (err) {
          assert.ok(err instanceof WireError, `not a WireError: ${String(err)}`);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("a mutated IK message never authenticates the client's static key", () => {
    fc.assert(
      fc.property(mutation(ikInit), (message) => {
        fc.pre(!(message.length === ikInit.length && message.every((b, i) => b === ikInit[i])));
        const responder = hs("IK", false, server);
        assert.throws(
          () => responder.readMessage(message),
          (err) => isWireError(err, "HANDSHAKE_FAILED"),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("the server driver answers mutated handshake frames with typed errors and never throws", async () => {
    const frames = fc.oneof(
      mutation(ikInit).map((m) => Uint8Array.from([HandshakeFrameType.IK_INIT, ...m])),
      mutation(xxInit).map((m) => Uint8Array.from([HandshakeFrameType.XX_INIT, ...m])),
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frames, { minLength: 1, maxLength: 3 }), async (sequence) => {
        const [attacker, serverLink] = memoryLinkPair();
        const errors: unknown[] = [];
        let accepted = 0;
        acceptLink(
          serverLink,
          {
            staticKeyPair: server,
            authenticate: async () => bytes("ok"),
            onConnection: () => {
              accepted++;
            },
            onHandshakeError: (e) => errors.push(e),
            limits: { handshakeTimeoutMs: 200 },
          },
          { suite: nodeSuite },
        );
        for (const frame of sequence) serverLink.receive(frame);
        await until(() => errors.length > 0 || accepted > 0 || serverLink.closed, 2000);
        for (const e of errors) assert.ok(e instanceof WireError);
        attacker.destroy();
      }),
      { numRuns: 60 },
    );
  });

  it("the client driver answers mutated server responses with typed errors", async () => {
    // A genuine server response to a genuine XX message 1, then mutated on its way to the client.
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        async (position, flip, ik) => {
          const [clientLink, serverLink] = memoryLinkPair();
          acceptLink(
            serverLink,
            { staticKeyPair: server, authenticate: async () => bytes("ok"), onConnection: () => {} },
            { suite: nodeSuite },
          );
          serverLink.tamper = (frame) => {
            const copy = frame.slice();
            const i = position % copy.length;
            copy[i]! ^= flip;
            return [copy];
          };
          await assert.rejects(
            runClientHandshake({
              link: clientLink,
              suite: nodeSuite,
              clientStaticKeyPair: client,
              ...(ik ? { serverStaticPublicKey: server.publicKey } : {}),
              loginPayload: bytes("x"),
              limits: resolveLimits({}),
              handshakeTimeoutMs: 500,
            }),
            (err) => err instanceof WireError,
          );
          serverLink.destroy();
        },
      ),
      { numRuns: 60 },
    );
  });
});
