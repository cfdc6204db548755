// Shared helpers of the end-to-end tests: a real server on loopback, real
// encrypted SQLite profiles in temp directories.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openClient, type ParleyClient } from "@parley/client";
import {
  type Clock,
  defaultConfig,
  type ServerConfig,
  type ServerHandle,
  startServer,
  type Verifier,
} from "@parley/server";
import pino from "pino";

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `parley-${prefix}-`));
}

export async function startTestServer(
  overrides: Partial<ServerConfig> = {},
  clock?: Clock,
  verifier?: Verifier,
): Promise<{ server: ServerHandle; url: string; tcpUrl: string; dataDir: string; stop(): Promise<void> }> {
  const dataDir = overrides.dataDir ?? tempDir("server");
  const config: ServerConfig = {
    ...defaultConfig(),
    port: 0,
    tcpPort: 0,
    workers: 0,
    dev: true,
    dataDir,
    logLevel: "silent",
    ...overrides,
  };
  // PARLEY_TEST_LOG=<file> keeps the server's debug log of a test run (for diagnosing failures).
  const log = process.env.PARLEY_TEST_LOG
    ? pino({ level: "debug" }, pino.destination({ dest: process.env.PARLEY_TEST_LOG, sync: true }))
    : pino({ level: "silent" });
  const server = await startServer(config, { log, ...(clock ? { clock } : {}), ...(verifier ? { verifier } : {}) });
  return {
    server,
    url: `ws://127.0.0.1:${server.httpPort}/ws`,
    tcpUrl: `tcp://127.0.0.1:${server.tcpPort}`,
    dataDir,
    async stop() {
      await server.close();
      if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A registered, connected client with a fresh profile. */
export async function newUser(
  name: string,
  serverUrl: string,
  dir = tempDir(`profile-${name}`),
): Promise<ParleyClient> {
  const client = await openClient({ dir, serverUrl, preKeyBatch: 5, reconnect: true });
  const r = await client.register(name);
  if (r.status !== "registered") throw new Error(`registration of ${name} did not complete: ${r.status}`);
  await client.start();
  return client;
}

export function waitFor<T>(predicate: () => T | undefined | false, timeoutMs = 15_000, what = "condition"): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      let v: T | undefined | false;
      try {
        v = predicate();
      } catch (err) {
        return reject(err);
      }
      if (v) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** A free TCP port on 127.0.0.1 (bound and released; fine for tests that restart a server on it). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as import("node:net").AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export const PARLEY_BIN = new URL("../bin/parley.js", import.meta.url).pathname;

/** `parley serve` as a real process group (primary + workers) on fixed ports. */
export async function startServerProcess(options: {
  dataDir: string;
  port: number;
  tcpPort: number;
  workers?: number;
  dev?: boolean;
  logFile?: string;
}) {
  const { spawn } = await import("node:child_process");
  const { openSync } = await import("node:fs");
  const args = [
    PARLEY_BIN,
    "serve",
    "--data",
    options.dataDir,
    "--port",
    String(options.port),
    "--tcp-port",
    String(options.tcpPort),
    "--workers",
    String(options.workers ?? 2),
    "--log-level",
    "info",
  ];
  if (options.dev ?? true) args.push("--dev");
  const log = options.logFile ? openSync(options.logFile, "a") : "ignore";
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", log, log] });
  const url = `ws://127.0.0.1:${options.port}/ws`;
  await waitForHealthy(options.port, 30_000);
  const groupKill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // already gone
    }
  };
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    url,
    child,
    /** kill -9 of the whole server (primary and workers). */
    async kill9() {
      groupKill("SIGKILL");
      await exited;
      await new Promise((r) => setTimeout(r, 200));
    },
    async stop() {
      groupKill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      groupKill("SIGKILL");
    },
  };
}

export async function waitForHealthy(port: number, timeoutMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`server on ${port} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
