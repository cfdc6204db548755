// `parley group ...` as a user runs it, against a real 2-worker server process (so group changes,
// fan-out and cache invalidation cross worker processes).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { EXIT } from "../src/common.ts";
import { freePort, PARLEY_BIN, startServerProcess, tempDir } from "./helpers.ts";

const execFileAsync = promisify(execFile);

describe("parley group", () => {
  it("create, send, receive, read, admin changes, invite, and clear refusals", async () => {
    const server = await startServerProcess({
      dataDir: tempDir("cli-groups"),
      port: await freePort(),
      tcpPort: await freePort(),
      workers: 2,
    });
    const env = { ...process.env, PARLEY_SERVER: server.url };
    const profiles = { alice: tempDir("alice"), bob: tempDir("bob"), carol: tempDir("carol"), dan: tempDir("dan") };
    const parley = async (who: keyof typeof profiles, ...args: string[]) => {
      try {
        const r = await execFileAsync(process.execPath, [PARLEY_BIN, ...args, "--profile", profiles[who]], { env });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const err = e as { code: number; stdout: string; stderr: string };
        return { code: err.code, stdout: err.stdout, stderr: err.stderr };
      }
    };
    const json = async (who: keyof typeof profiles, ...args: string[]) => {
      const r = await parley(who, ...args, "--json");
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    };
    try {
      for (const who of Object.keys(profiles) as (keyof typeof profiles)[]) {
        assert.equal((await parley(who, "register", who)).code, 0);
      }
      const g = await json(
        "alice",
        "group",
        "create",
        "Book club",
        "bob",
        "carol",
        "--description",
        "one book a month",
      );
      assert.equal(g.description, "one book a month");
      assert.match(g.id, /^[0-9a-f]{32}$/);
      assert.deepEqual(
        g.members.map((m: { user: string; role: string }) => `${m.user}:${m.role}`),
        ["alice:creator", "bob:member", "carol:member"],
      );
      const sent = await json("alice", "group", "send", "Book club", "chapter 3 tonight");
      assert.equal(sent.status, "sent");

      const received = await parley("bob", "receive");
      assert.equal(received.code, 0, received.stderr);
      assert.match(received.stdout, /chapter 3 tonight/);
      const info = await json("bob", "group", "info", "Book club");
      assert.equal(info.id, g.id);
      assert.equal(info.description, "one book a month", "verified from alice's signed create");
      assert.equal((await parley("bob", "group", "read", g.id)).code, 0);

      // Bob is no admin: refused with exit code 5 and a clear reason.
      const refused = await parley("bob", "group", "add", g.id, "dan");
      assert.equal(refused.code, EXIT.REFUSED, refused.stderr);
      assert.match(refused.stderr, /not an admin/);

      // Alice promotes bob; now he can add dan; carol is removed.
      assert.equal((await parley("alice", "group", "promote", g.id, "bob")).code, 0);
      assert.equal((await parley("bob", "group", "add", g.id, "dan")).code, 0);
      assert.equal((await parley("alice", "group", "remove", g.id, "carol")).code, 0);
      const after = await json("dan", "group", "info", g.id);
      assert.deepEqual(after.members.map((m: { user: string }) => m.user).sort(), ["alice", "bob", "dan"]);
      const carolView = await json("carol", "group", "info", g.id);
      assert.equal(carolView.active, false);
      const carolSend = await parley("carol", "group", "send", g.id, "still here?");
      assert.notEqual(carolSend.code, 0);

      // Invite code: carol rejoins with it.
      const invite = await json("alice", "group", "invite", g.id);
      const rejoined = await json("carol", "group", "join", invite.code);
      assert.ok(rejoined.members.some((m: { user: string }) => m.user === "carol"));
      const unknown = await parley("dan", "group", "info", "No such group");
      assert.equal(unknown.code, EXIT.NOT_FOUND);
    } finally {
      await server.stop();
    }
  });
});
