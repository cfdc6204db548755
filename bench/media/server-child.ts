// The Parley server as its own process for the media benchmark, so its memory can be read
// from /proc/<pid>/status apart from the client's. Prints {"port": n} once listening.
import { defaultConfig, startServer } from "@parley/server";
import pino from "pino";

const dataDir = process.argv[2];
if (!dataDir) throw new Error("usage: server-child.ts <dataDir>");
const server = await startServer(
  {
    ...defaultConfig(),
    workers: 0,
    port: 0,
    tcpPort: 0,
    dev: true,
    dataDir,
    logLevel: "silent",
    mediaMaxBytes: 2 ** 31,
  },
  { log: pino({ level: "silent" }) },
);
process.stdout.write(`${JSON.stringify({ port: server.httpPort })}\n`);
process.on("SIGTERM", () => {
  server.close().then(() => process.exit(0));
});
