// Shared setup of the media transfer tests: a real server on loopback, a device registered
// with the SDK, and a TCP proxy that breaks one connection after a number of bytes.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig, type ServerConfig, type ServerHandle, startServer } from "@parley/server";
import pino from "pino";
import { openClient, type ParleyClient } from "../src/index.node.ts";
import { type MediaUploadCredentials, mediaUploadCredentials } from "../src/media/index.node.ts";

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `parley-media-${prefix}-`));
}

export interface MediaWorld {
  server: ServerHandle;
  baseUrl: string;
  dataDir: string;
  client: ParleyClient;
  credentials: MediaUploadCredentials;
  dirs: string[];
  stop(): Promise<void>;
}

export async function startMediaWorld(overrides: Partial<ServerConfig> = {}): Promise<MediaWorld> {
  const dataDir = tempDir("server");
  const profile = tempDir("profile");
  const server = await startServer(
    { ...defaultConfig(), workers: 0, port: 0, tcpPort: 0, dev: true, dataDir, logLevel: "silent", ...overrides },
    { log: pino({ level: "silent" }) },
  );
  const client = await openClient({ dir: profile, serverUrl: `ws://127.0.0.1:${server.httpPort}/ws`, preKeyBatch: 2 });
  const r = await client.register(`media${Math.floor(Math.random() * 1e9)}`);
  if (r.status !== "registered") throw new Error("registration did not complete");
  const dirs = [dataDir, profile];
  return {
    server,
    baseUrl: `http://127.0.0.1:${server.httpPort}`,
    dataDir,
    client,
    credentials: mediaUploadCredentials(client.store),
    dirs,
    async stop() {
      await client.stop();
      await server.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

export interface CuttingProxy {
  url: string;
  /** Connections broken so far. */
  cuts: number;
  close(): Promise<void>;
}

/**
 * Forwards to 127.0.0.1:`port`; the first `times` connections that carry more than `afterBytes`
 * in the given direction are cut there (both sockets destroyed), as a dropped network would.
 */
export async function cuttingProxy(
  port: number,
  direction: "up" | "down",
  afterBytes: number,
  times = 1,
): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  const state = { cuts: 0 };
  const server: Server = createServer((inbound) => {
    const outbound = tcpConnect(port, "127.0.0.1");
    sockets.add(inbound).add(outbound);
    let moved = 0;
    const cut = () => {
      state.cuts++;
      inbound.destroy();
      outbound.destroy();
    };
    const watch = (from: Socket, to: Socket, counted: boolean) => {
      from.on("data", (chunk: Buffer) => {
        if (counted && state.cuts < times) {
          moved += chunk.length;
          if (moved > afterBytes) {
            to.write(chunk.subarray(0, chunk.length - (moved - afterBytes)), cut);
            from.pause();
            return;
          }
        }
        if (!to.write(chunk)) from.pause();
      });
      to.on("drain", () => from.resume());
      from.on("error", () => to.destroy());
      from.on("close", () => to.end());
    };
    watch(inbound, outbound, direction === "up");
    watch(outbound, inbound, direction === "down");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const proxyPort = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${proxyPort}`,
    get cuts() {
      return state.cuts;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function wav(samples: Int16Array, sampleRate: number, channels = 1): Uint8Array {
  const data = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  const out = new Uint8Array(44 + data.length);
  const v = new DataView(out.buffer);
  out.set(new TextEncoder().encode("RIFF"), 0);
  v.setUint32(4, 36 + data.length, true);
  out.set(new TextEncoder().encode("WAVEfmt "), 8);
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * channels * 2, true);
  v.setUint16(32, channels * 2, true);
  v.setUint16(34, 16, true);
  out.set(new TextEncoder().encode("data"), 36);
  v.setUint32(40, data.length, true);
  out.set(data, 44);
  return out;
}

/** A 16-bit mono WAV: a tone whose loudness rises linearly over the recording. */
export function rampWav(seconds: number, sampleRate = 8000): Uint8Array {
  const n = seconds * sampleRate;
  const s = new Int16Array(n);
  for (let i = 0; i < n; i++) s[i] = Math.round(Math.sin(i / 3) * 30000 * (i / n));
  return wav(s, sampleRate);
}
