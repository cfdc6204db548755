// Server configuration: defaults < environment (PARLEY_*) < command-line flags.
// Every setting is validated at start; an invalid one stops the server with a
// message that names the setting and where it came from.
import { availableParallelism } from "node:os";
import { resolve } from "node:path";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface ServerConfig {
  /** Address both listeners bind to. */
  host: string;
  /** HTTP port: WebSocket transport (path /ws), /healthz, /metrics. */
  port: number;
  /** Raw TCP transport port; 0 = disabled. */
  tcpPort: number;
  dataDir: string;
  logLevel: LogLevel;
  /** Accept registrations without a verification code (local use, scripts, tests). */
  dev: boolean;
  /** Worker processes; each holds its own connections (~20,000 sockets per process on these machines). */
  workers: number;
  /** Undelivered queue entries older than this are purged. */
  retentionDays: number;
  /** Highest number of unacknowledged pushes per connection. */
  deliveryWindow: number;
  /** Largest media blob the content store accepts, in bytes (default 100 MiB); beyond: 413. */
  mediaMaxBytes?: number;
  /** Media blobs older than this are deleted (default 30). */
  mediaRetentionDays?: number;
  /**
   * Cap of each V8 young-generation semi-space in a cluster worker, MiB (0: V8's default, 16).
   * Smaller suits many mostly idle connections: with 4, idle RSS per connection was ~15% lower
   * after a login storm (100,000 connections: 7.4–8.0 vs 9.2 KiB), at ~10% of peak message
   * throughput (more frequent scavenges). Larger suits heavy messaging: with 64, 2 workers on 2
   * cores relayed ~25% more messages/s at full load than with 16 (young-generation GC fell from
   * ~17% to ~10% of their CPU), at up to ~150 MiB more memory per busy worker.
   */
  workerSemiSpaceMb?: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
  }
}

interface Spec {
  flag: string;
  env: string;
  parse(raw: string, origin: string): unknown;
}

function integer(min: number, max: number) {
  return (raw: string, origin: string): number => {
    if (!/^\d+$/.test(raw)) throw new ConfigError(origin, `${origin} must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(origin, `${origin} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

function boolean(raw: string, origin: string): boolean {
  if (["1", "true", "yes", "on", ""].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new ConfigError(origin, `${origin} must be true or false, got "${raw}"`);
}

const SPECS: Record<keyof ServerConfig, Spec> = {
  host: {
    flag: "--host",
    env: "PARLEY_HOST",
    parse: (raw, origin) => {
      if (!/^[\w.:-]+$/.test(raw)) throw new ConfigError(origin, `${origin} is not a host name or address: "${raw}"`);
      return raw;
    },
  },
  port: { flag: "--port", env: "PARLEY_PORT", parse: integer(0, 65535) },
  tcpPort: { flag: "--tcp-port", env: "PARLEY_TCP_PORT", parse: integer(0, 65535) },
  dataDir: {
    flag: "--data",
    env: "PARLEY_DATA",
    parse: (raw, origin) => {
      if (raw.trim() === "") throw new ConfigError(origin, `${origin} must not be empty`);
      return resolve(raw);
    },
  },
  logLevel: {
    flag: "--log-level",
    env: "PARLEY_LOG_LEVEL",
    parse: (raw, origin) => {
      if (!LOG_LEVELS.includes(raw as LogLevel)) {
        throw new ConfigError(origin, `${origin} must be one of ${LOG_LEVELS.join(", ")}, got "${raw}"`);
      }
      return raw;
    },
  },
  dev: { flag: "--dev", env: "PARLEY_DEV", parse: boolean },
  workers: { flag: "--workers", env: "PARLEY_WORKERS", parse: integer(0, 64) },
  retentionDays: { flag: "--retention-days", env: "PARLEY_RETENTION_DAYS", parse: integer(1, 3650) },
  deliveryWindow: { flag: "--delivery-window", env: "PARLEY_DELIVERY_WINDOW", parse: integer(1, 10_000) },
  mediaMaxBytes: { flag: "--media-max-bytes", env: "PARLEY_MEDIA_MAX_BYTES", parse: integer(1, 2 ** 50) },
  mediaRetentionDays: {
    flag: "--media-retention-days",
    env: "PARLEY_MEDIA_RETENTION_DAYS",
    parse: integer(1, 3650),
  },
  workerSemiSpaceMb: { flag: "--worker-semi-space-mb", env: "PARLEY_WORKER_SEMI_SPACE_MB", parse: integer(0, 1024) },
};

export function defaultConfig(): ServerConfig {
  return {
    host: "127.0.0.1",
    port: 7420,
    tcpPort: 7421,
    dataDir: resolve("parley-data"),
    logLevel: "info",
    dev: false,
    // 0 = run in the current process; otherwise one worker per core (at least 2 so routing between workers is always exercised).
    workers: Math.max(2, availableParallelism()),
    retentionDays: 30,
    deliveryWindow: 256,
    mediaMaxBytes: 100 * 1024 * 1024,
    mediaRetentionDays: 30,
    workerSemiSpaceMb: 0,
  };
}

/**
 * Builds the configuration from environment and argv (argv: only the flags, e.g. ["--port", "8080", "--dev"]).
 * Unknown flags are errors: a typo must not silently fall back to a default.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const [key, spec] of Object.entries(SPECS)) {
    const raw = env[spec.env];
    if (raw !== undefined) config[key] = spec.parse(raw, spec.env);
  }
  const byFlag = new Map(Object.entries(SPECS).map(([key, spec]) => [spec.flag, { key, spec }]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const entry = byFlag.get(flag);
    if (!entry) throw new ConfigError(flag, `unknown option ${flag}`);
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (entry.spec.parse === boolean) raw = "true";
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new ConfigError(flag, `${flag} needs a value`);
      raw = next;
      i++;
    }
    config[entry.key] = entry.spec.parse(raw, flag);
  }
  const result = config as unknown as ServerConfig;
  if (result.tcpPort !== 0 && result.tcpPort === result.port) {
    throw new ConfigError("--tcp-port", `--tcp-port (${result.tcpPort}) must differ from --port`);
  }
  return result;
}

export const CONFIG_HELP = Object.entries(SPECS)
  .map(
    ([key, s]) =>
      `  ${s.flag.padEnd(18)} ${s.env.padEnd(24)} default: ${String(defaultConfig()[key as keyof ServerConfig])}`,
  )
  .join("\n");
