// Handshake fuzzing: a real Noise_XX transcript, then each message mutated and fed to a fresh
// receiver. Every rejection must be a WireError; nothing may crash or hang.

import { WireError } from "../../src/errors.ts";
import { HandshakeState, type NoiseCryptoSuite } from "../../src/noise/index.ts";
import { parleyPrologue } from "../../src/transport/prologue.ts";
import type { FuzzFailure, Rng } from "./harness.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

export interface NoiseFuzzStats {
  cases: number;
  accepted: number;
  rejected: Record<string, number>;
  failures: FuzzFailure[];
}

export function fuzzNoiseHandshake(suite: NoiseCryptoSuite, rng: Rng, cases: number): NoiseFuzzStats {
  const prologue = parleyPrologue();
  const iS = suite.generateKeyPair();
  const rS = suite.generateKeyPair();
  const iE = suite.generateKeyPair();
  const rE = suite.generateKeyPair();
  const options = (initiator: boolean) => ({
    suite,
    pattern: "XX" as const,
    cipher: "AESGCM" as const,
    initiator,
    prologue,
    s: initiator ? iS : rS,
    e: initiator ? iE : rE,
  });
  // the reference transcript (fixed keys, so fresh states reproduce it exactly)
  const a = new HandshakeState(options(true));
  const b = new HandshakeState(options(false));
  const m1 = a.writeMessage(new Uint8Array([1, 2, 3]));
  b.readMessage(m1);
  const m2 = b.writeMessage(new Uint8Array([4, 5, 6]));
  a.readMessage(m2);
  const m3 = a.writeMessage(new Uint8Array([7, 8, 9]));
  b.readMessage(m3);

  const stats: NoiseFuzzStats = { cases: 0, accepted: 0, rejected: {}, failures: [] };
  for (let i = 0; i < cases; i++) {
    const which = rng.below(3);
    const original = which === 0 ? m1 : which === 1 ? m2 : m3;
    const mutated = Uint8Array.from(original);
    const op = rng.below(3);
    let input: Uint8Array = mutated;
    if (op === 0) mutated[rng.below(mutated.length)]! ^= 1 << rng.below(8);
    else if (op === 1) input = mutated.subarray(0, rng.below(mutated.length));
    else input = Uint8Array.from([...mutated, ...new Uint8Array(1 + rng.below(8)).map(() => rng.below(256))]);
    stats.cases++;
    try {
      if (which === 0) {
        new HandshakeState(options(false)).readMessage(input);
      } else if (which === 1) {
        const init = new HandshakeState(options(true));
        init.writeMessage(new Uint8Array([1, 2, 3]));
        init.readMessage(input);
      } else {
        const resp = new HandshakeState(options(false));
        resp.readMessage(m1);
        resp.writeMessage(new Uint8Array([4, 5, 6]));
        resp.readMessage(input);
      }
      // only message 1 (unauthenticated ephemeral + cleartext payload) may be accepted when altered
      stats.accepted++;
      if (which !== 0 && stats.failures.length < 20) {
        stats.failures.push({ input: hex(input), error: `altered message ${which + 1} was accepted` });
      }
    } catch (err) {
      if (err instanceof WireError) stats.rejected[err.code] = (stats.rejected[err.code] ?? 0) + 1;
      else if (stats.failures.length < 20) stats.failures.push({ input: hex(input), error: String(err) });
    }
  }
  return stats;
}
