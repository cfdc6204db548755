// Generator processes run from an esbuild bundle, not through tsx's loader.
//
// Why: with `--import tsx`, Node 20 runs the module customization hooks on a
// separate thread, and the main thread blocks in Atomics.wait whenever it needs
// them (a late import, or tsx's source-map support while an error's stack is
// formatted). Under heavy load a generator process was seen stuck for good in
// that wait (main thread in futex_wait, hooks thread idle, sockets unread:
// nodejs/node#50948 is the same family). A plain `node bundle.mjs` has no hooks
// thread, starts faster and uses less memory per process.
import { rmSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/**
 * Bundles live under the repository's node_modules/.cache, not in the system temp dir: from there a
 * runtime require still finds the repository's node_modules (the wire package loads the native
 * sodium-native addon, which cannot be bundled, with createRequire).
 */
const CACHE = fileURLToPath(new URL("../../node_modules/.cache", import.meta.url));

let dir: Promise<string> | undefined;
const bundles = new Map<string, Promise<string>>();

/** The path of an ESM bundle of `entry` (built once per orchestrator process; deleted when it exits). */
export function bundleEntry(entry: string): Promise<string> {
  let out = bundles.get(entry);
  if (!out) {
    dir ??= mkdir(CACHE, { recursive: true })
      .then(() => mkdtemp(join(CACHE, "parley-load-bundle-")))
      .then((d) => {
        process.once("exit", () => rmSync(d, { recursive: true, force: true }));
        return d;
      });
    out = dir.then(async (d) => {
      const outfile = join(d, `${basename(entry).replace(/\.ts$/, "")}-${bundles.size}.mjs`);
      await build({
        entryPoints: [entry],
        outfile,
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        // workspace packages resolve to their TypeScript sources, as with --conditions=source
        conditions: ["source"],
        // CommonJS dependencies inside an ESM bundle still need `require` for node built-ins
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
        logLevel: "error",
      });
      return outfile;
    });
    bundles.set(entry, out);
  }
  return out;
}
