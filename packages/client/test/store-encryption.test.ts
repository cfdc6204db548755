import assert from "node:assert/strict";
import {
  chmodSync,
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3-multiple-ciphers";
import { directChatId, openProfileStore, StoreError } from "../src/store/index.node.ts";
import { tempDir } from "./store-helpers.ts";

const SECRET_BODY = "the-launch-code-is-7319-SECRETBODY";
const SECRET_CONTACT = "zebediah-SECRETCONTACT";
const CHEAP_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof StoreError, `expected StoreError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

function allFileBytes(dir: string): Buffer {
  return Buffer.concat(
    readdirSync(dir)
      .filter((n) => n.startsWith("profile.db"))
      .map((n) => readFileSync(join(dir, n))),
  );
}

describe("profile store encryption at rest", () => {
  it("stores no plaintext in the database, WAL or SHM files, and reopens with the key", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openProfileStore({ dir });
      store.upsertContact({ name: SECRET_CONTACT, displayName: "Zeb SECRETDISPLAY" });
      store.insertIncoming({
        id: "m1",
        chatId: directChatId(SECRET_CONTACT),
        sender: SECRET_CONTACT,
        senderDevice: 1,
        body: SECRET_BODY,
        sentAt: 1000,
      });
      store.setOpaque("identity", new TextEncoder().encode("OPAQUE-SECRET-BYTES"));
      // Before close: the WAL holds the recent pages; it must be encrypted too.
      const live = allFileBytes(dir);
      store.close();
      const closed = allFileBytes(dir);
      for (const bytes of [live, closed]) {
        for (const needle of [SECRET_BODY, SECRET_CONTACT, "SECRETDISPLAY", "OPAQUE-SECRET-BYTES", "SQLite format 3"]) {
          assert.equal(bytes.includes(needle), false, `${needle} found in the files`);
        }
        assert.ok(bytes.length > 0);
      }

      const again = await openProfileStore({ dir });
      assert.equal(again.getMessage(SECRET_CONTACT, "m1")?.body, SECRET_BODY);
      assert.equal(again.getContact(SECRET_CONTACT)?.displayName, "Zeb SECRETDISPLAY");
      again.close();
    } finally {
      cleanup();
    }
  });

  it("a plain SQLite open without a key cannot read the file", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir })).close();
      const raw = new Database(join(dir, "profile.db"));
      try {
        assert.throws(() => raw.prepare("SELECT count(*) FROM sqlite_master").get(), { code: "SQLITE_NOTADB" });
      } finally {
        raw.close();
      }
    } finally {
      cleanup();
    }
  });

  it("a wrong key file, a missing key file or a passphrase fail with WRONG_KEY", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir })).close();
      const otherKey = join(dir, "..", "other.key");
      writeFileSync(otherKey, Buffer.alloc(32, 7), { mode: 0o600 });
      await rejectsWith(openProfileStore({ dir, keyFile: otherKey }), "WRONG_KEY");
      await rejectsWith(openProfileStore({ dir, passphrase: "guess" }), "WRONG_KEY");
      renameSync(join(dir, "profile.key"), join(dir, "..", "moved.key"));
      await rejectsWith(openProfileStore({ dir }), "WRONG_KEY");
      // The moved key still works when named explicitly.
      const store = await openProfileStore({ dir, keyFile: join(dir, "..", "moved.key") });
      assert.equal(store.countMessages(), 0);
      store.close();
    } finally {
      cleanup();
    }
  });

  it("passphrase profiles derive the key with scrypt and reject a wrong passphrase", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openProfileStore({
        dir,
        passphrase: "correct horse ' \"; DROP TABLE x; --",
        scrypt: CHEAP_SCRYPT,
      });
      store.setMeta("accountName", "alice");
      store.close();
      const kdf = JSON.parse(readFileSync(join(dir, "profile.kdf.json"), "utf8"));
      assert.equal(kdf.alg, "scrypt");
      assert.equal(kdf.N, CHEAP_SCRYPT.N);
      await rejectsWith(openProfileStore({ dir, passphrase: "wrong horse" }), "WRONG_KEY");
      const again = await openProfileStore({ dir, passphrase: "correct horse ' \"; DROP TABLE x; --" });
      assert.equal(again.getMeta("accountName"), "alice");
      again.close();
    } finally {
      cleanup();
    }
  });

  it("normalizes passphrases (NFC and NFD spellings open the same profile)", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir, passphrase: "caf\u00e9", scrypt: CHEAP_SCRYPT })).close();
      (await openProfileStore({ dir, passphrase: "cafe\u0301" })).close();
    } finally {
      cleanup();
    }
  });

  it("rejects both a passphrase and a key file", async () => {
    const { dir, cleanup } = tempDir();
    try {
      await rejectsWith(openProfileStore({ dir, passphrase: "x", keyFile: join(dir, "k") }), "INVALID_ARGUMENT");
    } finally {
      cleanup();
    }
  });
});

describe("tampering", () => {
  it("a modified page is reported as CORRUPT (SQLCipher's per-page HMAC), not returned", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openProfileStore({ dir });
      store.transaction(() => {
        for (let i = 0; i < 300; i++) {
          store.insertIncoming({
            id: `m${i}`,
            chatId: directChatId("x"),
            sender: "x",
            senderDevice: 1,
            body: `message ${i}`,
            sentAt: i,
          });
        }
      });
      store.close();
      const path = join(dir, "profile.db");
      const pages = Math.floor(statSync(path).size / 4096);
      assert.ok(pages > 4);
      const fd = openSync(path, "r+");
      for (let page = 1; page < pages; page += 2) writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, page * 4096 + 200);
      closeSync(fd);
      // Depending on which page is hit first, the open itself or a later read fails.
      await rejectsWith(
        (async () => {
          const damaged = await openProfileStore({ dir });
          try {
            let before: string | null = null;
            do {
              const page = damaged.history(directChatId("x"), { before, limit: 100 });
              before = page.nextCursor;
            } while (before !== null);
            damaged.search("message");
          } finally {
            damaged.close();
          }
        })(),
        "CORRUPT",
      );
    } finally {
      cleanup();
    }
  });
});

describe("key file and directory permissions", () => {
  it("creates the directory 0700 and a 32-byte key file 0600", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir })).close();
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      const key = statSync(join(dir, "profile.key"));
      assert.equal(key.mode & 0o777, 0o600);
      assert.equal(key.size, 32);
      assert.equal(statSync(join(dir, "profile.db")).mode & 0o777, 0o600);
    } finally {
      cleanup();
    }
  });

  it("refuses a key file readable by group or others", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir })).close();
      for (const mode of [0o640, 0o604, 0o660, 0o666]) {
        chmodSync(join(dir, "profile.key"), mode);
        await rejectsWith(openProfileStore({ dir }), "INSECURE_KEY_FILE");
      }
      chmodSync(join(dir, "profile.key"), 0o400);
      (await openProfileStore({ dir })).close();
    } finally {
      cleanup();
    }
  });

  it("refuses a symbolic link as key file and a key of the wrong size", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir })).close();
      const link = join(dir, "..", "link.key");
      symlinkSync(join(dir, "profile.key"), link);
      await rejectsWith(openProfileStore({ dir, keyFile: link }), "INSECURE_KEY_FILE");
      const short = join(dir, "..", "short.key");
      writeFileSync(short, Buffer.alloc(16), { mode: 0o600 });
      await rejectsWith(openProfileStore({ dir, keyFile: short }), "CORRUPT");
    } finally {
      cleanup();
    }
  });

  it("tightens an existing profile directory that others can read", async () => {
    const { dir, cleanup } = tempDir();
    try {
      (await openProfileStore({ dir })).close();
      chmodSync(dir, 0o755);
      (await openProfileStore({ dir })).close();
      assert.equal(statSync(dir).mode & 0o777, 0o700);
    } finally {
      cleanup();
    }
  });
});

describe("schema versions", () => {
  it("records the schema version and refuses a database from a newer client", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openProfileStore({ dir });
      assert.equal(store.schemaVersion, 1);
      store.close();
      const key = readFileSync(join(dir, "profile.key")).toString("hex");
      const raw = new Database(join(dir, "profile.db"));
      raw.pragma("cipher = 'sqlcipher'");
      raw.pragma("legacy = 4");
      raw.pragma(`key = "x'${key}'"`);
      assert.equal(raw.pragma("user_version", { simple: true }), 1);
      assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
      assert.equal(raw.prepare("SELECT count(*) AS n FROM messages_fts").get() !== undefined, true);
      raw.pragma("user_version = 99");
      raw.close();
      await rejectsWith(openProfileStore({ dir }), "SCHEMA_TOO_NEW");
    } finally {
      cleanup();
    }
  });

  it("a closed store answers with CLOSED", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openProfileStore({ dir });
      store.close();
      store.close(); // idempotent
      assert.throws(
        () => store.countMessages(),
        (e: unknown) => e instanceof StoreError && e.code === "CLOSED",
      );
    } finally {
      cleanup();
    }
  });
});
