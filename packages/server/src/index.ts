export { type Clock, ManualClock, systemClock } from "./clock.ts";
export { CONFIG_HELP, ConfigError, defaultConfig, type LogLevel, loadConfig, type ServerConfig } from "./config.ts";
export { Gateway } from "./gateway/gateway.ts";
export { Metrics } from "./metrics.ts";
export { createLogger, type ServerHandle, type StartOptions, startServer } from "./server.ts";
export { loadOrCreateServerKey, SERVER_KEY_FILE } from "./server-key.ts";
export { queueShardFileName, ShardedStorage, SqliteStorage } from "./storage/index.ts";
export { LogVerifier, type Verifier } from "./verifier.ts";
