import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { buildGraph, checkArchitecture, extractSpecifiers } from "../scripts/architecture.ts";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

/** Lays out a throwaway monorepo: { "packages/x/src/a.ts": "source", ... }. */
function fakeRepo(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "parley-arch-"));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const pkg = (name: string, exports: Record<string, string> = { ".": "./src/index.ts" }) =>
  JSON.stringify({
    name: `@parley/${name}`,
    exports: Object.fromEntries(Object.entries(exports).map(([k, v]) => [k, { source: v }])),
  });

describe("dependency directions", () => {
  it("the real repository obeys every rule", () => {
    const violations = checkArchitecture(buildGraph(repoRoot));
    assert.deepEqual(violations, []);
  });

  it("flags a server file that reaches ratchet code transitively", () => {
    const dir = fakeRepo({
      "packages/signal/package.json": pkg("signal", { ".": "./src/index.ts", "./verify": "./src/verify.ts" }),
      "packages/signal/src/index.ts": 'export * from "./ratchet/chain.ts";\n',
      "packages/signal/src/verify.ts": 'export * from "./curve/xeddsa.ts";\n',
      "packages/signal/src/curve/xeddsa.ts": "export const verify = 1;\n",
      "packages/signal/src/ratchet/chain.ts": "export const decrypt = 1;\n",
      "packages/server/package.json": pkg("server"),
      "packages/server/src/index.ts": 'import "./routing.ts";\nimport { verify } from "@parley/signal/verify";\n',
      "packages/server/src/routing.ts": 'import { helper } from "./util.ts";\n',
      "packages/server/src/util.ts": 'export { decrypt as helper } from "@parley/signal";\n',
    });
    try {
      const v = checkArchitecture(buildGraph(dir));
      const bad = v.filter((x) => x.rule === "server-no-decryption");
      assert.ok(bad.some((x) => x.file === "packages/server/src/index.ts" && x.detail.includes("ratchet/chain.ts")));
      // the allowed entry point alone is fine
      assert.ok(!v.some((x) => x.detail.includes("curve/xeddsa.ts")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("flags wire importing another Parley package, and Node built-ins in browser code", () => {
    const dir = fakeRepo({
      "packages/signal/package.json": pkg("signal"),
      "packages/signal/src/index.ts": 'import { randomBytes } from "node:crypto";\n',
      "packages/signal/src/crypto/provider.node.ts": 'import { randomBytes } from "node:crypto";\n',
      "packages/wire/package.json": pkg("wire"),
      "packages/wire/src/index.ts": 'import { x } from "@parley/signal";\nimport y from "../../signal/src/index.ts";\n',
    });
    try {
      const v = checkArchitecture(buildGraph(dir));
      assert.equal(v.filter((x) => x.rule === "wire-standalone").length, 2);
      const browser = v.filter((x) => x.rule === "browser-safe");
      assert.deepEqual(
        browser.map((x) => x.file),
        ["packages/signal/src/index.ts"],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("extracts static, re-export, side-effect, type and dynamic imports but not comments", () => {
    const src = [
      'import a from "a";',
      'import { b, c } from "./b.ts";',
      'import type { T } from "t";',
      'export * from "./e.ts";',
      'export { f } from "f";',
      'import "side";',
      'const m = await import("dyn");',
      '// import x from "commented";',
      '/* import y from "block"; */',
    ].join("\n");
    assert.deepEqual(extractSpecifiers(src), ["a", "./b.ts", "t", "./e.ts", "f", "side", "dyn"]);
  });
});
