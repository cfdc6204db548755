import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isWireError, type WireError } from "../src/errors.ts";
import { CipherState } from "../src/noise/index.ts";
import { nodeSuite } from "../src/noise/suite.node.ts";
import {
  acceptLink,
  CloseCode,
  type Connection,
  type ConnectResult,
  generateStaticKeyPair,
  resolveLimits,
  runClientHandshake,
  type TransportLimits,
} from "../src/transport/index.node.ts";
import { bytes, type MemoryLink, memoryLinkPair, text, until } from "./transport-helpers.ts";

interface Pair {
  client: ConnectResult;
  server: Connection;
  clientLink: MemoryLink;
  serverLink: MemoryLink;
}

async function pair(
  clientLimits: Partial<TransportLimits> = {},
  serverLimits: Partial<TransportLimits> = {},
  onServerConnection?: (c: Connection) => void,
): Promise<Pair> {
  const [clientLink, serverLink] = memoryLinkPair();
  const serverKey = generateStaticKeyPair();
  let server: Connection | undefined;
  acceptLink(
    serverLink,
    {
      staticKeyPair: serverKey,
      authenticate: async () => bytes("ok"),
      onConnection: (c) => {
        server = c;
        if (onServerConnection) onServerConnection(c);
        else
          c.onStanza((s) => {
            if (c.state === "open") c.send(s);
          });
      },
      limits: serverLimits,
    },
    { suite: nodeSuite },
  );
  const limits = resolveLimits(clientLimits);
  const client = await runClientHandshake({
    link: clientLink,
    suite: nodeSuite,
    clientStaticKeyPair: generateStaticKeyPair(),
    serverStaticPublicKey: serverKey.publicKey,
    loginPayload: bytes("login"),
    limits,
    handshakeTimeoutMs: 2000,
  });
  await until(() => server !== undefined);
  return { client, server: server!, clientLink, serverLink };
}

function closes(connection: Connection): [number, string, WireError | undefined][] {
  const out: [number, string, WireError | undefined][] = [];
  connection.onClose((code, reason, error) => out.push([code, reason, error]));
  return out;
}

describe("session record layer", () => {
  it("batches every stanza sent in one turn into one record and one write", async () => {
    const { client, clientLink } = await pair();
    const got: string[] = [];
    client.connection.onStanza((s) => got.push(text(s)));
    const writesBefore = clientLink.writes.length;
    for (let i = 0; i < 50; i++) client.connection.send(bytes(`stanza ${i}`));
    assert.equal(clientLink.writes.length, writesBefore, "send only queues");
    await until(() => got.length === 50);
    const batch = clientLink.writes.slice(writesBefore);
    assert.equal(batch.length, 1);
    assert.equal(batch[0]!.length, 1);
    assert.deepEqual(
      got,
      Array.from({ length: 50 }, (_, i) => `stanza ${i}`),
    );
  });

  /** A pair whose client collects what the server echoes back, and the client's write count so far. */
  async function echoing() {
    const p = await pair();
    const got: string[] = [];
    p.client.connection.onStanza((s) => got.push(text(s)));
    return { ...p, got, before: p.clientLink.writes.length };
  }

  it("a lazy stanza alone is not written by send, and leaves on its own soon after", async () => {
    const { client, clientLink, got, before } = await echoing();
    client.connection.send(bytes("tick"), true);
    assert.equal(clientLink.writes.length, before, "send only queues");
    await until(() => got.length === 1);
    assert.deepEqual(got, ["tick"]);
    assert.equal(clientLink.writes.length, before + 1);
  });

  it("lazy stanzas share the record of a stanza sent without the flag, in order", async () => {
    const { client, clientLink, got, before } = await echoing();
    client.connection.send(bytes("ack"), true);
    client.connection.send(bytes("receipt"), true);
    client.connection.send(bytes("message"));
    await until(() => got.length === 3);
    assert.deepEqual(got, ["ack", "receipt", "message"]);
    const written = clientLink.writes.slice(before);
    assert.equal(written.length, 1, "one write");
    assert.equal(written[0]!.length, 1, "one record");
    // the lazy timer that fires afterwards finds nothing to send
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(clientLink.writes.length, before + 1);
  });

  it("a lazy stanza from an earlier turn leaves with the next flushed stanza, at the latest", async () => {
    const { client, clientLink, got, before } = await echoing();
    client.connection.send(bytes("ack"), true);
    await new Promise((r) => setImmediate(r));
    // Usually the turn ended before the lazy timer (1 ms) fired, so the ack still waits; on a loaded
    // machine the timer may have sent it alone already. Either way it arrives first.
    const stillQueued = clientLink.writes.length === before;
    client.connection.send(bytes("message"));
    await until(() => got.length === 2);
    assert.deepEqual(got, ["ack", "message"]);
    if (stillQueued) assert.equal(clientLink.writes.length, before + 1, "one write");
  });

  it("a lazy stanza still queued at close() goes out before the close record", async () => {
    const { client, server } = await pair({}, {}, () => {});
    const got: string[] = [];
    server.onStanza((s) => got.push(text(s)));
    client.connection.send(bytes("last ack"), true);
    client.connection.close(CloseCode.NORMAL, "bye");
    await until(() => got.length === 1);
    assert.deepEqual(got, ["last ack"]);
  });

  it("flush() writes immediately", async () => {
    const { client, clientLink } = await pair();
    const before = clientLink.writes.length;
    client.connection.send(bytes("now"));
    client.connection.flush();
    assert.equal(clientLink.writes.length, before + 1);
  });

  it("rekeys the sending direction after the configured number of records", async () => {
    const rekeys: number[] = [];
    const original = CipherState.prototype.rekey;
    CipherState.prototype.rekey = function (this: CipherState) {
      rekeys.push(1);
      original.call(this);
    };
    try {
      const { client } = await pair({ rekeyAfterRecords: 3 }, { rekeyAfterRecords: 3 });
      const got: string[] = [];
      client.connection.onStanza((s) => got.push(text(s)));
      for (let turn = 0; turn < 12; turn++) {
        client.connection.send(bytes(`turn ${turn}`));
        await until(() => got.length === turn + 1);
      }
      assert.deepEqual(
        got,
        Array.from({ length: 12 }, (_, i) => `turn ${i}`),
      );
      // 12 records each way → 4 rekeys per direction, each applied by sender and receiver
      assert.ok(rekeys.length >= 12, `rekeys: ${rekeys.length}`);
    } finally {
      CipherState.prototype.rekey = original;
    }
  });

  it("a replayed record closes the connection with DECRYPT_FAILED and the peer learns why", async () => {
    const { client, server, clientLink } = await pair();
    const serverCloses = closes(server);
    const clientCloses = closes(client.connection);
    clientLink.tamper = (frame) => [frame, frame];
    client.connection.send(bytes("once"));
    await until(() => serverCloses.length === 1 && clientCloses.length === 1);
    assert.equal(serverCloses[0]![0], CloseCode.DECRYPT_FAILED);
    assert.ok(isWireError(serverCloses[0]![2], "DECRYPT_FAILED"));
    assert.equal(clientCloses[0]![0], CloseCode.DECRYPT_FAILED);
  });

  it("a close listener added after the close still hears it, once", async () => {
    const { client, server } = await pair();
    const early = closes(client.connection);
    server.close(CloseCode.NORMAL, "bye");
    await until(() => early.length === 1);
    const late = closes(client.connection);
    await until(() => late.length === 1);
    assert.deepEqual(late[0]!.slice(0, 2), [CloseCode.NORMAL, "bye"]);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(late.length, 1);
    assert.equal(early.length, 1);
  });

  it("a tampered record closes with DECRYPT_FAILED", async () => {
    const { client, server, clientLink } = await pair();
    const serverCloses = closes(server);
    clientLink.tamper = (frame) => {
      const copy = frame.slice();
      copy[copy.length - 1]! ^= 1;
      return [copy];
    };
    client.connection.send(bytes("flip"));
    await until(() => serverCloses.length === 1);
    assert.equal(serverCloses[0]![0], CloseCode.DECRYPT_FAILED);
  });

  it("an oversized frame closes with FRAME_TOO_LARGE", async () => {
    const { client, server } = await pair({}, { maxFrameSize: 1024 });
    const serverCloses = closes(server);
    const clientCloses = closes(client.connection);
    client.connection.send(new Uint8Array(2000));
    await until(() => serverCloses.length === 1 && clientCloses.length === 1);
    assert.equal(serverCloses[0]![0], CloseCode.FRAME_TOO_LARGE);
    assert.equal(clientCloses[0]![0], CloseCode.FRAME_TOO_LARGE);
  });

  it("splits a batch over several records when it exceeds the frame size", async () => {
    const { client, clientLink } = await pair({ maxFrameSize: 1024 }, { maxFrameSize: 1024 });
    const got: Uint8Array[] = [];
    client.connection.onStanza((s) => got.push(s));
    const before = clientLink.writes.length;
    for (let i = 0; i < 10; i++) client.connection.send(new Uint8Array(300).fill(i));
    await until(() => got.length === 10);
    const write = clientLink.writes[before]!;
    assert.equal(write.length, 4, "3 stanzas of 300 B per 1 KiB record");
    assert.ok(write.every((f) => f.length <= 1024));
    assert.ok(got.every((s, i) => s.length === 300 && s[0] === i));
  });

  it("closes a slow consumer instead of buffering without bound", async () => {
    const { client } = await pair({ highWaterMark: 2000, maxBufferedBytes: 5000 });
    const conn = client.connection;
    const clientCloses = closes(conn);
    conn.send(new Uint8Array(1500));
    assert.equal(conn.writable, true);
    conn.send(new Uint8Array(1500));
    assert.equal(conn.writable, false);
    assert.ok(conn.bufferedAmount >= 3000);
    conn.send(new Uint8Array(1500));
    conn.send(new Uint8Array(1500));
    assert.equal(clientCloses[0]![0], CloseCode.SLOW_CONSUMER);
    assert.equal(conn.state, "closing");
  });

  it("holds stanzas that arrive before a handler is set", async () => {
    const { client, server } = await pair({}, {}, (c) => {
      c.send(bytes("early 1"));
      c.send(bytes("early 2"));
    });
    await new Promise((r) => setTimeout(r, 20));
    const got: string[] = [];
    client.connection.onStanza((s) => got.push(text(s)));
    assert.deepEqual(got, ["early 1", "early 2"]);
    assert.equal(server.state, "open");
  });

  it("a throwing stanza handler closes with INTERNAL_ERROR instead of crashing", async () => {
    const { client, server } = await pair({}, {}, (c) =>
      c.onStanza(() => {
        throw new Error("app bug");
      }),
    );
    const clientCloses = closes(client.connection);
    client.connection.send(bytes("boom"));
    await until(() => clientCloses.length === 1);
    assert.equal(clientCloses[0]![0], CloseCode.INTERNAL_ERROR);
    assert.equal(server.state === "open", false);
  });

  it("idle peers are closed; keep-alives prevent it", async () => {
    const idle = await pair({}, { idleTimeoutMs: 100 });
    const idleCloses = closes(idle.client.connection);
    const alive = await pair({ keepAliveIntervalMs: 40 }, { idleTimeoutMs: 150 });
    const aliveCloses = closes(alive.client.connection);
    await until(() => idleCloses.length === 1);
    assert.equal(idleCloses[0]![0], CloseCode.IDLE_TIMEOUT);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(aliveCloses.length, 0);
    alive.client.connection.close(CloseCode.NORMAL, "done");
  });
});
