export { type Clock, ManualClock, systemClock } from "../clock.ts";
export { isStorageError, StorageError, type StorageErrorCode } from "./errors.ts";
export { normalizeAccountName, tryNormalizeAccountName } from "./names.ts";
export { ShardedStorage, type ShardedStorageOptions, shardOf } from "./sharded-storage.ts";
export { queueShardFileName } from "./sqlite/queue-shard.ts";
export {
  DATABASE_FILE_NAME,
  DEFAULT_RETENTION_MS,
  SqliteStorage,
  type SqliteStorageOptions,
} from "./sqlite/sqlite-storage.ts";
export type * from "./types.ts";
