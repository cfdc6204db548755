// Opens (or creates) a device profile: <dir>/profile.db, encrypted at rest with SQLCipher 4.
// Node-only (native SQLite, node:fs, node:crypto). Browser code must not import this file.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3-multiple-ciphers";
import { StoreError } from "./errors.ts";
import {
  DEFAULT_SCRYPT,
  deriveKeyFromPassphrase,
  KEY_BYTES,
  loadOrCreateKeyFile,
  newKdfFile,
  parseKdfFile,
  type ScryptParams,
} from "./key.node.ts";
import { MIGRATIONS, SCHEMA_VERSION } from "./schema.ts";
import { SqliteProfileStore, toStoreError } from "./sqlite-store.node.ts";
import type { ProfileStore } from "./types.ts";

export const DB_FILE = "profile.db";
export const KEY_FILE = "profile.key";
export const KDF_FILE = "profile.kdf.json";

export interface OpenProfileStoreOptions {
  /** Profile directory; created with mode 0700 when missing. */
  readonly dir: string;
  /** Derive the key with scrypt from this passphrase (salt and cost kept in <dir>/profile.kdf.json). */
  readonly passphrase?: string;
  /** Read the raw 32-byte key from this file (created with mode 0600 when missing). */
  readonly keyFile?: string;
  /** scrypt cost used when a passphrase profile is CREATED (default N=2^17, r=8, p=1). */
  readonly scrypt?: ScryptParams;
}

/**
 * Opens the profile store. Key source, in order: `passphrase`, `keyFile`, else
 * `<dir>/profile.key` (created on first open). Throws StoreError:
 * WRONG_KEY (also: key file gone / passphrase given for a key-file profile), INSECURE_KEY_FILE,
 * CORRUPT, SCHEMA_TOO_NEW, INVALID_ARGUMENT, IO.
 */
export async function openProfileStore(options: OpenProfileStoreOptions): Promise<ProfileStore> {
  if (options.passphrase !== undefined && options.keyFile !== undefined) {
    throw new StoreError("INVALID_ARGUMENT", "give either a passphrase or a key file, not both");
  }
  const dir = resolve(options.dir);
  ensurePrivateDir(dir);
  const dbPath = join(dir, DB_FILE);
  const dbExists = existsSync(dbPath) && statSync(dbPath).size > 0;
  const key =
    options.passphrase !== undefined
      ? await passphraseKey(dir, options.passphrase, dbExists, options.scrypt ?? DEFAULT_SCRYPT)
      : keyFileKey(options.keyFile ?? join(dir, KEY_FILE), dbExists);
  let db: Database.Database;
  try {
    db = openEncrypted(dbPath, key);
  } finally {
    key.fill(0);
  }
  try {
    migrate(db);
    // The directory is already private; the file is too, in case it is ever copied out of it.
    chmodSync(dbPath, 0o600);
  } catch (e) {
    db.close();
    throw toStoreError(e);
  }
  return new SqliteProfileStore(db, dbPath);
}

function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory()) throw new StoreError("INVALID_ARGUMENT", `${dir} is not a directory`);
    // An existing directory may have been made with a looser umask: tighten it.
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError("IO", `cannot prepare profile directory ${dir}`, { cause: e });
  }
}

function keyFileKey(path: string, dbExists: boolean): Uint8Array {
  // With an existing database, a missing key file means the key is lost: creating a fresh
  // one would silently start an empty profile or fail obscurely.
  try {
    return loadOrCreateKeyFile(resolve(path), !dbExists);
  } catch (e) {
    if (e instanceof StoreError && e.code === "NOT_FOUND" && dbExists) {
      throw new StoreError("WRONG_KEY", `no key for the existing database: key file ${path} is missing`, { cause: e });
    }
    throw e;
  }
}

async function passphraseKey(dir: string, passphrase: string, dbExists: boolean, cost: ScryptParams) {
  const kdfPath = join(dir, KDF_FILE);
  let kdf: ReturnType<typeof newKdfFile>;
  if (existsSync(kdfPath)) {
    kdf = parseKdfFile(readFileSync(kdfPath, "utf8"), kdfPath);
  } else if (dbExists) {
    throw new StoreError("WRONG_KEY", `this profile is not passphrase-protected (${kdfPath} is missing)`);
  } else {
    kdf = newKdfFile(cost);
    try {
      writeFileSync(kdfPath, `${JSON.stringify(kdf)}\n`, { mode: 0o600, flag: "wx" });
    } catch {
      // Another process created it first: use theirs so both derive the same key.
      kdf = parseKdfFile(readFileSync(kdfPath, "utf8"), kdfPath);
    }
  }
  return deriveKeyFromPassphrase(passphrase, kdf);
}

function openEncrypted(path: string, key: Uint8Array): Database.Database {
  if (key.length !== KEY_BYTES) throw new StoreError("INVALID_ARGUMENT", "key must be 32 bytes");
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw new StoreError("IO", `cannot open ${path}`, { cause: e });
  }
  try {
    db.pragma("cipher = 'sqlcipher'");
    db.pragma("legacy = 4");
    // Raw key in SQLCipher's x'…' form: hex digits only, so nothing user-supplied reaches SQL.
    db.pragma(`key = "x'${Buffer.from(key).toString("hex")}'"`);
    // The first read of page 1 is where a wrong key shows (SQLITE_NOTADB).
    db.prepare("SELECT count(*) FROM sqlite_master").get();
  } catch (e) {
    db.close();
    const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
    if (code === "SQLITE_NOTADB") {
      throw new StoreError("WRONG_KEY", `the key does not open ${path} (wrong key, or not a profile database)`, {
        cause: e,
      });
    }
    throw toStoreError(e);
  }
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    // Sorts and temporary indexes stay in memory: SQLCipher's temp files would be plaintext.
    db.pragma("temp_store = MEMORY");
    db.pragma("busy_timeout = 5000");
  } catch (e) {
    db.close();
    throw toStoreError(e);
  }
  return db;
}

function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true });
  if (typeof current !== "number" || !Number.isSafeInteger(current) || current < 0) {
    throw new StoreError("CORRUPT", "unreadable schema version");
  }
  if (current > SCHEMA_VERSION) {
    throw new StoreError(
      "SCHEMA_TOO_NEW",
      `profile schema v${current} is newer than this client (v${SCHEMA_VERSION}): update the client`,
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    const sql = MIGRATIONS[v]!;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
