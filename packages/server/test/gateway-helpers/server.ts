// An in-process Parley server (workers: 0) on loopback ports for gateway tests,
// with its log captured in memory at debug level so tests can read what the
// server decided (close codes, handshake failures) without parsing stdout.
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import type { Clock } from "../../src/clock.ts";
import { defaultConfig, type ServerConfig } from "../../src/config.ts";
import { type ServerHandle, startServer } from "../../src/server.ts";

export type LogRecord = Record<string, unknown> & { msg?: string; level: number };

export interface TestServer {
  server: ServerHandle;
  config: ServerConfig;
  /** WebSocket transport URL. */
  url: string;
  tcpUrl: string;
  dataDir: string;
  logs: LogRecord[];
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `parley-${prefix}-`));
}

export async function startTestServer(overrides: Partial<ServerConfig> = {}, clock?: Clock): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? tempDir("gateway");
  // tcpPort 0 disables the TCP listener, so take a free port unless told otherwise.
  const tcpPort = overrides.tcpPort ?? (await freePort());
  const config: ServerConfig = {
    ...defaultConfig(),
    port: 0,
    workers: 0,
    dev: true,
    dataDir,
    logLevel: "debug",
    ...overrides,
    tcpPort,
  };
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") logs.push(JSON.parse(line) as LogRecord);
      }
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  const server = await startServer(config, { log, ...(clock ? { clock } : {}) });
  return {
    server,
    config,
    url: `ws://127.0.0.1:${server.httpPort}/ws`,
    tcpUrl: `tcp://127.0.0.1:${server.tcpPort}`,
    dataDir,
    logs,
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${server.httpPort}/metrics`);
      return res.text();
    },
    async stop() {
      await server.close();
      if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The value of an unlabelled sample in Prometheus text (NaN when absent). */
export function metricValue(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
