// Chat ids carry their kind so that any layer can tell a 1:1 chat from a group without a lookup.
import { StoreError } from "./errors.ts";
import type { ChatId, ChatKind } from "./types.ts";

const DIRECT_PREFIX = "u:";
const GROUP_PREFIX = "g:";

export function directChatId(accountName: string): ChatId {
  if (accountName.length === 0) throw new StoreError("INVALID_ARGUMENT", "empty account name");
  return `${DIRECT_PREFIX}${accountName}`;
}

export function groupChatId(groupId: string): ChatId {
  if (groupId.length === 0) throw new StoreError("INVALID_ARGUMENT", "empty group id");
  return `${GROUP_PREFIX}${groupId}`;
}

export function parseChatId(id: ChatId): { kind: ChatKind; target: string } {
  if (id.length > DIRECT_PREFIX.length && id.startsWith(DIRECT_PREFIX)) {
    return { kind: "direct", target: id.slice(DIRECT_PREFIX.length) };
  }
  if (id.length > GROUP_PREFIX.length && id.startsWith(GROUP_PREFIX)) {
    return { kind: "group", target: id.slice(GROUP_PREFIX.length) };
  }
  throw new StoreError("INVALID_ARGUMENT", `not a chat id: ${JSON.stringify(id.slice(0, 80))}`);
}
