// A 200 MiB file through the whole path (encrypt+upload, download+verify+decrypt) in constant
// memory: the file is generated in 1 MiB pieces and never held whole, and RSS (client and
// in-process server together) must stay far below the file's size.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { downloadMedia, uploadMediaFile } from "../src/media/index.node.ts";
import { type MediaWorld, startMediaWorld, tempDir } from "./media-helpers.ts";

const MiB = 1024 * 1024;
const SIZE = 200 * MiB;

async function writeLargeFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  const piece = Buffer.alloc(MiB);
  for (let i = 0; i < SIZE / MiB; i++) {
    piece.fill(i % 251);
    piece.writeUInt32BE(i, 0);
    hash.update(piece);
    if (!out.write(piece)) await new Promise<void>((r) => out.once("drain", () => r()));
    // write() keeps a reference: give the next piece its own buffer only after the flush
    await new Promise((r) => setImmediate(r));
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  return hash.digest("hex");
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

describe("a 200 MiB attachment", () => {
  let w: MediaWorld;
  let dir: string;
  before(async () => {
    w = await startMediaWorld({ mediaMaxBytes: 300 * MiB });
    dir = tempDir("large");
    w.dirs.push(dir);
  });
  after(() => w.stop());

  it("uploads and downloads with bounded memory", async () => {
    const path = join(dir, "big.bin");
    const expected = await writeLargeFile(path);
    global.gc?.();
    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 25);
    try {
      const d = await uploadMediaFile(path, {
        baseUrl: w.baseUrl,
        credentials: w.credentials,
        mime: "application/octet-stream",
      });
      assert.equal(d.size, SIZE);
      rmSync(path);
      const got = await downloadMedia(d, { destDir: join(dir, "inbox") });
      assert.equal(await sha256File(got.path), expected);
    } finally {
      clearInterval(sampler);
    }
    const grew = (peak - baseline) / MiB;
    assert.ok(grew < 100, `RSS grew by ${grew.toFixed(0)} MiB while moving ${SIZE / MiB} MiB`);
  });
});
