// StreamingGet, the allocation-free GET behind downloads: every body framing a server or proxy may
// use (Content-Length, chunked, close-delimited), pausing and resuming, error answers, and the
// typed failures (broken connection, refused head, abort).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { type GetHead, StreamingGet } from "../src/media/http-get.node.ts";
import { isMediaError } from "../src/media/index.node.ts";

const body = randomBytes(3 * 1024 * 1024 + 123);

function listen(server: Server | TcpServer): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as { port: number };
      resolve(`http://127.0.0.1:${address.port}`);
    });
  });
}

/** Collects a GET's body; `pauseEvery` > 0 pauses after that many chunks and resumes a tick later. */
async function fetchAll(url: string, pauseEvery = 0, headers: Record<string, string> = {}) {
  const parts: Buffer[] = [];
  let head: GetHead | undefined;
  let chunks = 0;
  const get: StreamingGet = new StreamingGet(url, headers, {
    onHead: (h) => {
      head = h;
    },
    onBody: (chunk) => {
      parts.push(Buffer.from(chunk)); // the chunk's buffer is reused: copy
      chunks++;
      if (pauseEvery > 0 && chunks % pauseEvery === 0) {
        setTimeout(() => get.resume(), 1);
        return false;
      }
      return true;
    },
  });
  const result = await get.done;
  return { result, head, received: Buffer.concat(parts) };
}

describe("StreamingGet", () => {
  let http: Server;
  let raw: TcpServer;
  let httpUrl = "";
  let rawUrl = "";

  before(async () => {
    http = createHttpServer((req, res) => {
      if (req.url === "/length") {
        res.writeHead(200, { "content-length": String(body.length) });
        res.end(body);
      } else if (req.url === "/chunked") {
        // No Content-Length: node sends chunked, in pieces of odd sizes.
        res.writeHead(200);
        for (let at = 0; at < body.length; at += 100_003) res.write(body.subarray(at, at + 100_003));
        res.end();
      } else if (req.url === "/cut") {
        res.writeHead(200, { "content-length": String(body.length) });
        res.write(body.subarray(0, 500_000), () => res.destroy());
      } else {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "NOT_FOUND", message: "no such media" }));
      }
    });
    // A server that ends the body by closing the connection (no length, no chunks).
    raw = createTcpServer((socket) => {
      socket.once("data", () => {
        socket.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        socket.end(body);
      });
    });
    httpUrl = await listen(http);
    rawUrl = await listen(raw);
  });
  after(() => {
    http.close();
    raw.close();
  });

  it("reads a Content-Length body whole, also when the receiver pauses", async () => {
    for (const pauseEvery of [0, 1, 3]) {
      const { result, head, received } = await fetchAll(`${httpUrl}/length`, pauseEvery);
      assert.equal(result.status, 200);
      assert.equal(head?.headers["content-length"], String(body.length));
      assert.ok(received.equals(body), `pauseEvery ${pauseEvery}`);
    }
  });

  it("decodes a chunked body and reads a close-delimited one", async () => {
    const chunked = await fetchAll(`${httpUrl}/chunked`, 2);
    assert.equal(chunked.head?.headers["transfer-encoding"], "chunked");
    assert.ok(chunked.received.equals(body));
    const closed = await fetchAll(`${rawUrl}/`);
    assert.ok(closed.received.equals(body));
  });

  it("returns an error answer's status and text without calling the receiver", async () => {
    const { result, head, received } = await fetchAll(`${httpUrl}/missing`);
    assert.equal(result.status, 404);
    assert.equal(head, undefined);
    assert.equal(received.length, 0);
    assert.match(result.text, /no such media/);
  });

  it("a connection cut mid-body is a retryable NETWORK error", async () => {
    await assert.rejects(fetchAll(`${httpUrl}/cut`), (err: unknown) => {
      assert.ok(isMediaError(err, "NETWORK"));
      assert.equal((err as { retryable?: boolean }).retryable, true);
      return true;
    });
  });

  it("what the receiver throws ends the request; an abort is ABORTED; a refused connection is NETWORK", async () => {
    const refused = new Error("refused");
    const get = new StreamingGet(
      `${httpUrl}/length`,
      {},
      {
        onHead: () => {
          throw refused;
        },
        onBody: () => true,
      },
    );
    await assert.rejects(get.done, (err) => err === refused);

    const controller = new AbortController();
    const aborted = new StreamingGet(
      `${httpUrl}/length`,
      {},
      {
        onHead: () => undefined,
        onBody: () => {
          controller.abort();
          return true;
        },
      },
      controller.signal,
    );
    await assert.rejects(aborted.done, { code: "ABORTED" });

    const port = Number(new URL(rawUrl).port);
    await new Promise<void>((resolve) => raw.close(() => resolve()));
    await assert.rejects(fetchAll(`http://127.0.0.1:${port}/`), { code: "NETWORK" });
  });
});
