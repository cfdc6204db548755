// Correctness of the load generator against a real in-process server: every
// message sent is acked, delivered and receipted exactly once. No timings.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { defaultConfig, type ServerHandle, startServer } from "@parley/server";
import { accountNames } from "../load/accounts.ts";
import { loopbackAddress } from "../load/connection.ts";
import { LoadGenerator } from "../load/generator.ts";

/** tcpPort 0 disables the TCP listener, so the test picks a free port (bound and released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

describe("load generator against an in-process server", () => {
  let server: ServerHandle;
  let dataDir: string;
  let generator: LoadGenerator;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "parley-load-smoke-"));
    server = await startServer({
      ...defaultConfig(),
      workers: 0,
      port: 0,
      tcpPort: await freePort(),
      dev: true,
      dataDir,
      logLevel: "silent",
    });
    generator = new LoadGenerator(`tcp://127.0.0.1:${server.tcpPort}`);
  });

  after(async () => {
    await generator?.closeAll();
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("10 pairs for ~1 s: every message acked, delivered and receipted exactly once", { timeout: 30_000 }, async () => {
    const addresses = [loopbackAddress(2), loopbackAddress(3)];
    const { accounts } = await generator.register(accountNames(20, "smoke"), addresses, 8);
    assert.equal(accounts.length, 20);
    const login = await generator.connectAll(accounts, addresses);
    assert.equal(login.connected, 20);
    assert.equal(login.ik, 20, "logins with the pinned server key use IK");

    const flows = Array.from({ length: 10 }, (_, i) => ({
      from: accounts[2 * i]!.user,
      to: accounts[2 * i + 1]!.user,
    }));
    const report = await generator.traffic({ flows, mode: "saturate", maxInFlight: 10, warmupMs: 200, measureMs: 800 });

    const { sent, acked, delivered, receipted } = report.totals;
    assert.ok(sent > 0, "something was sent");
    assert.equal(acked, sent, "every message acked");
    assert.equal(delivered, sent, "every message delivered");
    assert.equal(receipted, sent, "every message receipted");
    assert.deepEqual(report.missing, { ack: 0, delivery: 0, receipt: 0 });
    assert.equal(report.duplicates, 0);
    assert.equal(report.misrouted, 0);
    assert.equal(report.ackErrors, 0, report.firstError);
    assert.equal(report.stale, 0);
    assert.equal(report.connectionsLost, 0);
  });

  it("offline: stored messages all arrive once when the recipient logs in", { timeout: 30_000 }, async () => {
    const { accounts } = await generator.register(accountNames(3, "smokeoff"), [], 3);
    const [recipient, ...senders] = accounts as [(typeof accounts)[0], ...typeof accounts];
    await generator.connectAll(senders, []);
    const store = await generator.offlineStore({
      senders: senders.map((s) => s.user),
      recipient,
      messages: 300,
      window: 50,
    });
    assert.equal(store.acked, 300);
    assert.equal(store.ackErrors, 0, store.firstError);
    const drain = await generator.offlineDrain(recipient);
    assert.equal(drain.delivered, 300);
    assert.equal(drain.receipted, 300);
    assert.equal(drain.duplicates, 0);
    assert.equal(drain.misrouted, 0);
    assert.ok(drain.queueEmptySeen, "queue-empty notification after the backlog");
    assert.deepEqual(drain.missing, { ack: 0, delivery: 0, receipt: 0 });
  });
});
