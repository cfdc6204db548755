// Checkpoints a WAL database from a worker thread, so the event loop of the writing process never
// runs one. SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: it
// copies the WAL into the database file and fsyncs it, which on a busy disk stalls the event loop
// (and every connection of the worker) for tens of milliseconds. The writer turns it off
// (wal_autocheckpoint = 0) and this thread, with its own connection, runs PASSIVE checkpoints
// (they never block the writer) whenever the WAL has grown. Once a checkpoint has copied every
// frame, the writer's next transaction starts the WAL over from its beginning.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

const THREAD_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const { statSync } = require("node:fs");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: 5000 });
db.pragma("synchronous = NORMAL");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
let stopped = false;
parentPort.on("message", (m) => {
  if (m === "stop") {
    stopped = true;
    try { checkpoint.run(); } catch {}
    db.close();
    process.exit(0);
  }
});
let lastSize = -1;
const tick = () => {
  if (stopped) return;
  let size = 0;
  try { size = statSync(workerData.file + "-wal").size; } catch {}
  // Checkpoint when the WAL holds new frames since the last look (size grows, or was reset and refilled).
  if (size !== lastSize && size > 0) {
    try { checkpoint.run(); } catch {}
  }
  lastSize = size;
  setTimeout(tick, workerData.intervalMs);
};
setTimeout(tick, workerData.intervalMs);
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(file: string, intervalMs = 200) {
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { file, driver, intervalMs } });
    this.worker.unref();
    this.worker.on("error", () => {}); // a failed checkpoint thread only means the WAL grows until restart
  }

  /** Runs a last checkpoint and stops the thread. */
  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.postMessage("stop");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  }
}
