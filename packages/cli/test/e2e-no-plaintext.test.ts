// The server never sees a message in the clear, and profiles are encrypted at
// rest: Alice and Bob (real SDK clients) exchange distinctive texts both ways,
// including one queued for an offline Bob, through a server logging at debug
// level to a file. Then every byte the server wrote (database, WAL, SHM, log)
// and every file of both client profiles is searched for each text, in UTF-8,
// UTF-16 (both byte orders), hex and base64: none may appear.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { directChatId, type ParleyClient } from "@parley/client";
import { defaultConfig, type ServerConfig, startServer } from "@parley/server";
import pino from "pino";
import { newUser, tempDir, waitFor } from "./helpers.ts";

/** Every byte form a text could take in a file: UTF-8, UTF-16LE/BE, hex (both cases), base64 at each alignment. */
function encodings(text: string): { form: string; bytes: Buffer }[] {
  const utf8 = Buffer.from(text, "utf8");
  const utf16le = Buffer.from(text, "utf16le");
  const utf16be = Buffer.from(utf16le).swap16();
  const forms = [
    { form: "utf8", bytes: utf8 },
    { form: "utf16le", bytes: utf16le },
    { form: "utf16be", bytes: utf16be },
    { form: "hex", bytes: Buffer.from(utf8.toString("hex"), "ascii") },
    { form: "HEX", bytes: Buffer.from(utf8.toString("hex").toUpperCase(), "ascii") },
  ];
  // Inside a longer base64 blob the text starts at one of three byte alignments; whole 3-byte groups are stable.
  for (let shift = 0; shift < 3; shift++) {
    const whole = utf8.subarray(shift, shift + Math.floor((utf8.length - shift) / 3) * 3);
    forms.push({ form: `base64+${shift}`, bytes: Buffer.from(whole.toString("base64"), "ascii") });
  }
  return forms;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Where any of `texts` occurs, in any form, in any file under `dirs` (plus `files`). */
function findPlaintext(texts: string[], dirs: string[], files: string[] = []): string[] {
  const hits: string[] = [];
  for (const file of [...dirs.flatMap(filesUnder), ...files]) {
    const content = readFileSync(file);
    for (const text of texts) {
      for (const { form, bytes } of encodings(text)) {
        if (content.includes(bytes)) hits.push(`${file}: "${text}" as ${form}`);
      }
    }
  }
  return hits;
}

describe("no plaintext at rest, on the server or in the profiles", () => {
  it("finds none of the exchanged texts in the server's files, its debug log, or the client databases", async () => {
    const serverDir = tempDir("noplain-server");
    const logFile = join(tempDir("noplain-log"), "server.log");
    const aliceDir = tempDir("noplain-alice");
    const bobDir = tempDir("noplain-bob");
    const log = pino({ level: "debug" }, pino.destination({ dest: logFile, sync: true }));
    const config: ServerConfig = {
      ...defaultConfig(),
      port: 0,
      tcpPort: 0,
      workers: 0,
      dev: true,
      dataDir: serverDir,
      logLevel: "debug",
    };
    const server = await startServer(config, { log });
    const url = `ws://127.0.0.1:${server.httpPort}/ws`;
    const canary = randomBytes(6).toString("hex");
    const texts = [
      `alice-to-bob canary ${canary} one`,
      `bob-to-alice canary ${canary} two`,
      `Grüße aus Köln 🦜 ${canary} three`,
      `offline queued canary ${canary} four`,
    ];
    const [aliceToBob, bobToAlice, unicode, queued] = texts as [string, string, string, string];
    let alice: ParleyClient | undefined;
    let bob: ParleyClient | undefined;
    try {
      alice = await newUser("alice", url, aliceDir);
      bob = await newUser("bob", url, bobDir);
      const bobGot: string[] = [];
      const aliceGot: string[] = [];
      bob.on("message", (e) => bobGot.push(e.message.body ?? ""));
      alice.on("message", (e) => aliceGot.push(e.message.body ?? ""));

      await alice.sendText("bob", aliceToBob);
      await waitFor(() => bobGot.includes(aliceToBob), 15_000, "bob receives");
      await bob.sendText("alice", bobToAlice);
      await bob.sendText("alice", unicode);
      await waitFor(() => aliceGot.includes(bobToAlice) && aliceGot.includes(unicode), 15_000, "alice receives");

      // Bob goes offline; the next text waits in the server's queue (as ciphertext).
      await bob.stop();
      const id = alice.queueText("bob", queued);
      await alice.waitForStatus(id, "sent", 15_000);
      const whileQueued = findPlaintext([...texts, canary], [serverDir], [logFile]);
      assert.deepEqual(whileQueued, [], "plaintext in the server's files while a message is queued");

      await bob.start();
      await waitFor(() => bobGot.includes(queued), 15_000, "bob receives the queued text");
      await alice.waitForStatus(id, "delivered", 15_000);
      // The texts really are stored in the profiles (decrypted, searchable), just not in the clear on disk.
      assert.equal(bob.store.countMessages(directChatId("alice")), 4);
    } finally {
      await alice?.stop();
      await bob?.stop();
      await server.close();
    }
    log.flush();

    const serverFiles = filesUnder(serverDir).map((f) => f.slice(serverDir.length + 1));
    assert.ok(
      serverFiles.some((f) => f.endsWith(".db")),
      `server files: ${serverFiles}`,
    );
    const logText = readFileSync(logFile, "utf8");
    assert.ok(logText.includes('"level":20'), "the server logged at debug level");
    assert.ok(logText.includes("connection closed"));
    for (const dir of [aliceDir, bobDir]) assert.ok(filesUnder(dir).length > 0, `profile files in ${dir}`);

    // The scanner itself finds every form (so an empty result means something).
    for (const { form, bytes } of encodings(unicode)) {
      const haystack = Buffer.concat([randomBytes(5), bytes, randomBytes(5)]);
      assert.ok(
        encodings(unicode).some((e) => e.form === form && haystack.includes(e.bytes)),
        `scanner misses ${form}`,
      );
    }
    const base64Blob = Buffer.from(
      Buffer.concat([randomBytes(1), Buffer.from(unicode, "utf8"), randomBytes(2)]).toString("base64"),
    );
    assert.ok(
      encodings(unicode).some((e) => base64Blob.includes(e.bytes)),
      "scanner misses base64 inside a blob",
    );

    // The canary alone catches partial leaks (a truncated or split text) too.
    const hits = findPlaintext([...texts, canary], [serverDir, aliceDir, bobDir], [logFile]);
    assert.deepEqual(hits, [], "plaintext found at rest");
    for (const dir of [serverDir, aliceDir, bobDir]) rmSync(dir, { recursive: true, force: true });
    rmSync(join(logFile, ".."), { recursive: true, force: true });
  });
});
