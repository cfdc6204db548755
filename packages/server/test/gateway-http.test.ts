// The HTTP side of a server: /healthz and /metrics (Prometheus text), first on
// an in-process server, then on a real multi-process `parley serve --workers 2`
// where /metrics must merge both workers and clients on different workers must
// reach each other.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { hex, login, messageTo, type RawClient, registerRaw } from "./gateway-helpers/raw-client.ts";
import { freePort, metricValue, startTestServer, type TestServer } from "./gateway-helpers/server.ts";

/** Checks the Prometheus text exposition format line by line and returns the samples. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === "TYPE") {
        assert.match(meta[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line);
        typed.add(meta[2]!);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+|\+Inf|NaN)$/.exec(
      line,
    );
    assert.ok(sample, `not a Prometheus sample line: ${line}`);
    const family = sample[1]!.replace(/_(bucket|sum|count)$/, "");
    assert.ok(typed.has(sample[1]!) || typed.has(family), `sample without a TYPE line: ${line}`);
    samples.set(`${sample[1]}${sample[2] ?? ""}`, Number(sample[4]));
  }
  return samples;
}

async function get(port: number, path: string, timeoutMs?: number) {
  // A fresh connection per request, so requests to a cluster spread over its workers.
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: { connection: "close" },
    ...(timeoutMs !== undefined ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
  });
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

/** `parley serve --dev --workers 2` in its own process group (so a test can kill all it started). */
function spawnClusterServe(args: string[]): ChildProcess {
  const bin = fileURLToPath(new URL("../../cli/bin/parley.js", import.meta.url));
  return spawn(process.execPath, [bin, "serve", "--dev", "--workers", "2", "--log-level", "warn", ...args], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
}

describe("/healthz and /metrics of an in-process server", () => {
  let env: TestServer;
  before(async () => {
    env = await startTestServer();
  });
  after(async () => {
    await env?.stop();
  });

  it("answers /healthz with 200 JSON and unknown paths with 404", async () => {
    const health = await get(env.server.httpPort, "/healthz");
    assert.equal(health.status, 200);
    assert.match(health.type, /^application\/json/);
    const body = JSON.parse(health.body) as { status: string; pid: number; connections: number };
    assert.equal(body.status, "ok");
    assert.equal(body.pid, process.pid);
    assert.equal(body.connections, 0);
    const missing = await get(env.server.httpPort, "/nope");
    assert.equal(missing.status, 404);
  });

  it("exposes Prometheus metrics whose counts follow the traffic", async () => {
    const first = await get(env.server.httpPort, "/metrics");
    assert.equal(first.status, 200);
    assert.match(first.type, /^text\/plain/);
    const m0 = parsePrometheus(first.body);
    for (const name of [
      "parley_workers",
      "parley_connections",
      "parley_messages_in_total",
      "parley_envelopes_queued_total",
      "parley_envelopes_pushed_total",
      "parley_envelopes_acked_total",
      "parley_queue_depth",
      'parley_commit_latency_ms_bucket{le="+Inf"}',
      "parley_commit_latency_ms_count",
      'parley_delivery_latency_ms_bucket{le="+Inf"}',
      "parley_delivery_latency_ms_sum",
    ]) {
      assert.ok(m0.has(name), `missing ${name}`);
    }
    assert.equal(m0.get("parley_workers"), 1);
    assert.equal(m0.get("parley_connections"), 0);

    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => registerRaw(env.url, n)));
    const a = await login(env.url, alice!);
    const b = await login(env.tcpUrl, bob!);
    const n = 10;
    for (let i = 0; i < n; i++) a.send(messageTo("bob", [1], randomBytes(100)));
    await b.waitFor((c) => c.deliveries().length === n, "bob's deliveries");
    // Carol is offline: her messages wait in the queue.
    for (let i = 0; i < 3; i++) a.send(messageTo("carol", [1], randomBytes(100)));
    await a.waitFor((c) => c.received.filter((s) => s.kind === "ack").length === n + 3, "acks");
    // Bob's devacks are processed (the delivered receipts reach alice) before we scrape.
    await a.waitFor((c) => c.received.filter((s) => s.kind === "receipt").length > 0, "a delivered receipt");

    const m1 = parsePrometheus(await env.metrics());
    const delta = (name: string) => (m1.get(name) ?? Number.NaN) - (m0.get(name) ?? Number.NaN);
    assert.equal(m1.get("parley_connections"), 2);
    assert.equal(delta("parley_messages_in_total"), n + 3);
    assert.equal(delta("parley_commit_latency_ms_count"), n + 3);
    assert.ok(delta('parley_commit_latency_ms_bucket{le="+Inf"}') === n + 3);
    assert.ok(delta("parley_envelopes_queued_total") >= n + 3);
    assert.ok(delta("parley_envelopes_pushed_total") >= n);
    assert.ok(delta("parley_envelopes_acked_total") >= n);
    assert.ok(delta("parley_delivery_latency_ms_count") >= n, "delivery latency observed on acks");
    assert.ok((m1.get("parley_queue_depth") ?? 0) >= 3, `queue depth ${m1.get("parley_queue_depth")}: carol's 3 wait`);

    const c = await login(env.url, carol!);
    await c.waitFor((x) => x.deliveries().length === 3, "carol's backlog");
    await a.waitFor(
      (x) =>
        x.received.filter((s) => s.kind === "receipt").flatMap((s) => (s.kind === "receipt" ? s.ids : [])).length >=
        n + 3,
      "all delivered receipts",
    );
    // Everything was acknowledged: nothing left in the queues except alice's unacked receipts, which she auto-acks.
    const drained = async () => metricValue(await env.metrics(), "parley_queue_depth");
    for (let i = 0; i < 50 && (await drained()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await drained(), 0);
    assert.equal(metricValue(await env.metrics(), "parley_connections"), 3);
    for (const x of [a, b, c]) x.close();
    await Promise.all([a, b, c].map((x) => x.waitClosed()));
    for (let i = 0; i < 50 && metricValue(await env.metrics(), "parley_connections") > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(metricValue(await env.metrics(), "parley_connections"), 0);
  });
});

describe("/metrics and routing of a real `parley serve --workers 2`", () => {
  let child: ChildProcess;
  let dataDir: string;
  let port: number;
  let tcpPort: number;
  const clients: RawClient[] = [];

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "parley-cluster-"));
    const tcpListenPort = await freePort();
    // Port 0 under node:cluster: the primary binds one random port and shares it with every worker.
    child = spawnClusterServe(["--port", "0", "--tcp-port", String(tcpListenPort), "--data", dataDir]);
    let stderr = "";
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`parley serve did not start: ${stderr}`)), 30_000);
      child.stderr!.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
        const m = /ws:\/\/[^:]+:(\d+)\/ws/.exec(stderr);
        const t = /tcp:\/\/[^:]+:(\d+)/.exec(stderr);
        if (m && t) {
          clearTimeout(timer);
          tcpPort = Number(t[1]);
          resolve(Number(m[1]));
        }
      });
      child.once("exit", (code) => reject(new Error(`parley serve exited with ${code}: ${stderr}`)));
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM"); // the launcher forwards it to the primary, which stops its workers
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
      clearTimeout(timer);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("serves on the shared port 0 with both workers answering /healthz", async () => {
    assert.ok(port > 0);
    const pids = new Set<number>();
    for (let i = 0; i < 20 && pids.size < 2; i++) {
      const h = await get(port, "/healthz");
      assert.equal(h.status, 200);
      pids.add((JSON.parse(h.body) as { pid: number }).pid);
    }
    assert.equal(pids.size, 2, "both workers answer on the one port");
  });

  it("routes messages between clients on different workers and merges both workers' metrics", async () => {
    const url = `ws://127.0.0.1:${port}/ws`;
    const names = ["wanda", "wendy", "wilma", "willa"];
    const ids = await Promise.all(names.map((n) => registerRaw(url, n)));
    for (const id of ids) clients.push(await login(url, id));

    // Which worker holds how many connections: /healthz answers from one worker at a time.
    const perWorker = new Map<number, number>();
    for (let i = 0; i < 30 && perWorker.size < 2; i++) {
      const h = JSON.parse((await get(port, "/healthz")).body) as { pid: number; connections: number };
      perWorker.set(h.pid, h.connections);
    }
    const counts = [...perWorker.values()];
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      clients.length,
      `connections per worker: ${JSON.stringify([...perWorker])}`,
    );
    assert.ok(
      counts.every((c) => c > 0),
      "the clients are spread over both workers",
    );

    // Every client messages every other one: with clients on both workers, some pairs cross workers.
    const sent: { to: RawClient; id: string }[] = [];
    for (const from of clients) {
      for (const to of clients) {
        if (from === to) continue;
        const msg = messageTo(to.label, [1], randomBytes(64));
        if (msg.kind === "message") sent.push({ to, id: hex(msg.id) });
        from.send(msg);
      }
    }
    for (const { to, id } of sent) {
      await to.waitFor((c) => c.deliveries().some((d) => hex(d.id) === id), `delivery ${id} to ${to.label}`);
    }

    // Each worker counts on its own and a scrape merges snapshots taken at slightly different
    // moments: poll until the counters have settled (bounded), then check them exactly.
    let metrics = parsePrometheus((await get(port, "/metrics")).body);
    for (let i = 0; i < 50 && metrics.get("parley_messages_in_total") !== sent.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      metrics = parsePrometheus((await get(port, "/metrics")).body);
    }
    assert.equal(metrics.get("parley_workers"), 2);
    assert.equal(metrics.get("parley_connections"), clients.length); // summed over both workers
    assert.equal(metrics.get("parley_messages_in_total"), sent.length);
    assert.equal(metrics.get("parley_commit_latency_ms_count"), sent.length);
  });

  it("hands TCP connections to the worker owning their queues; messages and second ticks flow", async () => {
    const url = `tcp://127.0.0.1:${tcpPort}`;
    // 12 accounts: the chance that none lands on the other worker than its shard's is 2^-12.
    const names = Array.from({ length: 12 }, (_, i) => `tcp_${i}`);
    const ids = await Promise.all(names.map((n) => registerRaw(url, n)));
    const tcpClients: RawClient[] = [];
    for (const id of ids) {
      const c = await login(url, id);
      tcpClients.push(c);
      clients.push(c);
      // Sent at once after the login: it may reach the worker before or after the handoff.
      const next = ids[(ids.indexOf(id) + 1) % ids.length]!;
      c.send(messageTo(next.user, [next.device], randomBytes(32)));
    }
    // Each client gets its neighbour's message, acks it (autoAck) and the sender sees the receipt.
    for (const c of tcpClients) {
      await c.waitFor((x) => x.deliveries().length >= 1, `delivery to ${c.label}`);
      await c.waitFor(
        (x) => x.received.some((s) => s.kind === "receipt" && s.type === "delivered"),
        `delivered receipt for ${c.label}`,
      );
    }
    // About half of the logins land on the worker not owning the account.
    let metrics = parsePrometheus((await get(port, "/metrics")).body);
    for (let i = 0; i < 20 && metrics.get("parley_connections") !== clients.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      metrics = parsePrometheus((await get(port, "/metrics")).body);
    }
    assert.equal(metrics.get("parley_connections"), clients.length);
    assert.ok((metrics.get("parley_connection_handoffs_total") ?? 0) >= 1, "some connections were handed off");
    for (const c of tcpClients) assert.equal(c.closed, undefined, `${c.label} still connected`);
  });

  it("accepts TCP in the workers themselves: a registration completes while the primary is stopped", async () => {
    const health = JSON.parse((await get(port, "/healthz")).body) as { pid: number };
    // A worker's parent is the primary (field 4 of /proc/<pid>/stat; the name in field 2 has no spaces).
    const primary = Number(readFileSync(`/proc/${health.pid}/stat`, "utf8").split(" ")[3]);
    assert.ok(primary > 1);
    // With cluster's round-robin the primary accepts every connection: stopped, it would serve none.
    process.kill(primary, "SIGSTOP");
    try {
      const id = await registerRaw(`tcp://127.0.0.1:${tcpPort}`, "while_primary_stopped");
      assert.equal(id.user, "while_primary_stopped");
    } finally {
      process.kill(primary, "SIGCONT");
    }
  });

  // Last in this block: it kills both workers. Each worker accepts TCP on one listening socket that
  // worker slot 0 created and the primary keeps (src/tcp-listener.ts): a restarted worker, slot 0
  // included, gets it from the primary, so TCP logins go on when every original worker is gone.
  it("keeps serving TCP after both workers were killed and restarted", async () => {
    const workerPids = async () => {
      const pids = new Set<number>();
      for (let i = 0; i < 40 && pids.size < 2; i++) {
        // Bounded: a request the primary passed to a worker as it was killed gets no answer.
        const h = await get(port, "/healthz", 2000).catch(() => undefined);
        if (h?.status === 200) pids.add((JSON.parse(h.body) as { pid: number }).pid);
      }
      return pids;
    };
    const original = await workerPids();
    assert.equal(original.size, 2);
    for (const pid of original) {
      process.kill(pid, "SIGKILL");
      let now = await workerPids();
      for (let i = 0; i < 100 && (now.has(pid) || now.size < 2); i++) {
        await new Promise((r) => setTimeout(r, 100));
        now = await workerPids();
      }
      assert.ok(!now.has(pid) && now.size === 2, `worker ${pid} was replaced: ${[...now]}`);
    }
    const url = `tcp://127.0.0.1:${tcpPort}`;
    const [a, b] = await Promise.all(["after_restart_a", "after_restart_b"].map((n) => registerRaw(url, n)));
    const ca = await login(url, a!);
    const cb = await login(url, b!);
    clients.push(ca, cb);
    ca.send(messageTo(b!.user, [b!.device], randomBytes(32)));
    await cb.waitFor((x) => x.deliveries().length >= 1, "delivery after both workers restarted");
  });
});

describe("`parley serve --workers 2` whose port is taken", () => {
  for (const which of ["tcp", "http"] as const) {
    it(`exits at once with the cause when its ${which.toUpperCase()} port is in use (no restart loop)`, async () => {
      const blocker = createServer();
      const taken = await new Promise<number>((resolve) =>
        blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as AddressInfo).port)),
      );
      const dataDir = mkdtempSync(join(tmpdir(), "parley-port-taken-"));
      const other = await freePort();
      const [httpPort, tcpPort] = which === "tcp" ? [other, taken] : [taken, other];
      const child = spawnClusterServe([
        "--port",
        String(httpPort),
        "--tcp-port",
        String(tcpPort),
        "--host",
        "127.0.0.1",
        "--data",
        dataDir,
      ]);
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      let timer: NodeJS.Timeout | undefined;
      try {
        const code = await Promise.race([
          new Promise<number | null>((resolve) => child.once("exit", resolve)),
          new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), 30_000))),
        ]);
        assert.equal(code, 1, `exit code (stderr: ${stderr.slice(-2000)})`);
        assert.match(stderr, /could not start: .*EADDRINUSE/);
        assert.doesNotMatch(stderr, /starting a new one/);
      } finally {
        clearTimeout(timer);
        blocker.close();
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
