#!/usr/bin/env node
// Runs the compiled CLI when it is built (npm run build); otherwise runs the
// TypeScript sources through tsx, with workspace packages resolved to src/.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const dist = fileURLToPath(new URL("../dist/main-entry.js", import.meta.url));
if (existsSync(dist)) {
  await import(pathToFileURL(dist).href);
} else {
  const src = fileURLToPath(new URL("../src/main-entry.ts", import.meta.url));
  // tsx is resolved from here, not from the caller's working directory.
  const tsx = import.meta.resolve("tsx");
  const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, src, ...process.argv.slice(2)], {
    stdio: "inherit",
  });
  for (const sig of ["SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
  process.on("SIGINT", () => {}); // the terminal delivers Ctrl-C to the child too
  child.on("exit", (code, signal) => {
    process.exitCode = code ?? (signal ? 128 : 1);
  });
}
