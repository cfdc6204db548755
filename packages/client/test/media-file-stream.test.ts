// The file-level fast paths: EncryptedFileStream (the upload body: read, hash, encrypt, MAC in one
// stage, skipping what a resumed upload already sent) against the buffer construction, and
// decryptBlobFile (double-buffered read, decrypt, writev; into another file or in place) round
// trips and its typed failures.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CRYPTO_SLICE_BYTES, EncryptedFileStream, FILE_READ_BYTES } from "../src/media/encrypt-file.node.ts";
import { decryptBlobFile, encryptMediaBytes } from "../src/media/index.node.ts";

const dir = mkdtempSync(join(tmpdir(), "parley-media-file-stream-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(stream: EncryptedFileStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

const SIZES = [0, 5, 15, 16, 17, CRYPTO_SLICE_BYTES - 1, CRYPTO_SLICE_BYTES, FILE_READ_BYTES + 17, 2 * FILE_READ_BYTES];

describe("EncryptedFileStream", () => {
  for (const size of SIZES) {
    it(`matches the buffer construction for ${size} bytes, whole and resumed`, async () => {
      const plain = randomBytes(size);
      const path = join(dir, `plain-${size}`);
      writeFileSync(path, plain);
      const key = randomBytes(32);
      const want = encryptMediaBytes(plain, key, "video");
      const whole = new EncryptedFileStream(path, key, "video");
      assert.ok(Buffer.from(want.blob).equals(await readAll(whole)));
      assert.deepEqual(whole.result, { size, fileSha256: want.fileSha256, fileEncSha256: want.fileEncSha256 });
      for (const skip of [1, 16, Math.floor(want.blob.length / 2), want.blob.length - 10, want.blob.length]) {
        let counted = 0;
        const resumed = new EncryptedFileStream(path, key, "video", skip, (n) => {
          counted += n;
        });
        const rest = await readAll(resumed);
        assert.ok(Buffer.from(want.blob.subarray(skip)).equals(rest), `skip ${skip}`);
        assert.equal(counted, rest.length);
        assert.deepEqual(resumed.result?.fileEncSha256, want.fileEncSha256);
      }
    });
  }

  it("a missing file fails the stream instead of hanging", async () => {
    await assert.rejects(readAll(new EncryptedFileStream(join(dir, "absent"), randomBytes(32), "image")), {
      code: "ENOENT",
    });
  });
});

describe("decryptBlobFile", () => {
  for (const size of [0, 1, CRYPTO_SLICE_BYTES + 3, FILE_READ_BYTES, 3 * FILE_READ_BYTES + 5]) {
    it(`round-trips ${size} bytes`, async () => {
      const plain = randomBytes(size);
      const key = randomBytes(32);
      const enc = encryptMediaBytes(plain, key, "document");
      const blobPath = join(dir, `blob-${size}`);
      writeFileSync(blobPath, enc.blob);
      const out = join(dir, `out-${size}`);
      let seen = 0;
      await decryptBlobFile(
        blobPath,
        out,
        { size, fileSha256: enc.fileSha256, mediaKey: key, type: "document" },
        (n) => {
          seen += n;
        },
      );
      assert.ok(readFileSync(out).equals(plain));
      assert.equal(seen, size);
    });

    it(`decrypts ${size} bytes in place (the blob file becomes the plaintext, cut to its size)`, async () => {
      const plain = randomBytes(size);
      const key = randomBytes(32);
      const enc = encryptMediaBytes(plain, key, "image");
      const path = join(dir, `in-place-${size}`);
      writeFileSync(path, enc.blob);
      await decryptBlobFile(path, path, { size, fileSha256: enc.fileSha256, mediaKey: key, type: "image" });
      assert.ok(readFileSync(path).equals(plain));
    });
  }

  it("a wrong key is DECRYPT_FAILED, an unwritable target is IO", async () => {
    const plain = randomBytes(100_000);
    const key = randomBytes(32);
    const enc = encryptMediaBytes(plain, key, "document");
    const blobPath = join(dir, "blob-bad");
    writeFileSync(blobPath, enc.blob);
    const expected = {
      size: plain.length,
      fileSha256: enc.fileSha256,
      mediaKey: randomBytes(32),
      type: "document" as const,
    };
    await assert.rejects(decryptBlobFile(blobPath, join(dir, "out-bad"), expected), { code: "DECRYPT_FAILED" });
    await assert.rejects(decryptBlobFile(blobPath, join(dir, "no-such-dir", "out"), { ...expected, mediaKey: key }), {
      code: "IO",
    });
  });
});
