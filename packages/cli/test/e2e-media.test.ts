// Attachments end to end: the SDK's sendFile / downloadAttachment / forwardAttachment and the
// `parley send-file` / `receive` commands against a real server process.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { directChatId, downloadAttachment, forwardAttachment, sendFile } from "@parley/client";
import { freePort, newUser, PARLEY_BIN, startServerProcess, tempDir, waitFor } from "./helpers.ts";

const run = promisify(execFile);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("attachments", () => {
  it("send-file, receive with download, forward without re-upload, and the CLI commands", async () => {
    const dataDir = tempDir("media-e2e");
    const server = await startServerProcess({ dataDir, port: await freePort(), tcpPort: await freePort(), workers: 2 });
    const alice = await newUser("alice", server.url);
    const bobDir = tempDir("bob-media");
    const bob = await newUser("bob", server.url, bobDir);
    const carol = await newUser("carol", server.url);
    try {
      const file = join(tempDir("files"), "photo.bin");
      const content = randomBytes(300_000);
      writeFileSync(file, content);
      const got: { id: string; sender: string; name?: string }[] = [];
      bob.on("message", (e) =>
        got.push({ id: e.message.id, sender: e.message.sender, ...(e.media ? { name: e.media.fileName } : {}) }),
      );
      const id = await sendFile(alice, "bob", file, { caption: "the photo" });
      await alice.waitForStatus(id, "sent");
      await waitFor(() => got.find((g) => g.id === id), 20_000, "bob gets the attachment message");
      assert.equal(got.find((g) => g.id === id)?.name, "photo.bin");
      const saved = await downloadAttachment(bob, "alice", id);
      assert.equal(sha(readFileSync(saved.path)), sha(content));
      assert.equal(bob.store.history(directChatId("alice")).messages[0]?.body, "the photo");

      // Forwarding reuses the same pointer: Carol downloads the same blob.
      const carolGot: string[] = [];
      carol.on("message", (e) => carolGot.push(e.message.id));
      const fwd = forwardAttachment(bob, "alice", id, "carol");
      await waitFor(() => carolGot.includes(fwd), 20_000, "carol gets the forward");
      assert.deepEqual(carol.attachment("bob", fwd)?.pointer, bob.attachment("alice", id)?.pointer);
      const carolSaved = await downloadAttachment(carol, "bob", fwd);
      assert.equal(sha(readFileSync(carolSaved.path)), sha(content));
      await bob.stop();
      bob.store.close();

      // The CLI: Alice sends a file while Bob is offline; `parley receive` prints it and downloads it,
      // with no progress bar when piped.
      const aliceDir = tempDir("alice-cli");
      const env = { ...process.env, PARLEY_SERVER: server.url };
      await run(process.execPath, [PARLEY_BIN, "register", "dave", "--profile", aliceDir], { env });
      const small = join(tempDir("files2"), "notes.txt");
      writeFileSync(small, "end-to-end encrypted notes\n");
      const sent = await run(
        process.execPath,
        [PARLEY_BIN, "send-file", "bob", small, "--caption", "notes", "--profile", aliceDir],
        { env },
      );
      assert.match(sent.stdout.trim(), /^[0-9a-f]{16}$/);
      assert.equal(sent.stderr, "", "no progress bar when not on a terminal");
      const received = await run(process.execPath, [PARLEY_BIN, "receive", "--profile", bobDir], { env });
      assert.match(received.stdout, /dave: notes/);
      const path = /saved notes\.txt \(\d+ bytes\) to (.+)$/m.exec(received.stdout)?.[1];
      assert.ok(path, received.stdout);
      assert.equal(readFileSync(path, "utf8"), "end-to-end encrypted notes\n");
    } finally {
      await alice.stop();
      await bob.stop().catch(() => {});
      await carol.stop();
      await server.stop();
    }
  });
});
