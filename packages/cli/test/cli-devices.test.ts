// The linked-device commands as a user runs them: `parley link` on the new device (prints the
// code when not on a terminal), `parley link --accept` on the primary, `parley devices`, `parley unlink`.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { freePort, PARLEY_BIN, startServerProcess, tempDir, waitFor } from "./helpers.ts";

const run = promisify(execFile);

describe("parley link / devices / unlink", () => {
  it("links a second device from the command line, lists and unlinks it; a fifth companion is refused", async () => {
    const server = await startServerProcess({
      dataDir: tempDir("cli-devices"),
      port: await freePort(),
      tcpPort: await freePort(),
      workers: 2,
    });
    const env = { ...process.env, PARLEY_SERVER: server.url };
    try {
      const phone = tempDir("phone");
      await run(process.execPath, [PARLEY_BIN, "register", "alice", "--profile", phone], { env });
      await run(process.execPath, [PARLEY_BIN, "send", "alice", "a note to myself", "--profile", phone], { env });

      const linkCompanion = async (name: string) => {
        const dir = tempDir(name);
        const child = spawn(process.execPath, [PARLEY_BIN, "link", "--profile", dir, "--wait", "20"], { env });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        const exited = new Promise<number>((r) => child.once("exit", (c) => r(c ?? -1)));
        const code = await waitFor(
          () => /parley link --accept (parley-link:\S+)/.exec(out)?.[1],
          30_000,
          "link code printed",
        );
        const accepted = await run(process.execPath, [PARLEY_BIN, "link", "--accept", code, "--profile", phone], {
          env,
        }).catch((e) => e);
        return { dir, accepted, exited, output: () => out };
      };

      const laptop = await linkCompanion("laptop");
      assert.match(laptop.accepted.stdout, /linked device 2; sent \d+ message\(s\) of history/);
      assert.equal(await laptop.exited, 0, laptop.output());
      assert.match(laptop.output(), /linked as alice \(device 2\)/);
      const listed = await run(process.execPath, [PARLEY_BIN, "devices", "--profile", phone, "--json"], { env });
      assert.deepEqual(
        JSON.parse(listed.stdout).map((d: { device: number }) => d.device),
        [1, 2],
      );

      for (const name of ["tablet", "desktop", "work"]) assert.equal(await (await linkCompanion(name)).exited, 0);
      const fifth = await linkCompanion("one-too-many");
      assert.notEqual(fifth.accepted.code ?? 0, 0, "the primary reports the refusal");
      assert.match(String(fifth.accepted.stderr), /at most|most linked devices/);
      fifth.exited.catch(() => {});

      const unlinked = await run(process.execPath, [PARLEY_BIN, "unlink", "2", "--profile", phone], { env });
      assert.match(unlinked.stdout, /unlinked device 2/);
      const after = await run(process.execPath, [PARLEY_BIN, "devices", "--profile", phone, "--json"], { env });
      assert.deepEqual(
        JSON.parse(after.stdout).map((d: { device: number }) => d.device),
        [1, 3, 4, 5],
      );
      const refused = await run(process.execPath, [PARLEY_BIN, "receive", "--profile", laptop.dir], { env }).catch(
        (e) => e,
      );
      assert.equal(refused.code, 5, "the unlinked device is refused by the server");
    } finally {
      await server.stop();
    }
  });
});
