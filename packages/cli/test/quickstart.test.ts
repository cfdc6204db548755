// Runs the README's quick start as written (the commands after `npm ci`, which
// CI has already done): the server from `npm start`, then two terminals that
// register and chat. Ports and data directory come from the environment so the
// test never collides with a server the developer runs on the default port.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort, PARLEY_BIN, tempDir, waitFor, waitForHealthy } from "./helpers.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));

/** The shell commands of the README's "Quick start" section, in order. */
function quickStartCommands(): string[] {
  const readme = readFileSync(`${root}README.md`, "utf8");
  const section = readme.split("## Quick start")[1]?.split("\n## ")[0] ?? "";
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!
      .split("\n")
      .map((l) => l.replace(/\s+#.*$/, "").trim())
      .filter((l) => l !== ""),
  );
}

describe("README quick start", () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, "SIGKILL");
      } catch {
        // gone
      }
    }
  });

  it("one command starts the server; two terminals register and chat", async () => {
    const commands = quickStartCommands();
    assert.equal(commands[0], "npm ci && npm start");
    const [register1, chat1, register2, chat2] = commands.slice(1, 5);
    assert.match(register1!, /^npx parley register alice --profile alice$/);
    assert.match(chat1!, /^npx parley chat bob --profile alice$/);
    assert.match(register2!, /^npx parley register bob --profile bob$/);
    assert.match(chat2!, /^npx parley chat alice --profile bob$/);

    const port = await freePort();
    const tcpPort = await freePort();
    const env = {
      ...process.env,
      PARLEY_PORT: String(port),
      PARLEY_TCP_PORT: String(tcpPort),
      PARLEY_DATA: tempDir("quickstart-data"),
      PARLEY_WORKERS: "2",
      PARLEY_SERVER: `ws://127.0.0.1:${port}/ws`,
    };
    // Terminal 1: `npm start` (the part after `npm ci &&`).
    const server = spawn("npm", ["start"], { cwd: root, env, detached: true, stdio: "ignore" });
    children.push(server);
    await waitForHealthy(port, 60_000);

    // Terminals 2 and 3 run in their own directory; `npx parley` is the workspace's bin.
    const cwd = tempDir("quickstart-users");
    const run = (line: string) => {
      const args = line.replace(/^npx parley /, "").split(" ");
      const child = spawn(process.execPath, [PARLEY_BIN, ...args], {
        cwd,
        env,
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
      children.push(child);
      let output = "";
      child.stdout!.on("data", (d) => (output += d));
      child.stderr!.on("data", (d) => (output += d));
      const done = new Promise<number>((r) => child.once("exit", (code) => r(code ?? -1)));
      return { child, done, output: () => output };
    };
    for (const line of [register1!, register2!]) {
      const r = run(line);
      assert.equal(await r.done, 0, r.output());
      assert.match(r.output(), /registered/);
    }
    const alice = run(chat1!);
    const bob = run(chat2!);
    await waitFor(
      () => alice.output().includes("chatting with bob") && bob.output().includes("chatting with alice"),
      30_000,
      "both chats open",
    );
    alice.child.stdin!.write("hello bob\n");
    await waitFor(() => bob.output().includes("alice: hello bob"), 30_000, "bob sees alice's message");
    bob.child.stdin!.write("hi alice\n");
    await waitFor(() => alice.output().includes("bob: hi alice"), 30_000, "alice sees bob's reply");
    // Bob's chat is open, so Alice's message is read: her side shows the blue ticks' status line.
    await waitFor(() => /✓✓.*hello bob/.test(alice.output()), 30_000, "ticks at alice");
    alice.child.stdin!.write("/quit\n");
    bob.child.stdin!.write("/quit\n");
    assert.equal(await alice.done, 0, alice.output());
    assert.equal(await bob.done, 0, bob.output());
  });
});
