// A real server (in-process worker) with two devices inserted straight into its storage, each
// holding a real identity key pair, so tests can sign media upload headers without the SDK.
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  defaultConfig,
  ManualClock,
  type ServerConfig,
  type ServerHandle,
  SqliteStorage,
  startServer,
} from "@parley/server";
import { encodePublicKey, generateIdentityKeyPair, type IdentityKeyPair, xeddsaSign } from "@parley/signal";
import pino from "pino";
import { newTestDevice } from "../../src/storage/conformance.ts";

export interface Device {
  user: string;
  device: number;
  identity: IdentityKeyPair;
}

export interface Harness {
  server: ServerHandle;
  port: number;
  dataDir: string;
  clock: ManualClock;
  alice: Device;
  bob: Device;
  auth(who: Device, tsMs?: number): string;
  stop(): Promise<void>;
}

export async function startMediaServer(overrides: Partial<ServerConfig> = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), "parley-media-server-"));
  const clock = new ManualClock(Date.now());
  const storage = new SqliteStorage({ dataDir, clock });
  const devices: Device[] = [];
  for (const user of ["alice", "bob"]) {
    const identity = generateIdentityKeyPair();
    await storage.createAccount(user, { ...newTestDevice(), identityKey: encodePublicKey(identity.publicKey) });
    devices.push({ user, device: 1, identity });
  }
  await storage.close();
  const config: ServerConfig = {
    ...defaultConfig(),
    workers: 0,
    port: 0,
    tcpPort: 0,
    dev: true,
    dataDir,
    logLevel: "silent",
    ...overrides,
  };
  const server = await startServer(config, { clock, log: pino({ level: "silent" }) });
  return {
    server,
    port: server.httpPort,
    dataDir,
    clock,
    alice: devices[0]!,
    bob: devices[1]!,
    auth(who, tsMs = clock.now()) {
      const ts = Math.floor(tsMs / 1000);
      const message = new TextEncoder().encode(`parley-media-upload|${who.user}|${who.device}|${ts}`);
      const sig = Buffer.from(xeddsaSign(who.identity.privateKey, message)).toString("base64url");
      return `Parley ${who.user}:${who.device}:${ts}:${sig}`;
    },
    async stop() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP request: the path goes out exactly as given (no URL normalization). */
export function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Uint8Array,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`, { cause: err })));
    req.end(body);
  });
}

export function errorCode(a: Answer): string {
  return (JSON.parse(a.body.toString("utf8")) as { error: string }).error;
}
