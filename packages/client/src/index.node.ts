// Node entry of the Parley SDK: the browser-safe API plus the encrypted SQLite
// profile store and the TCP/WebSocket transport.
import { connect } from "@parley/wire";
import { type ClientOptions, ParleyClient } from "./client.ts";
import { importHistory } from "./files.node.ts";
import { type OpenProfileStoreOptions, openProfileStore } from "./store/index.node.ts";

export {
  downloadAttachment,
  forwardAttachment,
  importHistory,
  type SendFileOptions,
  type SendHistoryOptions,
  sendFile,
  sendHistory,
} from "./files.node.ts";
export * from "./index.ts";
export * from "./media/index.node.ts";
export * from "./store/index.node.ts";

/** Opens (or creates) the profile in `dir` and returns a client for it. */
export async function openClient(
  options: OpenProfileStoreOptions & Omit<ClientOptions, "store" | "connect"> & { connect?: ClientOptions["connect"] },
): Promise<ParleyClient> {
  const { dir, passphrase, keyFile, scrypt, ...rest } = options;
  const store = await openProfileStore({
    dir,
    ...(passphrase !== undefined ? { passphrase } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
    ...(scrypt !== undefined ? { scrypt } : {}),
  });
  const client = new ParleyClient({ ...rest, store, connect: rest.connect ?? connect });
  // A newly linked device imports the history bundle its primary sends.
  client.on("history", ({ media }) => {
    importHistory(client, media).catch((error: Error) => client.reportHistoryError(error));
  });
  return client;
}
