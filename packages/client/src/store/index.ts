// Browser-safe part of the store: the interface, errors and pure helpers.
// The Node implementation (SQLCipher) is in ./index.node.ts.
export { directChatId, groupChatId, parseChatId } from "./chat-id.ts";
export { decodeCursor, encodeCursor } from "./cursor.ts";
export { isStoreError, StoreError, type StoreErrorCode } from "./errors.ts";
export { canTransition, MESSAGE_STATUSES } from "./status.ts";
export type * from "./types.ts";
