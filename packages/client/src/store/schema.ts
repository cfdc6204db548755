// Schema of the profile database, as an ordered list of migrations. MIGRATIONS[i] moves the
// database from version i to i+1 (PRAGMA user_version). Never edit a shipped migration:
// append a new one. Plain SQL with no Node dependency, so a browser SQLite can reuse it.

export const MIGRATIONS: readonly string[] = [
  // v1: everything the first client needs.
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY
  ) STRICT;

  CREATE TABLE opaque (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
  ) STRICT;

  CREATE TABLE identities (
    name          TEXT    NOT NULL,
    device_id     INTEGER NOT NULL,
    public_key    BLOB    NOT NULL,
    trust         TEXT    NOT NULL CHECK (trust IN ('default', 'verified', 'unverified')),
    first_seen_at INTEGER NOT NULL,
    PRIMARY KEY (name, device_id)
  ) STRICT;

  CREATE TABLE prekeys (
    kind       TEXT    NOT NULL CHECK (kind IN ('prekey', 'signed', 'kyber')),
    id         INTEGER NOT NULL,
    record     BLOB    NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
  ) STRICT;

  CREATE TABLE sessions (
    name       TEXT    NOT NULL,
    device_id  INTEGER NOT NULL,
    record     BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, device_id)
  ) STRICT;

  CREATE TABLE sender_keys (
    name            TEXT    NOT NULL,
    device_id       INTEGER NOT NULL,
    distribution_id TEXT    NOT NULL,
    record          BLOB    NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (name, device_id, distribution_id)
  ) STRICT;

  CREATE TABLE sender_key_shared (
    distribution_id TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    device_id       INTEGER NOT NULL,
    PRIMARY KEY (distribution_id, name, device_id)
  ) STRICT;

  CREATE TABLE contacts (
    name         TEXT PRIMARY KEY,
    display_name TEXT,
    added_at     INTEGER NOT NULL,
    blocked      INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1))
  ) STRICT;

  CREATE TABLE chats (
    id         TEXT PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('direct', 'group')),
    title      TEXT,
    created_at INTEGER NOT NULL,
    muted      INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1))
  ) STRICT;

  -- AUTOINCREMENT: a deleted row id is never reused, so history cursors stay unambiguous.
  CREATE TABLE messages (
    row_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id        TEXT    NOT NULL,
    chat_id       TEXT    NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    sender        TEXT    NOT NULL,
    sender_device INTEGER NOT NULL,
    direction     TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    kind          TEXT    NOT NULL CHECK (kind IN ('text', 'placeholder')),
    body          TEXT,
    sent_at       INTEGER NOT NULL,
    server_at     INTEGER,
    received_at   INTEGER,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    sort_at       INTEGER NOT NULL,
    UNIQUE (sender, msg_id)
  ) STRICT;
  CREATE INDEX messages_history ON messages (chat_id, sort_at, row_id);
  CREATE UNIQUE INDEX messages_outgoing ON messages (msg_id) WHERE direction = 'out';
  CREATE INDEX messages_unread ON messages (chat_id) WHERE direction = 'in' AND kind = 'text' AND status <> 'read';
  CREATE INDEX messages_placeholders ON messages (sender, sender_device, sent_at) WHERE kind = 'placeholder';

  CREATE TABLE outbox (
    message_row     INTEGER PRIMARY KEY REFERENCES messages (row_id) ON DELETE CASCADE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
  ) STRICT;
  CREATE INDEX outbox_due ON outbox (next_attempt_at, message_row);

  CREATE TABLE receipts (
    message_row INTEGER NOT NULL REFERENCES messages (row_id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    device_id   INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('delivered', 'read')),
    at          INTEGER NOT NULL,
    PRIMARY KEY (message_row, name, device_id)
  ) STRICT;

  -- Full-text index over bodies, inside the encrypted file. Trigram: substring matching that
  -- works for every script (CJK has no spaces), case- and diacritic-insensitive.
  CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body,
    content = 'messages',
    content_rowid = 'row_id',
    tokenize = 'trigram remove_diacritics 1'
  );
  CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.body IS NOT NULL BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.row_id, new.body);
  END;
  CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.body IS NOT NULL BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.row_id, old.body);
  END;
  CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) SELECT 'delete', old.row_id, old.body WHERE old.body IS NOT NULL;
    INSERT INTO messages_fts (rowid, body) SELECT new.row_id, new.body WHERE new.body IS NOT NULL;
  END;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
