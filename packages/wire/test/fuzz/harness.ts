// Decoder fuzzing shared by the short run (fuzz-codec.test.ts) and the long run (long-run.ts):
// random and mutated inputs must decode or fail with a WireError, never anything else.
import fc from "fast-check";
import {
  decodeBatch,
  decodeClientHello,
  decodeNode,
  decodeServerHello,
  decodeStanza,
  encodeClientHello,
  encodeServerHello,
  encodeStanza,
  type Stanza,
  WireContext,
  WireError,
} from "../../src/index.ts";
import { clientHello, serverHello, stanza } from "../stanza-arbitraries.ts";

/** xorshift32: fast, seedable, good enough to drive mutations. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.next() % n;
  }
}

export interface FuzzCorpus {
  stanzas: Uint8Array[];
  hellos: Uint8Array[];
}

/** Valid encodings to mutate: every stanza kind, with and without interning. */
export function buildCorpus(seed: number, size: number): FuzzCorpus {
  const samples = fc.sample(stanza, { seed, numRuns: size });
  const ctx = new WireContext(16);
  const stanzas = samples.map((s, i) => encodeStanza(s, i % 2 === 0 ? ctx : undefined));
  const hellos = [
    ...fc.sample(clientHello, { seed, numRuns: 50 }).map(encodeClientHello),
    ...fc.sample(serverHello, { seed, numRuns: 50 }).map(encodeServerHello),
  ];
  return { stanzas, hellos };
}

function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let b = Uint8Array.from(input);
  const rounds = 1 + rng.below(4);
  for (let r = 0; r < rounds; r++) {
    const op = rng.below(7);
    const at = b.length === 0 ? 0 : rng.below(b.length);
    if (op === 0 && b.length > 0) b[at] = rng.below(256);
    else if (op === 1 && b.length > 0) b[at]! ^= 1 << rng.below(8);
    else if (op === 2) b = b.subarray(0, rng.below(b.length + 1));
    else if (op === 3) {
      const ins = new Uint8Array(1 + rng.below(4));
      for (let i = 0; i < ins.length; i++) ins[i] = rng.below(256);
      b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
    } else if (op === 4 && b.length > 1) b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1)]);
    else if (op === 5 && b.length > 0) b[at] = [0x00, 0x7f, 0x80, 0xff, 0xf0, 0xf3, 0xf7, 0xec][rng.below(8)]!;
    else if (op === 6 && b.length > 0) {
      // a long varint run: stresses length/count claims
      for (let i = at; i < Math.min(b.length, at + 1 + rng.below(9)); i++) b[i] = 0xff;
    }
  }
  return b;
}

function randomBytes(rng: Rng): Uint8Array {
  const b = new Uint8Array(rng.below(48));
  for (let i = 0; i < b.length; i++) b[i] = rng.below(256);
  return b;
}

export interface FuzzFailure {
  input: string;
  error: string;
}

export interface FuzzStats {
  cases: number;
  decoded: number;
  rejected: Record<string, number>;
  failures: FuzzFailure[];
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function sameStanza(a: Stanza, b: Stanza): boolean {
  // Re-encoding is canonical, so equal encodings mean equal stanzas.
  const x = encodeStanza(a);
  const y = encodeStanza(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Run `cases` fuzz cases; a failure is any non-WireError throw or a decoded value that does not re-encode. */
export function fuzzDecoders(corpus: FuzzCorpus, seed: number, cases: number): FuzzStats {
  const rng = new Rng(seed);
  const stats: FuzzStats = { cases: 0, decoded: 0, rejected: {}, failures: [] };
  const limits = { maxStanzaBytes: 1 << 16 };
  for (let i = 0; i < cases; i++) {
    const pick = rng.below(10);
    let input: Uint8Array;
    let target: number;
    if (pick < 2) {
      input = randomBytes(rng);
      target = rng.below(5);
    } else if (pick < 9) {
      input = mutate(rng, corpus.stanzas[rng.below(corpus.stanzas.length)]!);
      target = rng.below(8) === 0 ? 2 : 0;
    } else {
      input = mutate(rng, corpus.hellos[rng.below(corpus.hellos.length)]!);
      target = 3 + rng.below(2);
    }
    stats.cases++;
    try {
      if (target === 0) {
        const ctx = rng.below(2) === 0 ? new WireContext(4) : undefined;
        const s = decodeStanza(input, limits, ctx);
        // a decoded stanza is valid: it must re-encode and decode to itself
        if (!sameStanza(decodeStanza(encodeStanza(s)), s)) throw new Error("re-encode mismatch");
      } else if (target === 1) decodeNode(input, limits);
      else if (target === 2) decodeBatch(input, limits);
      else if (target === 3) decodeClientHello(input);
      else decodeServerHello(input);
      stats.decoded++;
    } catch (err) {
      if (err instanceof WireError) stats.rejected[err.code] = (stats.rejected[err.code] ?? 0) + 1;
      else if (stats.failures.length < 20) stats.failures.push({ input: hex(input), error: String(err) });
    }
  }
  return stats;
}
