// Shared helpers of the end-to-end tests: a real server on loopback, real
// encrypted SQLite profiles in temp directories.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openClient, type ParleyClient } from "@parley/client";
import { type Clock, defaultConfig, type ServerConfig, type ServerHandle, startServer } from "@parley/server";
import pino from "pino";

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `parley-${prefix}-`));
}

export async function startTestServer(
  overrides: Partial<ServerConfig> = {},
  clock?: Clock,
): Promise<{ server: ServerHandle; url: string; tcpUrl: string; dataDir: string; stop(): Promise<void> }> {
  const dataDir = overrides.dataDir ?? tempDir("server");
  const config: ServerConfig = { ...defaultConfig(), port: 0, tcpPort: 0, workers: 0, dev: true, dataDir, logLevel: "silent", ...overrides };
  const server = await startServer(config, { log: pino({ level: "silent" }), ...(clock ? { clock } : {}) });
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
export async function newUser(name: string, serverUrl: string, dir = tempDir(`profile-${name}`)): Promise<ParleyClient> {
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
