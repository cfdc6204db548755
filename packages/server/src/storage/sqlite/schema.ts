import type Database from "better-sqlite3";
import { StorageError } from "../errors.ts";

/**
 * Schema migrations, applied in order inside one IMMEDIATE transaction so that several worker
 * processes opening the same file at once cannot apply a migration twice: the first takes the
 * write lock and migrates, the others wait (busy_timeout) and then find nothing left to do.
 * Append new migrations; never edit an applied one.
 */
const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    privacy TEXT NOT NULL DEFAULT 'contacts' CHECK (privacy IN ('everyone', 'contacts', 'nobody')),
    last_seen_at INTEGER,
    -- device ids are never reused inside an account: a stale session with a removed device must
    -- never reach a new device that happens to get the same number
    next_device_id INTEGER NOT NULL DEFAULT 1
  );

  CREATE TABLE devices (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL,
    noise_static_key BLOB NOT NULL UNIQUE,
    registration_id INTEGER NOT NULL,
    identity_key BLOB NOT NULL,
    signed_prekey_id INTEGER NOT NULL,
    signed_prekey BLOB NOT NULL,
    signed_prekey_signature BLOB NOT NULL,
    last_resort_kem_id INTEGER NOT NULL,
    last_resort_kem BLOB NOT NULL,
    last_resort_kem_signature BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    PRIMARY KEY (account_id, device_id)
  );

  CREATE TABLE device_lists (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    blob BLOB NOT NULL
  );

  CREATE TABLE ec_prekeys (
    account_id TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id) ON DELETE CASCADE
  ) WITHOUT ROWID;

  CREATE TABLE kem_prekeys (
    account_id TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id) ON DELETE CASCADE
  ) WITHOUT ROWID;

  CREATE TABLE pending_registrations (
    name TEXT PRIMARY KEY,
    code_salt BLOB NOT NULL,
    code_hash BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX pending_registrations_by_expiry ON pending_registrations (expires_at);

  CREATE TABLE contacts (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_name TEXT NOT NULL,
    PRIMARY KEY (account_id, contact_name)
  ) WITHOUT ROWID;
  CREATE INDEX contacts_by_name ON contacts (contact_name, account_id);

  -- A ciphertext shared by many queue entries (group messages) is stored once; refs counts the
  -- entries pointing at it and the trigger below drops it with the last one.
  CREATE TABLE payloads (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    refs INTEGER NOT NULL
  );

  -- AUTOINCREMENT: seqs are never reused, even after the newest entry is deleted, so an ack
  -- that arrives late can never delete a newer entry.
  CREATE TABLE queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    envelope BLOB,
    payload_id INTEGER,
    sender_account_id TEXT,
    sender_device_id INTEGER,
    message_id TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((envelope IS NULL) <> (payload_id IS NULL)),
    FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id) ON DELETE CASCADE
  );
  CREATE INDEX queue_by_device ON queue (account_id, device_id, seq);
  CREATE INDEX queue_by_age ON queue (created_at);

  -- Fires for every way an entry goes: ack, purge, and cascades from device/account deletion.
  CREATE TRIGGER queue_release_payload AFTER DELETE ON queue
  WHEN old.payload_id IS NOT NULL
  BEGIN
    UPDATE payloads SET refs = refs - 1 WHERE id = old.payload_id;
    DELETE FROM payloads WHERE id = old.payload_id AND refs <= 0;
  END;
  `,
  // 2: groups (docs/groups.md): the current state snapshot, member index for routing, signed log
  `
  CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    invite_hash BLOB UNIQUE
  );
  -- No foreign key to accounts: membership follows the signed log, which a deleted account cannot edit.
  CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (group_id, account_id)
  ) WITHOUT ROWID;
  CREATE INDEX group_members_by_account ON group_members (account_id);
  CREATE TABLE group_log (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    change BLOB NOT NULL,
    PRIMARY KEY (group_id, version)
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function migrate(db: Database.Database, now: number): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const current = db.prepare("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations");
  const record = db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
  db.transaction(() => {
    const applied = (current.get() as { v: number }).v;
    if (applied > MIGRATIONS.length) {
      throw new StorageError(
        "INTERNAL",
        `database schema version ${applied} is newer than this server (${MIGRATIONS.length})`,
      );
    }
    for (let version = applied + 1; version <= MIGRATIONS.length; version++) {
      db.exec(MIGRATIONS[version - 1]!);
      record.run(version, now);
    }
  }).immediate();
}
