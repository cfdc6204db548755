import type Database from "better-sqlite3";

const deviceColumns = `account_id, device_id, noise_static_key, registration_id, identity_key,
  signed_prekey_id, signed_prekey, signed_prekey_signature,
  last_resort_kem_id, last_resort_kem, last_resort_kem_signature, created_at, last_seen_at`;

const s = (sql: string) => sql;

/** The SQL of every statement SqliteStorage runs. */
const SQL = {
  // accounts
  insertAccount: s("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)"),
  getAccount: s("SELECT id, name, created_at, privacy, last_seen_at FROM accounts WHERE id = ?"),
  getAccountByName: s("SELECT id, name, created_at, privacy, last_seen_at FROM accounts WHERE name = ?"),
  getAccountForDevice: s("SELECT next_device_id FROM accounts WHERE id = ?"),
  setNextDeviceId: s("UPDATE accounts SET next_device_id = ? WHERE id = ?"),
  deleteAccount: s("DELETE FROM accounts WHERE id = ?"),
  setPrivacy: s("UPDATE accounts SET privacy = ? WHERE id = ?"),
  touchAccount: s("UPDATE accounts SET last_seen_at = MAX(COALESCE(last_seen_at, ?), ?) WHERE id = ?"),

  // pending registrations
  putPendingRegistration: s(
    `INSERT INTO pending_registrations (name, code_salt, code_hash, expires_at, attempts) VALUES (?, ?, ?, ?, 0)
       ON CONFLICT (name) DO UPDATE SET code_salt = excluded.code_salt, code_hash = excluded.code_hash,
         expires_at = excluded.expires_at, attempts = 0`,
  ),
  getPendingRegistration: s(
    "SELECT code_salt, code_hash, expires_at, attempts FROM pending_registrations WHERE name = ?",
  ),
  countRegistrationAttempt: s("UPDATE pending_registrations SET attempts = attempts + 1 WHERE name = ?"),
  deletePendingRegistration: s("DELETE FROM pending_registrations WHERE name = ?"),
  purgePendingRegistrations: s("DELETE FROM pending_registrations WHERE expires_at <= ?"),

  // contacts
  clearContacts: s("DELETE FROM contacts WHERE account_id = ?"),
  insertContact: s("INSERT INTO contacts (account_id, contact_name) VALUES (?, ?)"),
  listContacts: s("SELECT contact_name FROM contacts WHERE account_id = ? ORDER BY contact_name"),
  hasContact: s("SELECT 1 FROM contacts WHERE account_id = ? AND contact_name = ?"),
  // accounts that have the target in their contacts (args: target name, target id)
  listWatchersEveryone: s(
    "SELECT account_id FROM contacts WHERE contact_name = ? AND account_id <> ? ORDER BY account_id",
  ),
  // ... and that the target has in its own contacts (args: target id, target name, target id)
  listWatchersMutual: s(
    `SELECT c.account_id FROM contacts c
       JOIN accounts a ON a.id = c.account_id
       JOIN contacts back ON back.account_id = ? AND back.contact_name = a.name
       WHERE c.contact_name = ? AND c.account_id <> ? ORDER BY c.account_id`,
  ),

  // devices
  insertDevice: s(
    `INSERT INTO devices (account_id, device_id, noise_static_key, registration_id, identity_key,
        signed_prekey_id, signed_prekey, signed_prekey_signature,
        last_resort_kem_id, last_resort_kem, last_resort_kem_signature, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ),
  getDevice: s(`SELECT ${deviceColumns} FROM devices WHERE account_id = ? AND device_id = ?`),
  getDeviceByNoiseKey: s(`SELECT ${deviceColumns} FROM devices WHERE noise_static_key = ?`),
  listDevices: s(`SELECT ${deviceColumns} FROM devices WHERE account_id = ? ORDER BY device_id`),
  deviceExists: s("SELECT 1 FROM devices WHERE account_id = ? AND device_id = ?"),
  countDevices: s("SELECT COUNT(*) AS n FROM devices WHERE account_id = ?"),
  deleteDevice: s("DELETE FROM devices WHERE account_id = ? AND device_id = ?"),
  touchDevice: s("UPDATE devices SET last_seen_at = ? WHERE account_id = ? AND device_id = ?"),
  getDeviceList: s("SELECT version, blob FROM device_lists WHERE account_id = ?"),
  putDeviceList: s(
    `INSERT INTO device_lists (account_id, version, blob) VALUES (?, ?, ?)
       ON CONFLICT (account_id) DO UPDATE SET version = excluded.version, blob = excluded.blob`,
  ),

  // prekeys
  putEcPreKey: s("INSERT OR REPLACE INTO ec_prekeys (account_id, device_id, key_id, public_key) VALUES (?, ?, ?, ?)"),
  putKemPreKey: s(
    "INSERT OR REPLACE INTO kem_prekeys (account_id, device_id, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?)",
  ),
  countEcPreKeys: s("SELECT COUNT(*) AS n FROM ec_prekeys WHERE account_id = ? AND device_id = ?"),
  countKemPreKeys: s("SELECT COUNT(*) AS n FROM kem_prekeys WHERE account_id = ? AND device_id = ?"),
  setSignedPreKey: s(
    `UPDATE devices SET signed_prekey_id = ?, signed_prekey = ?, signed_prekey_signature = ?
       WHERE account_id = ? AND device_id = ?`,
  ),
  setLastResortKem: s(
    `UPDATE devices SET last_resort_kem_id = ?, last_resort_kem = ?, last_resort_kem_signature = ?
       WHERE account_id = ? AND device_id = ?`,
  ),
  // One statement removes and returns the key: no window between choosing it and deleting it.
  takeEcPreKey: s(
    `DELETE FROM ec_prekeys WHERE account_id = ? AND device_id = ? AND key_id =
         (SELECT key_id FROM ec_prekeys WHERE account_id = ? AND device_id = ? ORDER BY key_id LIMIT 1)
       RETURNING key_id, public_key`,
  ),
  takeKemPreKey: s(
    `DELETE FROM kem_prekeys WHERE account_id = ? AND device_id = ? AND key_id =
         (SELECT key_id FROM kem_prekeys WHERE account_id = ? AND device_id = ? ORDER BY key_id LIMIT 1)
       RETURNING key_id, public_key, signature`,
  ),

  // queues
  insertQueueEntry: s(
    `INSERT INTO queue (account_id, device_id, envelope, payload_id, sender_account_id, sender_device_id,
         message_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
  ),
  insertPayload: s("INSERT INTO payloads (data, refs) VALUES (?, ?) RETURNING id"),
  fetchQueue: s(
    `SELECT q.seq, q.account_id, q.device_id, COALESCE(q.envelope, p.data) AS envelope,
         q.sender_account_id, q.sender_device_id, q.message_id, q.created_at
       FROM queue q LEFT JOIN payloads p ON p.id = q.payload_id
       WHERE q.account_id = ? AND q.device_id = ? AND q.seq > ?
       ORDER BY q.seq LIMIT ?`,
  ),
  ackEntry: s(
    `DELETE FROM queue WHERE account_id = ? AND device_id = ? AND seq = ?
       RETURNING seq, sender_account_id, sender_device_id, message_id, payload_id IS NOT NULL AS shared`,
  ),
  queueDepth: s("SELECT COUNT(*) AS n FROM queue WHERE account_id = ? AND device_id = ?"),
  queueTotal: s("SELECT COUNT(*) AS n FROM queue"),
  purgeQueueChunk: s(
    "DELETE FROM queue WHERE seq IN (SELECT seq FROM queue WHERE created_at < ? ORDER BY created_at LIMIT ?)",
  ),
};

export type Statements = { readonly [K in keyof typeof SQL]: Database.Statement };

/** Prepares every statement once per connection (preparing costs far more than running). */
export function createStatements(db: Database.Database): Statements {
  return Object.fromEntries(Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)])) as Statements;
}
