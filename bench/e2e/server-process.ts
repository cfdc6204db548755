// Starts a real `parley serve` (launcher → cluster primary → workers) as its
// own process group, waits until it answers, and stops the whole group.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { request } from "node:http";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const PARLEY_BIN = fileURLToPath(new URL("../../packages/cli/bin/parley.js", import.meta.url));
const PARLEY_MAIN = fileURLToPath(new URL("../../packages/cli/src/main-entry.ts", import.meta.url));
const PARLEY_DIST_MAIN = fileURLToPath(new URL("../../packages/cli/dist/main-entry.js", import.meta.url));
const REPO = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Compiles the packages (`npm run build`, tsc -b: about a second when up to date), for
 * `startServerProcess({ dist: true })`.
 */
export function buildDist(): void {
  execFileSync("npm", ["run", "--silent", "build"], { cwd: REPO, stdio: "inherit" });
}

export interface ServerProcessOptions {
  dataDir: string;
  workers: number;
  logLevel?: string;
  /** Directory for V8 CPU profiles of every server process (written when they exit). */
  cpuProfileDir?: string;
  /**
   * Run the compiled build (plain node, what a deployment runs; call buildDist() first) instead of
   * the TypeScript sources through tsx, whose loader and keep-names helpers cost start-up time and
   * memory per connection (every named closure gets a property table).
   */
  dist?: boolean;
  /** More `parley serve` flags. */
  extraArgs?: string[];
}

export interface RunningServer {
  pid: number;
  httpPort: number;
  tcpPort: number;
  stop(): Promise<void>;
}

/**
 * Stops a process started as the leader of its own process group: SIGTERM to the leader (unless it
 * already exited), up to `graceMs` for it and the rest of its group to end, then SIGKILL to
 * whatever is left of the group.
 */
export async function stopProcessGroup(
  pid: number,
  exit: Promise<void>,
  exited: boolean,
  graceMs = 15_000,
): Promise<void> {
  const groupAlive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!exited) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  await Promise.race([exit, new Promise((r) => setTimeout(r, graceMs))]);
  while (groupAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (groupAlive()) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export async function startServerProcess(options: ServerProcessOptions): Promise<RunningServer> {
  const httpPort = await freePort();
  let tcpPort = await freePort();
  while (tcpPort === httpPort) tcpPort = await freePort();
  const serveArgs = [
    "serve",
    "--dev",
    "--workers",
    String(options.workers),
    "--port",
    String(httpPort),
    "--tcp-port",
    String(tcpPort),
    "--data",
    options.dataDir,
    "--log-level",
    options.logLevel ?? "warn",
    ...(options.extraArgs ?? []),
  ];
  // Profiling: run the entry directly (the bin launcher does not pass node flags on); node:cluster
  // workers inherit the primary's execArgv, so every worker writes its own profile when it exits.
  const nodeFlags = options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
  // Extra node flags for every server process (e.g. PARLEY_BENCH_SERVER_NODE_FLAGS=--trace-gc).
  nodeFlags.push(...(process.env.PARLEY_BENCH_SERVER_NODE_FLAGS ?? "").split(" ").filter((f) => f !== ""));
  const args = options.dist
    ? [...nodeFlags, PARLEY_DIST_MAIN, ...serveArgs]
    : nodeFlags.length > 0
      ? [...nodeFlags, "--conditions=source", "--import", "tsx", PARLEY_MAIN, ...serveArgs]
      : [PARLEY_BIN, ...serveArgs];
  // detached: its own process group, so stop() reaches the launcher, the primary and every worker.
  const child: ChildProcess = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not start parley serve");
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exit.then(() => {
    exited = true;
  });

  // SIGTERM to the root only: the launcher forwards it to the primary, which stops its workers in
  // order (signalling the whole group at once makes workers talk to a primary that is already gone).
  const stop = () => stopProcessGroup(pid, exit, exited);

  const deadline = Date.now() + 60_000;
  while (!(await healthy(httpPort))) {
    if (exited) throw new Error("parley serve exited during start-up");
    if (Date.now() > deadline) {
      await stop();
      throw new Error("parley serve did not become healthy within 60 s");
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { pid, httpPort, tcpPort, stop };
}
