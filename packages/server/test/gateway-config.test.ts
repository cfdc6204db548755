// Server configuration: defaults < environment < flags, and every invalid
// setting stops the server with a ConfigError that names the setting (and
// `parley serve` turns it into a non-zero exit and a message naming it).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, defaultConfig, loadConfig } from "../src/config.ts";

const NO_ENV = {};

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

describe("loadConfig", () => {
  it("uses the documented defaults when nothing is set", () => {
    const c = loadConfig([], NO_ENV);
    assert.deepEqual(c, defaultConfig());
    assert.equal(c.port, 7420);
    assert.equal(c.tcpPort, 7421);
    assert.equal(c.host, "127.0.0.1");
    assert.equal(c.logLevel, "info");
    assert.equal(c.dev, false);
    assert.equal(c.retentionDays, 30);
    assert.ok(c.workers >= 2);
    assert.equal(c.dataDir, resolve("parley-data"));
  });

  it("lets the environment override defaults, and flags override the environment", () => {
    const env = {
      PARLEY_PORT: "8080",
      PARLEY_TCP_PORT: "8081",
      PARLEY_HOST: "0.0.0.0",
      PARLEY_DATA: "/tmp/parley-env",
      PARLEY_LOG_LEVEL: "warn",
      PARLEY_DEV: "true",
      PARLEY_WORKERS: "3",
      PARLEY_RETENTION_DAYS: "7",
      PARLEY_DELIVERY_WINDOW: "32",
    };
    const fromEnv = loadConfig([], env);
    assert.deepEqual(fromEnv, {
      ...defaultConfig(), // settings added later keep their defaults
      host: "0.0.0.0",
      port: 8080,
      tcpPort: 8081,
      dataDir: "/tmp/parley-env",
      logLevel: "warn",
      dev: true,
      workers: 3,
      retentionDays: 7,
      deliveryWindow: 32,
    });
    const both = loadConfig(
      [
        "--port",
        "9090",
        "--tcp-port=9091",
        "--data",
        "rel/dir",
        "--log-level",
        "debug",
        "--workers",
        "0",
        "--retention-days=90",
      ],
      env,
    );
    assert.equal(both.port, 9090);
    assert.equal(both.tcpPort, 9091);
    assert.equal(both.dataDir, resolve("rel/dir")); // made absolute
    assert.equal(both.logLevel, "debug");
    assert.equal(both.workers, 0);
    assert.equal(both.retentionDays, 90);
    assert.equal(both.host, "0.0.0.0"); // not overridden: the environment's value stays
    assert.equal(both.dev, true);
    assert.equal(loadConfig(["--dev=false"], env).dev, false);
    assert.equal(loadConfig(["--dev"], NO_ENV).dev, true);
    assert.equal(loadConfig([], { PARLEY_DEV: "0" }).dev, false);
  });

  it("accepts edge values: port 0 (any free port), TCP disabled, in-process workers", () => {
    const c = loadConfig(["--port", "0", "--tcp-port", "0", "--workers", "0", "--retention-days", "1"], NO_ENV);
    assert.equal(c.port, 0);
    assert.equal(c.tcpPort, 0); // 0 = TCP disabled; not "equal to --port"
    assert.equal(c.workers, 0);
    assert.equal(c.retentionDays, 1);
    assert.equal(loadConfig(["--port", "65535", "--tcp-port", "1", "--workers", "64"], NO_ENV).port, 65535);
    assert.equal(loadConfig(["--worker-semi-space-mb", "4"], NO_ENV).workerSemiSpaceMb, 4);
    assert.equal(loadConfig([], { PARLEY_WORKER_SEMI_SPACE_MB: "0" }).workerSemiSpaceMb, 0);
  });

  const invalid: [string, string[], Record<string, string>, string][] = [
    ["a port that is not a number", ["--port", "nope"], NO_ENV, "--port"],
    ["a port out of range", ["--port", "70000"], NO_ENV, "--port"],
    ["a negative port", ["--port=-1"], NO_ENV, "--port"],
    ["a fractional port", ["--port", "80.5"], NO_ENV, "--port"],
    ["a bad port in the environment", [], { PARLEY_PORT: "http" }, "PARLEY_PORT"],
    ["an empty port in the environment", [], { PARLEY_PORT: "" }, "PARLEY_PORT"],
    ["a bad TCP port", ["--tcp-port", "65536"], NO_ENV, "--tcp-port"],
    ["a negative semi-space", ["--worker-semi-space-mb", "-4"], NO_ENV, "--worker-semi-space-mb"],
    ["an unknown flag", ["--prot", "8080"], NO_ENV, "--prot"],
    ["a stray argument", ["8080"], NO_ENV, "8080"],
    ["a flag without its value", ["--port"], NO_ENV, "--port"],
    ["a flag followed by another flag", ["--data", "--dev"], NO_ENV, "--data"],
    ["an unknown log level", ["--log-level", "loud"], NO_ENV, "--log-level"],
    ["an unknown log level in the environment", [], { PARLEY_LOG_LEVEL: "verbose" }, "PARLEY_LOG_LEVEL"],
    ["an empty data directory", ["--data", ""], NO_ENV, "--data"],
    ["a blank data directory", ["--data=   "], NO_ENV, "--data"],
    ["an empty data directory in the environment", [], { PARLEY_DATA: "" }, "PARLEY_DATA"],
    ["the TCP port equal to the HTTP port", ["--port", "8000", "--tcp-port", "8000"], NO_ENV, "--tcp-port"],
    ["the TCP port equal to the default HTTP port", ["--tcp-port", "7420"], NO_ENV, "--tcp-port"],
    ["too many workers", ["--workers", "65"], NO_ENV, "--workers"],
    ["negative workers", ["--workers=-2"], NO_ENV, "--workers"],
    ["workers out of range in the environment", [], { PARLEY_WORKERS: "1000" }, "PARLEY_WORKERS"],
    ["a retention of 0 days", ["--retention-days", "0"], NO_ENV, "--retention-days"],
    ["a delivery window of 0", ["--delivery-window", "0"], NO_ENV, "--delivery-window"],
    ["a host with spaces", ["--host", "my host"], NO_ENV, "--host"],
    ["a boolean that is not one", [], { PARLEY_DEV: "maybe" }, "PARLEY_DEV"],
  ];
  for (const [what, argv, env, setting] of invalid) {
    it(`refuses ${what} with a ConfigError naming ${setting}`, () => {
      const err = configError(() => loadConfig(argv, env));
      assert.equal(err.setting, setting);
      assert.ok(err.message.includes(setting), `message "${err.message}" does not name ${setting}`);
    });
  }
});

describe("parley serve with an invalid setting", () => {
  const bin = fileURLToPath(new URL("../../cli/bin/parley.js", import.meta.url));

  function serve(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [bin, "serve", ...args], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
      });
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        fail(new Error(`parley serve ${args.join(" ")} did not exit: ${stderr}`));
      }, 15_000);
      child.on("exit", (code) => {
        clearTimeout(timer);
        done({ code, stderr });
      });
    });
  }

  it("exits non-zero with a message naming the setting (flags and environment)", async () => {
    const [port, unknown, env] = await Promise.all([
      serve(["--port", "nope"]),
      serve(["--dev", "--wokers", "2"]),
      serve(["--dev"], { PARLEY_WORKERS: "99" }),
    ]);
    for (const [r, setting] of [
      [port, "--port"],
      [unknown, "--wokers"],
      [env, "PARLEY_WORKERS"],
    ] as const) {
      assert.equal(r.code, 2, `exit code for ${setting}: ${r.code} (${r.stderr})`);
      assert.match(r.stderr, /invalid configuration/);
      assert.ok(r.stderr.includes(setting), `stderr does not name ${setting}: ${r.stderr}`);
    }
  });
});
