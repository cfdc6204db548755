// Debian's ejabberd as a standalone Erlang node that this benchmark owns: its
// own config, Mnesia spool and log in a temporary directory, a plain c2s
// listener on a free 127.0.0.1 port, started with `erl ... -s ejabberd`
// directly (no ejabberdctl, no systemd, no Erlang distribution, so no epmd or
// cookie is involved and nothing is shared with other Erlang services on the
// machine). Users are registered in bulk inside the VM right after start-up
// (an -eval running ejabberd_auth:try_register in parallel processes), which
// takes seconds for tens of thousands of users where one `ejabberdctl register`
// per user would take a VM start each.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, stopProcessGroup } from "../e2e/server-process.ts";

export class EjabberdError extends Error {
  override readonly name = "EjabberdError";
}

export const EJABBERD_DOMAIN = "localhost";

/** The ERL_LIBS directory holding ejabberd and its dependencies, or undefined when not installed. */
export function ejabberdLibs(): string | undefined {
  let libs = "/usr/lib/x86_64-linux-gnu";
  try {
    // Debian's ejabberdctl names the directory (multiarch path) it was built with.
    const ctl = readFileSync("/usr/sbin/ejabberdctl", "utf8");
    libs = /ERL_LIBS='([^']+)'/.exec(ctl)?.[1] ?? libs;
  } catch {
    return undefined;
  }
  try {
    const found = readdirSync(libs).some(
      (d) => d.startsWith("ejabberd-") && existsSync(join(libs, d, "ebin", "ejabberd.app")),
    );
    return found && existsSync("/usr/bin/erl") ? libs : undefined;
  } catch {
    return undefined;
  }
}

/** Installs Debian's ejabberd when it is missing (`apt-get update && apt-get install -y ejabberd`, as root). */
export function ensureEjabberd(log: (msg: string) => void): string {
  const have = ejabberdLibs();
  if (have) return have;
  if (process.getuid?.() !== 0) {
    throw new EjabberdError("ejabberd is not installed and this is not root: run `apt-get install -y ejabberd`");
  }
  log("ejabberd is not installed: apt-get update && apt-get install -y ejabberd");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update"], { stdio: ["ignore", "inherit", "inherit"], env });
  execFileSync("apt-get", ["install", "-y", "ejabberd"], { stdio: ["ignore", "inherit", "inherit"], env });
  const libs = ejabberdLibs();
  if (!libs) throw new EjabberdError("apt-get installed ejabberd but its ebin directory was not found");
  return libs;
}

export interface EjabberdOptions {
  /** Users registered at start-up: `${prefix}1` ... `${prefix}${count}`, all with `password`. */
  userPrefix: string;
  users: number;
  password: string;
  /** Parallel registration processes inside the VM. */
  registerProcesses?: number;
}

export interface RunningEjabberd {
  pid: number;
  port: number;
  domain: string;
  version: string;
  registered: number;
  registerMs: number;
  dir: string;
  stop(): Promise<void>;
}

/**
 * The configuration: plain c2s on 127.0.0.1 (no STARTTLS, no certificates), no shaper on the
 * listener, a listen backlog large enough for hundreds of concurrent logins, internal (Mnesia)
 * auth with plain password storage (SASL PLAIN checks without PBKDF2), mod_offline with the per-user
 * offline limit lifted (the offline workload stores 10,000), mod_stream_mgmt (the offline workload
 * asks <r/> to learn when messages are stored), mod_roster as any deployment has; no mod_mam.
 */
export function ejabberdConfig(port: number, users: number): string {
  return `# written by bench/vs-ejabberd (one run, deleted afterwards)
hosts:
  - ${EJABBERD_DOMAIN}
loglevel: warning
hide_sensitive_log_data: true
auth_method: internal
auth_password_format: plain
# every benchmark user fits the caches (the default of 1,000 entries thrashes at density)
cache_size: ${Math.max(1000, users + 1000)}
listen:
  -
    port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
    max_stanza_size: 262144
    backlog: 4096
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  max_user_offline_messages: 1000000
  max_user_sessions: 10
modules:
  mod_roster: {}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_stream_mgmt:
    resend_on_timeout: if_offline
`;
}

/** Erlang run by -eval after `-s ejabberd` returned: bulk registration, then a ready line on stdout. */
const REGISTER_EVAL = `
Prefix = list_to_binary(os:getenv("EJB_PREFIX")),
N = list_to_integer(os:getenv("EJB_USERS")),
Pw = list_to_binary(os:getenv("EJB_PASSWORD")),
Ws = list_to_integer(os:getenv("EJB_REGISTER_PROCS")),
Host = <<"${EJABBERD_DOMAIN}">>,
T0 = erlang:monotonic_time(millisecond),
Parent = self(),
Reg = fun(I) ->
  case ejabberd_auth:try_register(<<Prefix/binary, (integer_to_binary(I))/binary>>, Host, Pw) of
    ok -> ok;
    {error, exists} -> ok;
    E -> io:format("EJBENCH-FAILED register ~b: ~p~n", [I, E]), erlang:halt(3)
  end
end,
Pids = [spawn(fun() -> lists:foreach(Reg, lists:seq(W, N, Ws)), Parent ! {registered, self()} end)
        || W <- lists:seq(1, Ws)],
[receive {registered, P} -> ok end || P <- Pids],
{ok, V} = application:get_key(ejabberd, vsn),
io:format("EJBENCH-READY ~s ~b ~b~n", [V, N, erlang:monotonic_time(millisecond) - T0]).
`;

export async function startEjabberd(options: EjabberdOptions, log: (msg: string) => void): Promise<RunningEjabberd> {
  const libs = ejabberdLibs();
  if (!libs) throw new EjabberdError("ejabberd is not installed (ensureEjabberd first)");
  const dir = mkdtempSync(join(tmpdir(), "parley-vs-ejabberd-"));
  const spool = join(dir, "spool");
  const logs = join(dir, "log");
  mkdirSync(spool);
  mkdirSync(logs);
  const port = await freePort();
  const configPath = join(dir, "ejabberd.yml");
  writeFileSync(configPath, ejabberdConfig(port, options.users));

  const child: ChildProcess = spawn(
    "/usr/bin/erl",
    [
      // what ejabberdctl passes: kernel poll, room for 250,000 Erlang processes
      "+K",
      "true",
      "+P",
      "250000",
      "-noinput",
      "-noshell",
      "-mnesia",
      "dir",
      JSON.stringify(spool),
      "-s",
      "ejabberd",
      "-eval",
      REGISTER_EVAL,
    ],
    {
      cwd: dir,
      // its own process group: stop() reaches erl_child_setup and the port programs too
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        ERL_LIBS: libs,
        EJABBERD_CONFIG_PATH: configPath,
        EJABBERD_LOG_PATH: join(logs, "ejabberd.log"),
        ERL_CRASH_DUMP: join(logs, "erl_crash.dump"),
        ERL_MAX_PORTS: "65536",
        EJB_PREFIX: options.userPrefix,
        EJB_USERS: String(options.users),
        EJB_PASSWORD: options.password,
        EJB_REGISTER_PROCS: String(options.registerProcesses ?? 4),
      },
    },
  );
  const pid = child.pid;
  if (pid === undefined) throw new EjabberdError("could not start erl");
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exit.then(() => {
    exited = true;
  });
  let output = "";
  let ready: { version: string; registered: number; ms: number } | undefined;
  const onOutput = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
    const m = /EJBENCH-READY (\S+) (\d+) (\d+)/.exec(output);
    if (m && !ready) ready = { version: m[1]!, registered: Number(m[2]), ms: Number(m[3]) };
  };
  child.stdout?.on("data", onOutput);
  child.stderr?.on("data", onOutput);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // SIGTERM: the VM stops its applications in order (init:stop); then whatever is left is killed
      await stopProcessGroup(pid, exit, exited);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const deadline = Date.now() + 300_000;
  log(`starting ejabberd (erl -s ejabberd) on 127.0.0.1:${port}, registering ${options.users} users`);
  while (!ready) {
    if (exited || output.includes("EJBENCH-FAILED")) {
      const tail = output.slice(-3000);
      await stop();
      throw new EjabberdError(`ejabberd exited during start-up:\n${tail}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new EjabberdError(`ejabberd did not become ready within 300 s:\n${output.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // From here on only the ejabberd log file is of interest; keep the pipes drained.
  return {
    pid,
    port,
    domain: EJABBERD_DOMAIN,
    version: ready.version,
    registered: ready.registered,
    registerMs: ready.ms,
    dir,
    stop,
  };
}
