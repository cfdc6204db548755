// The media building blocks without a server: key schedule and blob format checked against an
// independent computation with @noble/*, the streaming Node path against the buffer path, the
// descriptor codec (round trips and hostile input), waveform, image sizes, progress.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { cbc } from "@noble/ciphers/aes.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import {
  BlobVerifier,
  decodeMediaDescriptor,
  decryptMediaBytes,
  deriveMediaKeys,
  encodeMediaDescriptor,
  encryptedSize,
  encryptMediaBytes,
  forwardDescriptor,
  imageSize,
  type MediaDescriptor,
  MediaEncryptStream,
  MediaError,
  type MediaProgress,
  mediaBaseUrl,
  ProgressMeter,
  renderProgressLine,
  safeFileName,
  terminalProgress,
  WavWaveform,
  waveformFromSamples,
} from "../src/media/index.node.ts";
import { rampWav } from "./media-helpers.ts";

function referenceBlob(plain: Uint8Array, mediaKey: Uint8Array, info: string): Uint8Array {
  const expanded = hkdf(sha256, mediaKey, new Uint8Array(32), new TextEncoder().encode(info), 112);
  const iv = expanded.slice(0, 16);
  const ct = cbc(expanded.slice(16, 48), iv).encrypt(plain);
  const mac = hmac(sha256, expanded.slice(48, 80), new Uint8Array([...iv, ...ct])).slice(0, 10);
  return new Uint8Array([...ct, ...mac]);
}

async function streamEncrypt(plain: Uint8Array, key: Uint8Array, chunk: number) {
  const enc = new MediaEncryptStream(key, "document");
  const out: Buffer[] = [];
  const chunks = [];
  for (let i = 0; i < plain.length; i += chunk) chunks.push(Buffer.from(plain.subarray(i, i + chunk)));
  await pipeline(
    Readable.from(chunks),
    enc,
    new Writable({
      write(c: Buffer, _e, done) {
        out.push(c);
        done();
      },
    }),
  );
  return { blob: Buffer.concat(out), result: enc.result! };
}

const sample = (over: Partial<MediaDescriptor> = {}): MediaDescriptor => ({
  pointer: { blobId: Buffer.from(randomBytes(32)).toString("base64url"), serverUrl: "https://chat.example.org" },
  type: "image",
  mediaKey: new Uint8Array(randomBytes(32)),
  fileEncSha256: new Uint8Array(randomBytes(32)),
  fileSha256: new Uint8Array(randomBytes(32)),
  mime: "image/jpeg",
  size: 12345,
  fileName: "photo.jpg",
  ...over,
});

describe("media crypto", () => {
  it("matches an independent HKDF / AES-256-CBC / HMAC computation for every media type", () => {
    const infos = {
      image: "Parley Image Keys",
      video: "Parley Video Keys",
      audio: "Parley Audio Keys",
      document: "Parley Document Keys",
    } as const;
    for (const [type, info] of Object.entries(infos) as [keyof typeof infos, string][]) {
      const key = new Uint8Array(randomBytes(32));
      for (const size of [0, 1, 15, 16, 17, 1000]) {
        const plain = new Uint8Array(randomBytes(size));
        const mine = encryptMediaBytes(plain, key, type);
        assert.deepEqual(mine.blob, referenceBlob(plain, key, info));
        assert.equal(mine.blob.length, encryptedSize(size));
        assert.deepEqual(mine.fileSha256, sha256(plain));
        assert.deepEqual(mine.fileEncSha256, sha256(mine.blob));
        assert.deepEqual(decryptMediaBytes(mine.blob, key, type, mine), plain);
      }
    }
  });

  it("the streaming encryptor gives the same bytes for any chunking", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), async (plain, chunk) => {
        const key = new Uint8Array(32).fill(7);
        const { blob, result } = await streamEncrypt(plain, key, chunk);
        const ref = encryptMediaBytes(plain, key, "document");
        assert.deepEqual(new Uint8Array(blob), ref.blob);
        assert.deepEqual(result.fileEncSha256, ref.fileEncSha256);
        assert.deepEqual(result.fileSha256, ref.fileSha256);
        assert.equal(result.size, plain.length);
        // The streaming verifier accepts it, fed in odd pieces.
        const v = new BlobVerifier(plain.length, key, "document");
        for (let i = 0; i < blob.length; i += 37) v.update(blob.subarray(i, i + 37));
        v.verify(ref.fileEncSha256);
      }),
      { numRuns: 40 },
    );
  });

  it("rejects tampering, a wrong key and a wrong length with typed errors", () => {
    const key = new Uint8Array(randomBytes(32));
    const plain = new Uint8Array(randomBytes(100));
    const { blob, fileEncSha256, fileSha256 } = encryptMediaBytes(plain, key, "video");
    const flipped = blob.slice();
    flipped[5]! ^= 1;
    assert.throws(() => decryptMediaBytes(flipped, key, "video", { fileEncSha256 }), { code: "BLOB_HASH_MISMATCH" });
    assert.throws(() => decryptMediaBytes(flipped, key, "video"), { code: "MAC_MISMATCH" });
    assert.throws(() => decryptMediaBytes(blob, new Uint8Array(32), "video"), { code: "MAC_MISMATCH" });
    assert.throws(() => decryptMediaBytes(blob, key, "audio"), { code: "MAC_MISMATCH" });
    assert.throws(() => decryptMediaBytes(blob.subarray(0, 50), key, "video"), { code: "SIZE_MISMATCH" });
    assert.throws(() => decryptMediaBytes(blob, key, "video", { fileSha256: fileEncSha256 }), {
      code: "DECRYPT_FAILED",
    });
    assert.deepEqual(decryptMediaBytes(blob, key, "video", { fileSha256 }), plain);
    const v = new BlobVerifier(100, key, "video");
    assert.throws(() => v.update(new Uint8Array(blob.length + 1)), { code: "SIZE_MISMATCH" });
    const short = new BlobVerifier(100, key, "video");
    short.update(blob.subarray(0, 60));
    assert.throws(() => short.verify(fileEncSha256), { code: "SIZE_MISMATCH" });
    assert.throws(() => deriveMediaKeys(new Uint8Array(31), "image"), MediaError);
  });
});

describe("media descriptor", () => {
  it("round-trips every field, and forwarding copies the pointer", () => {
    const d = sample({
      width: 640,
      height: 480,
      durationSec: 12,
      thumbnail: new Uint8Array([1, 2, 3]),
      waveform: new Uint8Array(64).fill(50),
    });
    const bytes = encodeMediaDescriptor(d);
    assert.ok(bytes.length < 400, `compact: ${bytes.length} bytes`);
    assert.deepEqual(decodeMediaDescriptor(bytes), d);
    const minimal = sample({ fileName: "", size: 0 });
    assert.deepEqual(decodeMediaDescriptor(encodeMediaDescriptor(minimal)), minimal);
    const f = forwardDescriptor(d);
    assert.deepEqual(f, d);
    assert.notEqual(f.mediaKey, d.mediaKey);
  });

  it("round-trips arbitrary valid descriptors (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          size: fc.maxSafeNat(),
          fileName: fc.string({ maxLength: 60 }),
          width: fc.option(fc.nat({ max: 1_000_000 }), { nil: undefined }),
          durationSec: fc.option(fc.nat({ max: 86_400 }), { nil: undefined }),
          thumbnail: fc.option(fc.uint8Array({ minLength: 1, maxLength: 4096 }), { nil: undefined }),
        }),
        (over) => {
          const d = sample(Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined)));
          assert.deepEqual(decodeMediaDescriptor(encodeMediaDescriptor(d)), d);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("decodes hostile bytes only into MediaError(BAD_DESCRIPTOR)", () => {
    const good = encodeMediaDescriptor(sample());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(255), (junk, at, byte) => {
        for (const input of [
          junk,
          Uint8Array.from(good, (b, i) => (i === at % good.length ? byte : b)),
          good.subarray(0, at % good.length),
        ]) {
          try {
            decodeMediaDescriptor(input);
          } catch (err) {
            assert.ok(err instanceof MediaError && err.code === "BAD_DESCRIPTOR", String(err));
          }
        }
      }),
      { numRuns: 500 },
    );
    const withExtra = new Uint8Array([...good, 99, 0]);
    assert.throws(() => decodeMediaDescriptor(withExtra), { code: "BAD_DESCRIPTOR" });
    const dup = new Uint8Array([...good, 9, 1, 65]);
    assert.throws(() => decodeMediaDescriptor(dup), { code: "BAD_DESCRIPTOR" });
    assert.throws(
      () => encodeMediaDescriptor(sample({ pointer: { blobId: "../../etc/passwd", serverUrl: "https://x" } })),
      { code: "BAD_DESCRIPTOR" },
    );
    assert.throws(() => encodeMediaDescriptor(sample({ thumbnail: new Uint8Array(5000) })), { code: "BAD_DESCRIPTOR" });
    assert.throws(() => encodeMediaDescriptor(sample({ waveform: new Uint8Array(64).fill(101) })), {
      code: "BAD_DESCRIPTOR",
    });
    assert.throws(() => encodeMediaDescriptor(sample({ mime: "text/html\r\nx: y" })), { code: "BAD_DESCRIPTOR" });
  });

  it("derives the content store URL and safe file names", () => {
    assert.equal(mediaBaseUrl("ws://127.0.0.1:7420/ws"), "http://127.0.0.1:7420");
    assert.equal(mediaBaseUrl("wss://chat.example.org/parley/ws"), "https://chat.example.org/parley");
    assert.throws(() => mediaBaseUrl("tcp://127.0.0.1:7421"), { code: "BAD_INPUT" });
    const d = sample();
    assert.equal(safeFileName({ ...d, fileName: "../../.ssh/authorized_keys" }), "authorized_keys");
    assert.equal(safeFileName({ ...d, fileName: "..\\..\\evil.exe" }), "evil.exe");
    assert.equal(safeFileName({ ...d, fileName: ".bashrc" }), "bashrc");
    assert.equal(safeFileName({ ...d, fileName: "a\u0000b\nc.txt" }), "a_b_c.txt");
    assert.match(safeFileName({ ...d, fileName: ".." }), /^media-[0-9a-f]{16}\.jpg$/);
  });
});

describe("waveform, image size, progress", () => {
  it("computes a 64-value waveform and the duration from a WAV fed in any chunking", () => {
    const file = rampWav(4);
    for (const chunk of [1, 7, 4096, file.length]) {
      const w = new WavWaveform();
      for (let i = 0; i < file.length; i += chunk) w.push(file.subarray(i, i + chunk));
      const info = w.finish()!;
      assert.equal(info.durationSec, 4);
      assert.equal(info.waveform.length, 64);
      assert.equal(Math.max(...info.waveform), 100);
      assert.ok(info.waveform[0]! < 5 && info.waveform[63]! > 95);
      for (let i = 1; i < 64; i++) assert.ok(info.waveform[i]! >= info.waveform[i - 1]! - 2);
    }
    const w = new WavWaveform();
    w.push(new TextEncoder().encode("not a wav file at all"));
    assert.equal(w.finish(), null);
    assert.deepEqual(waveformFromSamples(new Int16Array(1000)), new Uint8Array(64));
  });

  it("reads PNG, GIF and JPEG dimensions from the header", () => {
    const png = new Uint8Array(24);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    new DataView(png.buffer).setUint32(16, 640);
    new DataView(png.buffer).setUint32(20, 480);
    assert.deepEqual(imageSize(png), { width: 640, height: 480 });
    const gif = new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x20, 0x01, 0x10, 0x00]);
    assert.deepEqual(imageSize(gif), { width: 288, height: 16 });
    const jpeg = new Uint8Array([
      0xff, 0xd8, 0xff, 0xe0, 0, 4, 1, 2, 0xff, 0xc0, 0, 11, 8, 0x01, 0x00, 0x02, 0x00, 3, 0, 0, 0,
    ]);
    assert.deepEqual(imageSize(jpeg), { width: 512, height: 256 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => void imageSize(b)));
  });

  it("reports bytes, rate and ETA, and the terminal bar is silent when not a TTY", () => {
    let t = 0;
    const seen: MediaProgress[] = [];
    const m = new ProgressMeter(
      "upload",
      1000,
      (p) => seen.push(p),
      () => t,
    );
    m.add(10); // within the interval: not reported
    t = 1000;
    m.add(90);
    t = 2000;
    m.add(100);
    m.done();
    assert.equal(seen.length, 3);
    assert.equal(seen[0]!.rateBytesPerSec, 100);
    assert.equal(seen[0]!.etaSec, 9);
    assert.equal(seen[2]!.done, true);
    assert.match(
      renderProgressLine("photo.jpg", seen[1]!, 100),
      /photo\.jpg upload \[#+-+\]\s+20% 200 B\/1000 B 100 B\/s ETA 0:08/,
    );
    const writes: string[] = [];
    const sink = () =>
      new Writable({
        write(c: Buffer, _e, done) {
          writes.push(String(c));
          done();
        },
      });
    const notTty = Object.assign(sink(), { isTTY: false });
    terminalProgress({ stream: notTty as unknown as NodeJS.WriteStream })(seen[0]!);
    assert.deepEqual(writes, []);
    const tty = Object.assign(sink(), { isTTY: true, columns: 80 });
    terminalProgress({ stream: tty as unknown as NodeJS.WriteStream, label: "x" })(seen[2]!);
    assert.equal(writes.length, 1);
    assert.match(writes[0]!, /^\rx upload .*100%.*\n$/);
  });
});
