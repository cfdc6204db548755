import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, truncateSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { FsBlobStore, isValidMediaId, MEDIA_ID_LENGTH, newMediaId, UPLOAD_TTL_MS } from "../src/media/index.ts";
import { type Answer, call, errorCode, type Harness, startMediaServer } from "./media-helpers/harness.ts";

const DAY = 86_400_000;
const LIMIT = 1024 * 1024;

describe("media content store over HTTP", () => {
  let h: Harness;
  before(async () => {
    h = await startMediaServer({ mediaMaxBytes: LIMIT, mediaRetentionDays: 30 });
  });
  after(() => h.stop());

  async function startUpload(who = h.alice, headers: Record<string, string> = {}): Promise<string> {
    const r = await call(h.port, "POST", "/media", { authorization: h.auth(who), ...headers });
    assert.equal(r.status, 201, r.body.toString());
    const id = (JSON.parse(r.body.toString()) as { id: string }).id;
    assert.ok(isValidMediaId(id));
    assert.equal(r.headers.location, `/media/${id}`);
    return id;
  }

  async function uploadWhole(content: Uint8Array): Promise<string> {
    const id = await startUpload();
    const p = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: h.auth(h.alice), "upload-offset": "0" },
      content,
    );
    assert.equal(p.status, 204);
    const c = await call(h.port, "POST", `/media/${id}/complete`, { authorization: h.auth(h.alice) });
    assert.equal(c.status, 200);
    return id;
  }

  it("uploads in chunks (Upload-Offset and Content-Range), then serves the blob with ETag and ranges", async () => {
    const content = randomBytes(100_000);
    const id = await startUpload(h.alice, { "upload-length": String(content.length) });
    const auth = h.auth(h.alice);
    let r = await call(h.port, "HEAD", `/media/${id}`, { authorization: auth });
    assert.equal(r.status, 200);
    assert.equal(r.headers["upload-offset"], "0");
    r = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: auth, "upload-offset": "0" },
      content.subarray(0, 40_000),
    );
    assert.equal(r.status, 204);
    assert.equal(r.headers["upload-offset"], "40000");
    r = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: auth, "content-range": `bytes 40000-99999/${content.length}` },
      content.subarray(40_000),
    );
    assert.equal(r.status, 204);
    assert.equal(r.headers["upload-offset"], "100000");
    // Not downloadable before completion.
    assert.equal((await call(h.port, "GET", `/media/${id}`)).status, 404);
    r = await call(h.port, "POST", `/media/${id}/complete`, { authorization: auth });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body.toString()), { id, size: 100_000 });

    const full = await call(h.port, "GET", `/media/${id}`);
    assert.equal(full.status, 200);
    assert.ok(full.body.equals(content));
    assert.equal(full.headers.etag, `"${id}"`);
    assert.equal(full.headers["accept-ranges"], "bytes");
    const part = await call(h.port, "GET", `/media/${id}`, { range: "bytes=10-19" });
    assert.equal(part.status, 206);
    assert.equal(part.headers["content-range"], "bytes 10-19/100000");
    assert.ok(part.body.equals(content.subarray(10, 20)));
    const suffix = await call(h.port, "GET", `/media/${id}`, { range: "bytes=-5" });
    assert.ok(suffix.body.equals(content.subarray(-5)));
    const open = await call(h.port, "GET", `/media/${id}`, { range: "bytes=99990-" });
    assert.equal(open.status, 206);
    assert.ok(open.body.equals(content.subarray(99_990)));
    const bad = await call(h.port, "GET", `/media/${id}`, { range: "bytes=100000-" });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers["content-range"], "bytes */100000");
    const staleIfRange = await call(h.port, "GET", `/media/${id}`, { range: "bytes=0-9", "if-range": '"other"' });
    assert.equal(staleIfRange.status, 200);
    assert.equal((await call(h.port, "GET", `/media/${id}`, { "if-none-match": `"${id}"` })).status, 304);
    const head = await call(h.port, "HEAD", `/media/${id}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "100000");
    // Finished: no more appends or completion.
    assert.equal(
      (
        await call(
          h.port,
          "PATCH",
          `/media/${id}`,
          { authorization: auth, "upload-offset": "100000" },
          Buffer.from("x"),
        )
      ).status,
      404,
    );
    assert.equal((await call(h.port, "POST", `/media/${id}/complete`, { authorization: auth })).status, 404);
  });

  it("refuses uploads without a valid device signature (401)", async () => {
    const no = await call(h.port, "POST", "/media");
    assert.equal(no.status, 401);
    assert.equal(errorCode(no), "UNAUTHORIZED");
    const stale = await call(h.port, "POST", "/media", { authorization: h.auth(h.alice, h.clock.now() - 6 * 60_000) });
    assert.equal(stale.status, 401);
    const future = await call(h.port, "POST", "/media", { authorization: h.auth(h.alice, h.clock.now() + 6 * 60_000) });
    assert.equal(future.status, 401);
    // Alice's header with Bob's name: the signature is checked against Bob's identity key.
    const forged = h.auth(h.alice).replace("Parley alice:", "Parley bob:");
    assert.equal((await call(h.port, "POST", "/media", { authorization: forged })).status, 401);
    const unknown = h.auth({ ...h.alice, user: "mallory" });
    assert.equal((await call(h.port, "POST", "/media", { authorization: unknown })).status, 401);
    const otherDevice = h.auth({ ...h.alice, device: 2 });
    assert.equal((await call(h.port, "POST", "/media", { authorization: otherDevice })).status, 401);
    for (const junk of ["Parley", "Bearer x", `Parley alice:1:${Math.floor(h.clock.now() / 1000)}:${"A".repeat(86)}`]) {
      assert.equal((await call(h.port, "POST", "/media", { authorization: junk })).status, 401, junk);
    }
    // Appending or completing needs the uploader's own credentials too.
    const id = await startUpload(h.alice);
    assert.equal((await call(h.port, "PATCH", `/media/${id}`, { "upload-offset": "0" }, Buffer.from("x"))).status, 401);
    const bobs = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: h.auth(h.bob), "upload-offset": "0" },
      Buffer.from("x"),
    );
    assert.equal(bobs.status, 404);
    assert.equal((await call(h.port, "POST", `/media/${id}/complete`, { authorization: h.auth(h.bob) })).status, 404);
    assert.equal((await call(h.port, "HEAD", `/media/${id}`)).status, 401);
  });

  it("answers hostile or malformed ids with 400 without touching the filesystem", async () => {
    const valid = newMediaId();
    const hostile = [
      "/media/../../etc/passwd",
      "/media/..%2F..%2Fetc%2Fpasswd",
      "/media/%2e%2e",
      "/media/..",
      "/media/.",
      "/media/AAAA",
      `/media/${valid}A`,
      `/media/${valid.slice(0, 42)}B`, // non-canonical last character
      `/media/${valid.slice(0, 42)}=`,
      `/media/${valid.slice(0, 40)}%00xx`,
      `/media/${"A".repeat(5000)}`,
      `/media/${valid.slice(0, 42)}/`,
      "/media//etc/passwd",
      `/media/${valid.replace(/^../, "..")}`,
    ];
    const before = readdirSync(join(h.dataDir, "media"), { recursive: true }).sort();
    for (const path of hostile) {
      for (const method of ["GET", "HEAD", "PATCH", "POST"]) {
        const r = await call(h.port, method, method === "POST" ? `${path}/complete` : path, {
          authorization: h.auth(h.alice),
          "upload-offset": "0",
        });
        if (path === `/media/${valid.replace(/^../, "..")}` && isValidMediaId(valid.replace(/^../, ".."))) continue;
        assert.equal(r.status, 400, `${method} ${path}`);
        if (method !== "HEAD") assert.equal(errorCode(r), "BAD_MEDIA_ID");
      }
    }
    assert.deepEqual(readdirSync(join(h.dataDir, "media"), { recursive: true }).sort(), before);
    // A valid but unknown id is simply not there.
    assert.equal((await call(h.port, "GET", `/media/${valid}`)).status, 404);
  });

  it("rejects arbitrary non-id strings (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 60 }).filter((s) => !isValidMediaId(s) && !s.includes("/") && !s.includes("?")),
        async (s) => {
          const r = await call(h.port, "GET", `/media/${encodeURIComponent(s)}`);
          assert.equal(r.status, encodeURIComponent(s) === "" ? 405 : 400);
        },
      ),
      { numRuns: 60 },
    );
    assert.equal(MEDIA_ID_LENGTH, 43);
    fc.assert(
      fc.property(fc.constant(null), () => isValidMediaId(newMediaId())),
      { numRuns: 100 },
    );
  });

  it("enforces the size limit with 413", async () => {
    const declared = await call(h.port, "POST", "/media", {
      authorization: h.auth(h.alice),
      "upload-length": String(LIMIT + 1),
    });
    assert.equal(declared.status, 413);
    assert.equal(errorCode(declared), "TOO_LARGE");
    const id = await startUpload();
    // Content-Length over the limit: refused before any byte is read.
    const early = await new Promise<Answer>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: h.port,
          method: "PATCH",
          path: `/media/${id}`,
          agent: false,
          headers: { authorization: h.auth(h.alice), "upload-offset": "0", "content-length": String(LIMIT + 1) },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) });
          });
        },
      );
      req.on("error", reject);
      req.flushHeaders();
    });
    assert.equal(early.status, 413);
    // Exactly at the limit is fine.
    const ok = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: h.auth(h.alice), "upload-offset": "0" },
      randomBytes(LIMIT),
    );
    assert.equal(ok.status, 204);
    // A chunked body that runs past the limit: the upload is dropped.
    const id2 = await startUpload();
    await new Promise<void>((resolve) => {
      const req = request({
        host: "127.0.0.1",
        port: h.port,
        method: "PATCH",
        path: `/media/${id2}`,
        agent: false,
        headers: { authorization: h.auth(h.alice), "upload-offset": "0", "transfer-encoding": "chunked" },
      });
      req.on("response", (res) => {
        assert.equal(res.statusCode, 413);
        res.resume();
        resolve();
      });
      req.on("error", () => resolve());
      req.end(randomBytes(LIMIT + 1000));
    });
    assert.equal((await call(h.port, "HEAD", `/media/${id2}`, { authorization: h.auth(h.alice) })).status, 404);
  });

  it("resumes an upload that broke off: HEAD tells the committed offset, a wrong offset is 409", async () => {
    const content = randomBytes(600_000);
    const id = await startUpload();
    const auth = h.auth(h.alice);
    await new Promise<void>((resolve) => {
      const req = request({
        host: "127.0.0.1",
        port: h.port,
        method: "PATCH",
        path: `/media/${id}`,
        agent: false,
        headers: { authorization: auth, "upload-offset": "0", "content-length": String(content.length) },
      });
      req.on("error", () => resolve());
      req.write(content.subarray(0, 250_000), () => setTimeout(() => req.destroy(), 100));
      req.on("close", () => resolve());
    });
    let offset = 0;
    for (let i = 0; i < 50; i++) {
      const r = await call(h.port, "HEAD", `/media/${id}`, { authorization: auth });
      offset = Number(r.headers["upload-offset"]);
      if (offset === 250_000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(offset > 0 && offset <= 250_000, `committed ${offset}`);
    const wrong = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: auth, "upload-offset": "0" },
      content.subarray(0, 10),
    );
    assert.equal(wrong.status, 409);
    assert.equal(wrong.headers["upload-offset"], String(offset));
    const rest = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: auth, "upload-offset": String(offset) },
      content.subarray(offset),
    );
    assert.equal(rest.status, 204);
    assert.equal((await call(h.port, "POST", `/media/${id}/complete`, { authorization: auth })).status, 200);
    assert.ok((await call(h.port, "GET", `/media/${id}`)).body.equals(content));
  });

  it("refuses to complete an upload shorter than its announced length", async () => {
    const id = await startUpload(h.alice, { "upload-length": "10" });
    await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: h.auth(h.alice), "upload-offset": "0" },
      Buffer.from("12345"),
    );
    const r = await call(h.port, "POST", `/media/${id}/complete`, { authorization: h.auth(h.alice) });
    assert.equal(r.status, 400);
    const over = await call(
      h.port,
      "PATCH",
      `/media/${id}`,
      { authorization: h.auth(h.alice), "upload-offset": "5" },
      Buffer.from("123456"),
    );
    assert.equal(over.status, 400);
  });

  it("serves a zero-length blob and rejects wrong methods", async () => {
    const id = await uploadWhole(new Uint8Array(0));
    const r = await call(h.port, "GET", `/media/${id}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal((await call(h.port, "GET", `/media/${id}`, { range: "bytes=0-" })).status, 416);
    assert.equal((await call(h.port, "DELETE", `/media/${id}`)).status, 405);
    assert.equal((await call(h.port, "GET", "/media")).status, 405);
    assert.equal((await call(h.port, "GET", `/media/${id}/other`)).status, 404);
  });

  it("expires blobs after the retention (30 days), and the purge deletes them and stale uploads", async () => {
    const id = await uploadWhole(Buffer.from("expiring"));
    const pending = await startUpload();
    h.clock.advance(29 * DAY);
    assert.equal((await call(h.port, "GET", `/media/${id}`)).status, 200);
    h.clock.advance(DAY + 1000);
    assert.equal((await call(h.port, "GET", `/media/${id}`)).status, 404);
    const store = new FsBlobStore(join(h.dataDir, "media"));
    const blobPath = join(h.dataDir, "media", "blobs", id.slice(0, 2), id);
    assert.ok(existsSync(blobPath));
    const now = h.clock.now();
    const purged = await store.purgeExpired(now - 30 * DAY, now - UPLOAD_TTL_MS);
    assert.ok(purged.blobs >= 1);
    assert.ok(purged.uploads >= 1);
    assert.ok(!existsSync(blobPath));
    assert.equal(await store.uploadState(pending), null);
  });
});

describe("FsBlobStore", () => {
  it("keeps bytes committed before a broken append and refuses a second concurrent writer", async () => {
    const h = await startMediaServer();
    try {
      const store = new FsBlobStore(join(h.dataDir, "media-unit"));
      const id = newMediaId();
      await store.createUpload(id, { user: "alice", device: 1 }, 0, null);
      const broken = new Readable({
        read() {
          this.push(Buffer.alloc(1000, 1));
          this.destroy(new Error("connection reset"));
        },
      });
      await assert.rejects(store.append(id, 0, broken, 10_000));
      const state = await store.uploadState(id);
      assert.ok(state && state.offset <= 1000);
      truncateSync(join(h.dataDir, "media-unit", "uploads", `${id}.part`), 0);
      await assert.rejects(store.append(id, 5, Readable.from([Buffer.from("x")]), 10_000), { code: "OFFSET_MISMATCH" });
      assert.throws(() => store.read("../../etc/passwd", 0, 1), { code: "BAD_MEDIA_ID" });
    } finally {
      await h.stop();
    }
  });
  it("sendTo writes exactly the asked range through reused buffers, and stops when the consumer goes away", async () => {
    const h = await startMediaServer();
    try {
      const store = new FsBlobStore(join(h.dataDir, "media-send"));
      const id = newMediaId();
      const content = randomBytes(1_234_567);
      await store.createUpload(id, { user: "u", device: 1 }, Date.now(), content.length);
      await store.append(id, 0, Readable.from([content]), 10_000_000);
      await store.complete(id, Date.now());
      for (const [start, end] of [
        [0, content.length - 1],
        [1, 1],
        [262_143, 262_144],
        [100_000, content.length - 2],
      ] as const) {
        const parts: Buffer[] = [];
        const sink = new Writable({
          highWaterMark: 1024,
          write(chunk: Buffer, _enc, done) {
            parts.push(Buffer.from(chunk)); // a copy: the store reuses its buffers once done() runs
            setImmediate(done);
          },
        });
        await store.sendTo(id, start, end, sink);
        assert.ok(Buffer.concat(parts).equals(content.subarray(start, end + 1)), `${start}-${end}`);
      }
      const gone = new Writable({
        write(_chunk, _enc, done) {
          done();
          this.destroy();
        },
      });
      await assert.rejects(store.sendTo(id, 0, content.length - 1, gone));
    } finally {
      await h.stop();
    }
  });
});
