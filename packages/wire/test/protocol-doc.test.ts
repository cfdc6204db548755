// Checks docs/protocol.md against the code: every worked example byte for byte, and the token table.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  decodeClientHello,
  decodeServerHello,
  decodeStanza,
  encodeClientHello,
  encodeServerHello,
  encodeStanza,
  PRIMARY_TOKENS,
  type Stanza,
  WireContext,
} from "../src/index.ts";

const doc = readFileSync(fileURLToPath(new URL("../../../docs/protocol.md", import.meta.url)), "utf8");

function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, "");
  assert.match(clean, /^([0-9a-f]{2})*$/, `bad hex ${hex}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}

/** "hex:…" strings in example JSON stand for byte arrays. */
function revive(_key: string, value: unknown): unknown {
  return typeof value === "string" && value.startsWith("hex:") ? fromHex(value.slice(4)) : value;
}

interface Example {
  name: string;
  mode: string;
  json: unknown;
  encodings: Uint8Array[];
}

function parseExamples(): Example[] {
  const re = /<!-- example: ([\w-]+); (context|hello): (\w+) -->\s*```json\n([\s\S]*?)```\s*```hex\n([\s\S]*?)```/g;
  const out: Example[] = [];
  for (const m of doc.matchAll(re)) {
    const paragraphs = m[5]!
      .split(/\n\s*\n/)
      .map((p) =>
        p
          .split("\n")
          .map((line) => line.replace(/#.*$/, ""))
          .join(" "),
      )
      .filter((p) => p.trim().length > 0);
    out.push({
      name: m[1]!,
      mode: `${m[2]}:${m[3]}`,
      json: JSON.parse(m[4]!, revive),
      encodings: paragraphs.map(fromHex),
    });
  }
  return out;
}

describe("docs/protocol.md", () => {
  const examples = parseExamples();

  it("has worked examples", () => {
    assert.ok(examples.length >= 8, `found ${examples.length} examples`);
    assert.ok(doc.trimEnd().includes("<!-- transport sections below -->"));
  });

  for (const ex of examples) {
    it(`example ${ex.name} matches the encoder byte for byte`, () => {
      if (ex.mode === "hello:client") {
        const hello = ex.json as Parameters<typeof encodeClientHello>[0];
        assert.deepStrictEqual(encodeClientHello(hello), ex.encodings[0]);
        assert.deepStrictEqual(decodeClientHello(ex.encodings[0]!), hello);
        return;
      }
      if (ex.mode === "hello:server") {
        const hello = ex.json as Parameters<typeof encodeServerHello>[0];
        assert.deepStrictEqual(encodeServerHello(hello), ex.encodings[0]);
        assert.deepStrictEqual(decodeServerHello(ex.encodings[0]!), hello);
        return;
      }
      const stanzas = ex.json as Stanza[];
      assert.equal(stanzas.length, ex.encodings.length, "one hex paragraph per stanza");
      const out = ex.mode === "context:shared" ? new WireContext() : undefined;
      const inn = ex.mode === "context:shared" ? new WireContext() : undefined;
      stanzas.forEach((s, i) => {
        assert.deepStrictEqual(encodeStanza(s, out), ex.encodings[i], `stanza ${i}`);
        assert.deepStrictEqual(decodeStanza(ex.encodings[i]!, undefined, inn), s, `stanza ${i}`);
      });
    });
  }

  it("lists the token dictionary exactly", () => {
    const section = doc.split("## 8. Token dictionary")[1]!.split("## 9.")[0]!;
    const listed = new Map<number, string>();
    for (const m of section.matchAll(/0x([0-9a-f]{2}) \| `([^`]*)`/g)) listed.set(Number.parseInt(m[1]!, 16), m[2]!);
    assert.equal(listed.size, PRIMARY_TOKENS.length);
    PRIMARY_TOKENS.forEach((t, i) => {
      assert.equal(listed.get(i), t, `token 0x${i.toString(16)}`);
    });
  });
});
