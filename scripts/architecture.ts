// Dependency-direction rules of the Parley monorepo, checked over the real
// import graph of every package's src/ (static imports, re-exports and
// dynamic import() with a literal specifier).
//
// The rules encode the security model:
//  - the server cannot read messages, so nothing it reaches may be Signal
//    session / ratchet / decryption code: of @parley/signal it may reach only
//    the files on SERVER_SIGNAL_ALLOWED (public-key encoding and signature
//    verification), and never @parley/client;
//  - wire is the bottom layer and imports no other Parley package;
//  - wire and signal run in browsers: Node built-ins only in `*.node.ts` files.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";

export interface ImportEdge {
  from: string; // repo-relative file
  specifier: string;
  to: string | null; // repo-relative file, or null for npm packages / built-ins
}

export interface Violation {
  rule: string;
  file: string;
  detail: string;
}

/** Files of packages/signal/src that the server may reach. Everything else there is off limits. */
export const SERVER_SIGNAL_ALLOWED = [
  "packages/signal/src/verify.ts",
  "packages/signal/src/verify.node.ts", // the same checks on node:crypto (crypto/node.node.ts)
  "packages/signal/src/errors.ts",
  "packages/signal/src/crypto/",
  "packages/signal/src/curve/",
  "packages/signal/src/kem/",
];

const BROWSER_PACKAGES = ["wire", "signal"];
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Every module specifier a file imports or re-exports (type-only imports count too: stricter is safer). */
export function extractSpecifiers(source: string): string[] {
  // Drop comments so commented-out imports don't count.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'])\/\/.*$/gm, "$1");
  const out: string[] = [];
  for (const m of code.matchAll(IMPORT_RE)) {
    const specifier = m[1] ?? m[2];
    if (specifier) out.push(specifier);
  }
  return out;
}

function listTs(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) listTs(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

function resolveFile(base: string): string | null {
  for (const c of [base, `${base}.ts`, join(base, "index.ts")]) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  if (base.endsWith(".js")) return resolveFile(base.slice(0, -3));
  return null;
}

/** Every TypeScript source an export target can select, under any condition (node, browser, source, ...). */
function sourceTargets(target: unknown): string[] {
  if (typeof target === "string") return target.endsWith(".ts") && !target.endsWith(".d.ts") ? [target] : [];
  if (target && typeof target === "object") return Object.values(target).flatMap(sourceTargets);
  return [];
}

/** Resolves `@parley/<pkg>[/sub]` through the package's "exports" map to all its source entry files. */
function resolveWorkspace(root: string, specifier: string): string[] {
  const m = /^@parley\/([^/]+)(\/.*)?$/.exec(specifier);
  if (!m) return [];
  const pkgDir = join(root, "packages", m[1]!);
  const pkgJson = join(pkgDir, "package.json");
  if (!existsSync(pkgJson)) return [];
  const exportsMap = JSON.parse(readFileSync(pkgJson, "utf8")).exports ?? {};
  const key = m[2] ? `.${m[2]}` : ".";
  const entry = typeof exportsMap === "string" ? (key === "." ? exportsMap : undefined) : exportsMap[key];
  return [...new Set(sourceTargets(entry))].flatMap((t) => resolveFile(resolve(pkgDir, t)) ?? []);
}

export function buildGraph(root: string): Map<string, ImportEdge[]> {
  const graph = new Map<string, ImportEdge[]>();
  const files = readdirSync(join(root, "packages")).flatMap((p) => listTs(join(root, "packages", p, "src")));
  for (const abs of files) {
    const from = relative(root, abs).split(sep).join("/");
    const edges: ImportEdge[] = [];
    for (const specifier of extractSpecifiers(readFileSync(abs, "utf8"))) {
      let targets: string[] = [];
      if (specifier.startsWith(".")) targets = [resolveFile(resolve(dirname(abs), specifier)) ?? []].flat();
      else if (specifier.startsWith("@parley/")) targets = resolveWorkspace(root, specifier);
      if (targets.length === 0) edges.push({ from, specifier, to: null });
      for (const t of targets) edges.push({ from, specifier, to: relative(root, t).split(sep).join("/") });
    }
    graph.set(from, edges);
  }
  return graph;
}

/** All files reachable from `start` (inclusive), with the chain that reached each. */
export function reachable(graph: Map<string, ImportEdge[]>, start: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length > 0) {
    const cur = queue.shift()!;
    for (const e of graph.get(cur) ?? []) {
      if (e.to && !seen.has(e.to)) {
        seen.set(e.to, [...seen.get(cur)!, e.to]);
        queue.push(e.to);
      }
    }
  }
  return seen;
}

export function checkArchitecture(graph: Map<string, ImportEdge[]>): Violation[] {
  const violations: Violation[] = [];
  for (const [file, edges] of graph) {
    const pkg = /^packages\/([^/]+)\//.exec(file)?.[1];
    if (pkg === "server") {
      for (const [reached, chain] of reachable(graph, file)) {
        const inSignal = reached.startsWith("packages/signal/");
        if (
          inSignal &&
          !SERVER_SIGNAL_ALLOWED.some((a) => reached === a || (a.endsWith("/") && reached.startsWith(a)))
        ) {
          violations.push({
            rule: "server-no-decryption",
            file,
            detail: `reaches ${reached} via ${chain.join(" -> ")}`,
          });
        }
        if (reached.startsWith("packages/client/") || reached.startsWith("packages/cli/")) {
          violations.push({ rule: "server-no-client", file, detail: `reaches ${reached} via ${chain.join(" -> ")}` });
        }
      }
    }
    for (const e of edges) {
      if (pkg === "wire" && (e.specifier.startsWith("@parley/") || (e.to && !e.to.startsWith("packages/wire/")))) {
        violations.push({ rule: "wire-standalone", file, detail: `imports ${e.specifier}` });
      }
      if (pkg && BROWSER_PACKAGES.includes(pkg) && builtins.has(e.specifier) && !file.endsWith(".node.ts")) {
        violations.push({
          rule: "browser-safe",
          file,
          detail: `imports Node built-in ${e.specifier} outside a *.node.ts file`,
        });
      }
      if (e.to === null && (e.specifier.startsWith(".") || e.specifier.startsWith("@parley/"))) {
        violations.push({ rule: "resolvable", file, detail: `cannot resolve ${e.specifier}` });
      }
    }
  }
  return violations;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
  const v = checkArchitecture(buildGraph(root));
  for (const x of v) console.error(`${x.rule}: ${x.file}: ${x.detail}`);
  console.log(v.length === 0 ? "architecture: ok" : `architecture: ${v.length} violation(s)`);
  process.exit(v.length === 0 ? 0 : 1);
}
