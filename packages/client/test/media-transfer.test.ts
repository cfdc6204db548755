// Send and receive files through a real server's content store with a device registered by the SDK.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { defaultConfig, startServer } from "@parley/server";
import pino from "pino";
import {
  decodeMediaDescriptor,
  downloadMedia,
  encodeMediaDescriptor,
  forwardDescriptor,
  type MediaDescriptor,
  type MediaProgress,
  mediaDir,
  uploadMediaFile,
} from "../src/media/index.node.ts";
import { cuttingProxy, type MediaWorld, rampWav, startMediaWorld, tempDir } from "./media-helpers.ts";

function tinyPng(): Uint8Array {
  // A valid 1x1 PNG (signature, IHDR, IDAT, IEND) padded into a 3x2 header for the size check.
  const hex =
    "89504e470d0a1a0a0000000d4948445200000003000000020806000000b8e3ba1c0000000d49444154789c63f8ffff3f0300050001ffa7c7d70000000049454e44ae426082";
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function blobFile(world: MediaWorld, d: MediaDescriptor): string {
  return join(world.dataDir, "media", "blobs", d.pointer.blobId.slice(0, 2), d.pointer.blobId);
}

describe("media transfer through the content store", () => {
  let w: MediaWorld;
  let files: string;
  let inbox: string;
  before(async () => {
    w = await startMediaWorld();
    files = tempDir("files");
    inbox = mediaDir(tempDir("recipient"));
    w.dirs.push(files, join(inbox, ".."));
  });
  after(() => w.stop());

  const upload = (path: string, extra: Partial<Parameters<typeof uploadMediaFile>[1]> = {}) =>
    uploadMediaFile(path, { baseUrl: w.baseUrl, credentials: w.credentials, ...extra });

  it("sends an image with dimensions and an inline thumbnail; the descriptor survives encoding", async () => {
    const path = join(files, "dot.png");
    writeFileSync(path, tinyPng());
    const progress: MediaProgress[] = [];
    const d = await upload(path, { onProgress: (p) => progress.push(p) });
    assert.equal(d.type, "image");
    assert.equal(d.mime, "image/png");
    assert.equal(d.fileName, "dot.png");
    assert.deepEqual([d.width, d.height], [3, 2]);
    assert.deepEqual(d.thumbnail, tinyPng());
    assert.ok(progress.at(-1)?.done);
    const received = decodeMediaDescriptor(encodeMediaDescriptor(d));
    const got = await downloadMedia(received, { destDir: inbox });
    assert.equal(got.path, join(inbox, "dot.png"));
    assert.deepEqual(new Uint8Array(readFileSync(got.path)), tinyPng());
    // The store holds only ciphertext.
    assert.ok(!readFileSync(blobFile(w, d)).includes(Buffer.from(tinyPng().subarray(0, 16))));
    // A second download never overwrites the first.
    const again = await downloadMedia(received, { destDir: inbox });
    assert.equal(again.path, join(inbox, "dot (1).png"));
  });

  it("sends a 0-byte file", async () => {
    const path = join(files, "empty.txt");
    writeFileSync(path, "");
    const d = await upload(path);
    assert.equal(d.size, 0);
    const got = await downloadMedia(d, { destDir: inbox });
    assert.equal(readFileSync(got.path).length, 0);
  });

  it("sends a voice note with its waveform and duration", async () => {
    const path = join(files, "voice.wav");
    writeFileSync(path, rampWav(3));
    const d = await upload(path);
    assert.equal(d.type, "audio");
    assert.equal(d.durationSec, 3);
    assert.equal(d.waveform?.length, 64);
    assert.ok(d.waveform![63]! > d.waveform![0]!);
    const got = await downloadMedia(d, { destDir: inbox });
    assert.deepEqual(readFileSync(got.path), readFileSync(path));
  });

  it("forwarding re-sends the descriptor: the same blob downloads again, no second upload", async () => {
    const path = join(files, "report.pdf");
    writeFileSync(path, randomBytes(50_000));
    const d = await upload(path);
    const blobsBefore = readdirSync(join(w.dataDir, "media", "blobs"), { recursive: true }).length;
    const forwarded = decodeMediaDescriptor(encodeMediaDescriptor(forwardDescriptor(d)));
    assert.deepEqual(forwarded.pointer, d.pointer);
    const other = mediaDir(tempDir("third"));
    w.dirs.push(join(other, ".."));
    const got = await downloadMedia(forwarded, { destDir: other });
    assert.deepEqual(readFileSync(got.path), readFileSync(path));
    assert.equal(readdirSync(join(w.dataDir, "media", "blobs"), { recursive: true }).length, blobsBefore);
  });

  it("refuses a tampered, truncated or wrongly keyed blob and leaves no file behind", async () => {
    const path = join(files, "secret.bin");
    writeFileSync(path, randomBytes(70_000));
    const d = await upload(path);
    const dest = mediaDir(tempDir("victim"));
    w.dirs.push(join(dest, ".."));
    const stored = blobFile(w, d);
    const original = readFileSync(stored);

    await assert.rejects(downloadMedia({ ...d, mediaKey: new Uint8Array(32).fill(1) }, { destDir: dest }), {
      code: "MAC_MISMATCH",
    });
    const tampered = Buffer.from(original);
    tampered[1000]! ^= 0x40;
    writeFileSync(stored, tampered);
    await assert.rejects(downloadMedia(d, { destDir: dest }), { code: "BLOB_HASH_MISMATCH" });
    // Even with a descriptor naming the tampered blob's hash, the MAC catches it.
    const sha = new Uint8Array(createHash("sha256").update(tampered).digest());
    await assert.rejects(downloadMedia({ ...d, fileEncSha256: sha }, { destDir: dest }), { code: "MAC_MISMATCH" });
    writeFileSync(stored, original.subarray(0, original.length - 100));
    await assert.rejects(downloadMedia(d, { destDir: dest }), { code: "SIZE_MISMATCH" });
    writeFileSync(stored, Buffer.concat([original, Buffer.from("extra")]));
    await assert.rejects(downloadMedia(d, { destDir: dest }), { code: "SIZE_MISMATCH" });
    assert.deepEqual(readdirSync(dest), []);
    writeFileSync(stored, original);
    await downloadMedia(d, { destDir: dest });
    assert.deepEqual(readdirSync(dest), ["secret.bin"]);
  });

  it("resumes an upload and a download cut mid-way", async () => {
    const path = join(files, "movie.mp4");
    const content = randomBytes(3 * 1024 * 1024);
    writeFileSync(path, content);
    const port = Number(new URL(w.baseUrl).port);
    const up = await cuttingProxy(port, "up", 1024 * 1024);
    try {
      const d = await uploadMediaFile(path, { baseUrl: up.url, credentials: w.credentials });
      assert.equal(up.cuts, 1);
      assert.equal(d.type, "video");
      const down = await cuttingProxy(port, "down", 1500 * 1024);
      try {
        const seen: MediaProgress[] = [];
        const got = await downloadMedia(
          { ...d, pointer: { ...d.pointer, serverUrl: down.url } },
          { destDir: inbox, onProgress: (p) => seen.push(p) },
        );
        assert.equal(down.cuts, 1);
        assert.ok(readFileSync(got.path).equals(content));
        assert.ok(seen.some((p) => p.phase === "decrypt" && p.done));
      } finally {
        await down.close();
      }
    } finally {
      await up.close();
    }
  });

  it("an upload without valid device credentials is refused (UNAUTHORIZED), a missing blob is NOT_FOUND", async () => {
    const path = join(files, "x.txt");
    writeFileSync(path, "hello");
    await assert.rejects(
      uploadMediaFile(path, {
        baseUrl: w.baseUrl,
        credentials: { ...w.credentials, identityPrivateKey: new Uint8Array(32).fill(9) },
      }),
      { code: "UNAUTHORIZED" },
    );
    const d = await upload(path);
    await assert.rejects(
      downloadMedia(
        { ...d, pointer: { ...d.pointer, blobId: Buffer.from(randomBytes(32)).toString("base64url") } },
        { destDir: inbox },
      ),
      { code: "NOT_FOUND" },
    );
  });

  it("a file over the server's limit is refused with TOO_LARGE", async () => {
    // A second worker on the same data directory (same accounts) with a 64 KiB limit.
    const small = await startServer(
      {
        ...defaultConfig(),
        workers: 0,
        port: 0,
        tcpPort: 0,
        dev: true,
        dataDir: w.dataDir,
        logLevel: "silent",
        mediaMaxBytes: 64 * 1024,
      },
      { log: pino({ level: "silent" }) },
    );
    try {
      const path = join(files, "big.bin");
      writeFileSync(path, randomBytes(64 * 1024));
      await assert.rejects(
        uploadMediaFile(path, { baseUrl: `http://127.0.0.1:${small.httpPort}`, credentials: w.credentials }),
        { code: "TOO_LARGE" },
      );
    } finally {
      await small.close();
    }
  });
});
