// `parley serve`: only the server package is loaded (a bad setting is reported at once, and the
// server process does not carry the client SDK).
import { ConfigError, loadConfig, startServer } from "@parley/server";
import { CliError, EXIT } from "./common.ts";

export async function serve(argv: string[]): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(EXIT.USAGE, `invalid configuration: ${err.message}`);
    throw err;
  }
  const server = await startServer(config);
  process.stderr.write(
    `parley server: ws://${config.host}:${server.httpPort}/ws and tcp://${config.host}:${server.tcpPort}` +
      ` (data in ${config.dataDir}${config.dev ? ", --dev: registration without codes" : ""}); Ctrl-C stops\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.close();
  return EXIT.OK;
}
