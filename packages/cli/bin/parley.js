#!/usr/bin/env node
// In a source checkout this runs the TypeScript sources through tsx (workspace
// packages resolved to src/), so what runs is always what is checked out. The
// compiled build (npm run build) runs instead when there are no sources or
// tsx, or when PARLEY_DIST=1: plain node, faster start, less memory.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const dist = fileURLToPath(new URL("../dist/main-entry.js", import.meta.url));
const src = fileURLToPath(new URL("../src/main-entry.ts", import.meta.url));

function resolveTsx() {
  try {
    return import.meta.resolve("tsx");
  } catch {
    return undefined;
  }
}

const tsx = process.env.PARLEY_DIST === "1" || !existsSync(src) ? undefined : resolveTsx();
if (tsx === undefined) {
  if (!existsSync(dist)) {
    process.stderr.write(
      "parley: no compiled build: run `npm run build` (or install dev dependencies to run from source)\n",
    );
    process.exit(1);
  }
  await import(pathToFileURL(dist).href);
} else {
  const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, src, ...process.argv.slice(2)], {
    stdio: "inherit",
  });
  for (const sig of ["SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
  process.on("SIGINT", () => {}); // the terminal delivers Ctrl-C to the child too
  child.on("exit", (code, signal) => {
    process.exitCode = code ?? (signal ? 128 : 1);
  });
}
