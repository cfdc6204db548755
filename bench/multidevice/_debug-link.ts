import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openClient } from "@parley/client";
import { connect } from "@parley/wire";
import { startServerProcess } from "../e2e/server-process.ts";
import { registerPrimary } from "./accounts.ts";
import { WireMeter } from "./wire-meter.ts";

const root = mkdtempSync(join(tmpdir(), "parley-mdbg-"));
const server = await startServerProcess({ dataDir: root, workers: 2, logLevel: "info" });
try {
  const f = { serverUrl: `ws://127.0.0.1:${server.httpPort}/ws`, root, meter: new WireMeter() };
  for (const name of ["acc1", "acc2", "acc3", "acc4"]) {
    const primary = await registerPrimary(f, name);
    for (let i = 0; i < 4; i++) {
      const t = Date.now();
      const companion = await openClient({ dir: mkdtempSync(join(root, "c-")), serverUrl: f.serverUrl, connect });
      const request = await companion.createLinkRequest();
      const linked = request.linked.then(
        (l) => console.error(name, i, "companion linked", l, Date.now() - t),
        (e) => console.error(name, i, "companion FAILED", e.code, e.message, Date.now() - t),
      );
      for (let attempt = 0; ; attempt++) {
        try {
          const d = await primary.acceptLink(request.code);
          console.error(name, i, "primary got device", d, "attempt", attempt, Date.now() - t);
          break;
        } catch (e) {
          console.error(name, i, "acceptLink FAILED", (e as { code: string }).code, Date.now() - t);
          if ((e as { code: string }).code !== "not-found" || attempt > 5) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await linked;
      await companion.stop();
    }
    await primary.stop();
  }
} finally {
  await server.stop();
  rmSync(root, { recursive: true, force: true });
  process.exit(0);
}
