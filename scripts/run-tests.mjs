#!/usr/bin/env node
// Runs every test file of the monorepo with node's built-in test runner.
// Source TypeScript runs directly through tsx; `--conditions=source` makes
// workspace packages resolve to their src/ (see each package.json "exports").
//
// Usage: node scripts/run-tests.mjs [path-prefix ...]
//   e.g. node scripts/run-tests.mjs packages/wire test/architecture.test.ts
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const roots = ["test", "bench/test", ...readdirSync(join(root, "packages")).map((p) => `packages/${p}/test`)];

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(join(root, dir));
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) {
      if (name !== "fixtures" && name !== "node_modules") walk(rel, out);
    } else if (name.endsWith(".test.ts")) out.push(rel);
  }
  return out;
}

const filters = process.argv.slice(2).map((f) => relative(root, join(process.cwd(), f)));
const files = roots
  .flatMap((r) => walk(r, []))
  .filter((f) => filters.length === 0 || filters.some((p) => f.startsWith(p)));
if (files.length === 0) {
  console.error("no test files matched", filters);
  process.exit(1);
}

const args = [
  "--conditions=source",
  "--import",
  "tsx",
  "--test",
  // Each file runs in its own process; two at a time suits the 2-core CI box.
  `--test-concurrency=${process.env.PARLEY_TEST_CONCURRENCY ?? 2}`,
  "--test-timeout=600000",
  ...files,
];
// Every temporary directory the tests make (profiles, data dirs, media files: ~60 MB a run) goes
// under one directory, TMPDIR for the test processes and the servers they start, which is removed
// afterwards. PARLEY_KEEP_TEST_TMP=1 keeps it for a look after a failure.
const runTmp = mkdtempSync(join(tmpdir(), "parley-tests-"));
const result = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, NODE_ENV: "test", TMPDIR: runTmp },
});
if (process.env.PARLEY_KEEP_TEST_TMP === "1") console.error(`test temporary files kept in ${runTmp}`);
else rmSync(runTmp, { recursive: true, force: true, maxRetries: 3 });
process.exit(result.status ?? 1);
