// Browser-safe API of the Parley SDK. Node code imports index.node.ts (selected by the "node" export condition).
export {
  ClientError,
  type ClientEvents,
  type ClientOptions,
  type ConnectFn,
  type ConnectionState,
  ParleyClient,
} from "./client.ts";
export { Emitter } from "./emitter.ts";
export { GroupClientError, type GroupEvent, type GroupView } from "./groups.ts";
export * from "./media/index.ts";
export { decodeContent, encodeContent, type MessageContent, PayloadError } from "./payload.ts";
export type { IdentityChangePolicy } from "./signal-stores.ts";
export * from "./store/index.ts";
