import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { newTestDevice } from "../src/storage/conformance.ts";
import { SqliteStorage } from "../src/storage/index.ts";

/**
 * Several server worker processes share one SQLite file. These tests run a real second process
 * (test/fixtures/storage-child.ts) against the file: one-time prekeys must still leave once, and
 * every enqueue a process saw resolve must survive that process being SIGKILLed.
 */
const CHILD = fileURLToPath(new URL("./fixtures/storage-child.ts", import.meta.url));

function startChild(args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ["--conditions=source", "--import", "tsx", CHILD, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Calls onLine for each complete stdout line; a partial last line (cut by SIGKILL) is dropped. */
function onLines(child: ChildProcessWithoutNullStreams, onLine: (line: string) => void): void {
  let buffered = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
    }
  });
}

function exited(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

function collectStderr(child: ChildProcessWithoutNullStreams): () => string {
  let text = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    text += chunk;
  });
  return () => text;
}

describe("SqliteStorage shared by several processes", () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "parley-storage-proc-"));
    file = join(dir, "parley.db");
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("hands out each one-time prekey once across two processes", async () => {
    const storage = new SqliteStorage({ file });
    try {
      const { account } = await storage.createAccount("shared.keys", newTestDevice());
      await storage.uploadPreKeys(account.id, 1, {
        ecOneTime: Array.from({ length: 60 }, (_, i) => ({ id: i + 1, publicKey: new Uint8Array(33).fill(i) })),
        kemOneTime: Array.from({ length: 60 }, (_, i) => ({
          id: i + 1,
          publicKey: new Uint8Array(1569).fill(i),
          signature: new Uint8Array(64),
        })),
      });
      const child = startChild(["take", file, account.id, "50"]);
      const stderr = collectStderr(child);
      const done = exited(child);
      const lines: string[] = [];
      const ready = new Promise<void>((resolve) =>
        onLines(child, (line) => {
          lines.push(line);
          if (line === "ready") resolve();
        }),
      );
      await Promise.race([ready, done.then(() => assert.fail(`child exited early: ${stderr()}`))]);
      child.stdin.write("go\n");
      // Spread our takes over several turns so both processes contend for the write lock.
      const mine = [];
      for (let round = 0; round < 10; round++) {
        mine.push(...(await Promise.all(Array.from({ length: 5 }, () => storage.takePreKeyBundle(account.id, 1)))));
      }
      const { code } = await done;
      assert.equal(code, 0, stderr());
      const theirs = JSON.parse(lines.at(-1)!) as { ec: number[]; kem: number[] };
      const ec = [...theirs.ec, ...mine.flatMap((b) => (b.ecPreKey ? [b.ecPreKey.id] : []))];
      const kem = [...theirs.kem, ...mine.filter((b) => !b.kemPreKeyIsLastResort).map((b) => b.kemPreKey.id)];
      assert.equal(ec.length, 60);
      assert.equal(new Set(ec).size, 60);
      assert.equal(kem.length, 60);
      assert.equal(new Set(kem).size, 60);
      assert.deepEqual(await storage.getPreKeyCounts(account.id, 1), { ecOneTime: 0, kemOneTime: 0 });
    } finally {
      await storage.close();
    }
  });

  it("keeps every enqueue a SIGKILLed process saw committed, while another process writes too", async () => {
    let accountId: string;
    {
      const setup = new SqliteStorage({ file });
      accountId = (await setup.createAccount("crash.test", newTestDevice())).account.id;
      await setup.close();
    }
    const child = startChild(["enqueue", file, accountId]);
    const stderr = collectStderr(child);
    const done = exited(child);
    const reported = new Map<number, number>();
    let reachedTarget: () => void = () => {};
    const target = new Promise<void>((resolve) => {
      reachedTarget = resolve;
    });
    onLines(child, (line) => {
      const [seq, n] = line.split(" ").map(Number);
      reported.set(seq!, n!);
      if (reported.size >= 3000) reachedTarget();
    });

    // This process writes to the same queue meanwhile.
    const parent = new SqliteStorage({ file });
    const parentSeqs: number[] = [];
    let stop = false;
    const parentWriter = (async () => {
      let i = 0;
      while (!stop) {
        const batch = Array.from({ length: 10 }, () =>
          parent.enqueue([{ accountId, deviceId: 1, envelope: new TextEncoder().encode(`parent-${i++}`) }]),
        );
        parentSeqs.push(...(await Promise.all(batch)).flat());
      }
    })();

    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 60_000).unref());
    await Promise.race([target, timeout, done]);
    child.kill("SIGKILL");
    const { signal } = await done;
    stop = true;
    await parentWriter;
    await parent.close();
    assert.equal(signal, "SIGKILL", `child ended on its own: ${stderr()}`);
    assert.ok(reported.size > 100, `child reported only ${reported.size} commits: ${stderr()}`);

    const reopened = new SqliteStorage({ file });
    try {
      const stored = new Map<number, { text: string; messageId: string | null }>();
      let after = 0;
      for (;;) {
        const page = await reopened.fetch(accountId, 1, after, 10_000);
        if (page.length === 0) break;
        for (const e of page) stored.set(e.seq, { text: new TextDecoder().decode(e.envelope), messageId: e.messageId });
        after = page.at(-1)!.seq;
      }
      for (const [seq, n] of reported) {
        assert.deepEqual(stored.get(seq), { text: `crash-${n}`, messageId: `m${n}` }, `seq ${seq} lost`);
      }
      for (const seq of parentSeqs) assert.match(stored.get(seq)?.text ?? "missing", /^parent-/);
      assert.equal(new Set([...reported.keys(), ...parentSeqs]).size, reported.size + parentSeqs.length);
    } finally {
      await reopened.close();
    }
    const db = new Database(file, { readonly: true });
    try {
      assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    } finally {
      db.close();
    }
  });
});
