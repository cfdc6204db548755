// Entry of one XMPP generator process (forked through ProcessPool): an
// XmppLoadGenerator driven by commands over the IPC channel.

import type { TrafficReport } from "./generator.ts";
import { MAX_SOCKETS_PER_PROCESS, openFds, PoolError, servePoolCommands } from "./process-pool.ts";
import { type XmppConnectReport, XmppLoadGenerator, type XmppTarget } from "./xmpp-generator.ts";

export type XmppCommand =
  | { op: "init"; target: XmppTarget }
  | {
      op: "connect";
      users: string[];
      localAddresses: string[];
      concurrency: number;
      tolerant?: boolean;
      streamManagement?: boolean;
    }
  | { op: "count" }
  | { op: "traffic"; options: Parameters<XmppLoadGenerator["traffic"]>[0] }
  | { op: "offline-store"; options: Parameters<XmppLoadGenerator["offlineStore"]>[0] }
  | { op: "offline-drain"; recipient: string; localAddress?: string }
  | { op: "disconnect"; users: string[] }
  | { op: "close-all" }
  | { op: "close" };

export interface XmppCountReport {
  open: number;
  fds: number;
}

export type { TrafficReport, XmppConnectReport };

let generator: XmppLoadGenerator | undefined;
function need(): XmppLoadGenerator {
  if (!generator) throw new PoolError("NOT_INITIALIZED", "send init first");
  return generator;
}

servePoolCommands<XmppCommand>(async (command) => {
  switch (command.op) {
    case "init":
      generator = new XmppLoadGenerator(command.target);
      return { pid: process.pid };
    case "connect": {
      const g = need();
      // one socket per connection: refuse before the process runs into its open-file limit
      if (g.openCount() + command.users.length > MAX_SOCKETS_PER_PROCESS) {
        throw new PoolError(
          "TOO_MANY",
          `${g.openCount() + command.users.length} connections in one generator process (max ${MAX_SOCKETS_PER_PROCESS})`,
        );
      }
      return g.connectAll(command.users, command.localAddresses, command.concurrency, {
        tolerant: command.tolerant ?? false,
        streamManagement: command.streamManagement ?? false,
      });
    }
    case "count":
      return { open: need().openCount(), fds: openFds() } satisfies XmppCountReport;
    case "traffic":
      return need().traffic(command.options);
    case "offline-store":
      return need().offlineStore(command.options);
    case "offline-drain":
      return need().offlineDrain(command.recipient, command.localAddress);
    case "disconnect":
      return need().disconnect(command.users);
    case "close-all":
      return need().closeAll();
    case "close":
      await generator?.closeAll();
      setImmediate(() => process.exit(0));
      return null;
  }
});
