// Node entry of the store: everything in ./index.ts plus the SQLCipher implementation.
export * from "./index.ts";
export { DEFAULT_SCRYPT, type ScryptParams } from "./key.node.ts";
export { DB_FILE, KDF_FILE, KEY_FILE, type OpenProfileStoreOptions, openProfileStore } from "./open.node.ts";
export { SqliteProfileStore } from "./sqlite-store.node.ts";
