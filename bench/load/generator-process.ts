// Entry of one generator process (forked by startGeneratorPool): a LoadGenerator
// driven by commands over the IPC channel. Exits when the orchestrator goes away.
import { fromHex, toHex } from "./accounts.ts";
import { LoadError } from "./connection.ts";
import { LoadGenerator } from "./generator.ts";
import { servePoolCommands } from "./process-pool.ts";
import type { Command } from "./protocol.ts";

let generator: LoadGenerator | undefined;

function need(): LoadGenerator {
  if (!generator) throw new LoadError("NOT_INITIALIZED", "send init first");
  return generator;
}

async function run(command: Command): Promise<unknown> {
  switch (command.op) {
    case "init":
      generator = new LoadGenerator(command.url, command.serverKey ? fromHex(command.serverKey) : undefined);
      return { pid: process.pid };
    case "register": {
      const r = await need().register(command.names, command.localAddresses, command.concurrency);
      return { accounts: r.accounts, serverKey: toHex(r.serverKey) };
    }
    case "connect":
      return need().connectAll(command.accounts, command.localAddresses, command.concurrency);
    case "traffic":
      return need().traffic(command.options);
    case "offline-store":
      return need().offlineStore(command.options);
    case "offline-drain":
      return need().offlineDrain(command.recipient, command.localAddress);
    case "disconnect":
      return need().disconnect(command.users);
    case "close":
      await generator?.closeAll();
      setImmediate(() => process.exit(0));
      return null;
  }
}

servePoolCommands(run);
