import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isWireError } from "../src/errors.ts";
import { CloseCode, type Connection, connect, generateStaticKeyPair } from "../src/transport/index.node.ts";
import { bytes, type Kind, startServer, type TestServer, text, until } from "./transport-helpers.ts";

function collect(connection: Connection): Uint8Array[] {
  const got: Uint8Array[] = [];
  connection.onStanza((s) => got.push(s));
  return got;
}

for (const kind of ["tcp", "ws"] as Kind[]) {
  describe(`transport end to end over ${kind}`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer(kind);
    });
    after(() => server.close());

    it("XX on first contact: login payload, login result, learns the server key, echoes stanzas", async () => {
      const client = generateStaticKeyPair();
      const result = await connect({ url: server.url, clientStaticKeyPair: client, loginPayload: bytes("alice/1") });
      assert.equal(result.pattern, "XX");
      assert.equal(text(result.loginResult), "welcome 7");
      assert.deepEqual(result.serverStaticPublicKey, server.staticKeyPair.publicKey);
      const login = server.logins.at(-1)!;
      assert.deepEqual(login.key, client.publicKey);
      assert.equal(text(login.payload), "alice/1");
      const conn = result.connection;
      assert.deepEqual(conn.remoteStaticPublicKey, server.staticKeyPair.publicKey);
      const got = collect(conn);
      for (let i = 0; i < 100; i++) conn.send(bytes(`m${i}`));
      await until(() => got.length === 100);
      assert.deepEqual(
        got.map(text),
        Array.from({ length: 100 }, (_, i) => `m${i}`),
      );
      const serverSide = server.connections.at(-1)!;
      assert.deepEqual(serverSide.remoteStaticPublicKey, client.publicKey);
      assert.equal(serverSide.pattern, "XX");
      conn.close(CloseCode.NORMAL, "bye");
    });

    it("IK when the server key is known", async () => {
      const client = generateStaticKeyPair();
      const result = await connect({
        url: server.url,
        clientStaticKeyPair: client,
        serverStaticPublicKey: server.staticKeyPair.publicKey,
        loginPayload: bytes("bob"),
      });
      assert.equal(result.pattern, "IK");
      assert.equal(text(result.loginResult), "welcome 3");
      assert.deepEqual(server.logins.at(-1)!.key, client.publicKey);
      const got = collect(result.connection);
      result.connection.send(bytes("ping"));
      await until(() => got.length === 1);
      assert.equal(text(got[0]!), "ping");
      result.connection.close(CloseCode.NORMAL, "bye");
    });

    it("IK with a stale server key falls back to XXfallback and reports the new key", async () => {
      const stale = generateStaticKeyPair().publicKey;
      const seen: Uint8Array[] = [];
      const result = await connect({
        url: server.url,
        clientStaticKeyPair: generateStaticKeyPair(),
        serverStaticPublicKey: stale,
        acceptServerKey: (key) => {
          seen.push(key);
          return true;
        },
        loginPayload: bytes("carol"),
      });
      assert.equal(result.pattern, "XXfallback");
      assert.equal(text(result.loginResult), "welcome 5");
      assert.deepEqual(result.serverStaticPublicKey, server.staticKeyPair.publicKey);
      assert.deepEqual(seen, [server.staticKeyPair.publicKey]);
      assert.equal(server.connections.at(-1)!.pattern, "XXfallback");
      const got = collect(result.connection);
      result.connection.send(bytes("after fallback"));
      await until(() => got.length === 1);
      result.connection.close(CloseCode.NORMAL, "bye");
    });

    it("refuses a server key the client does not accept", async () => {
      await assert.rejects(
        connect({
          url: server.url,
          clientStaticKeyPair: generateStaticKeyPair(),
          acceptServerKey: () => false,
          loginPayload: bytes("dave"),
        }),
        (err) => isWireError(err, "HANDSHAKE_FAILED"),
      );
    });

    for (const ik of [false, true]) {
      it(`auth rejection reaches the client (${ik ? "IK" : "XX"})`, async () => {
        await assert.rejects(
          connect({
            url: server.url,
            clientStaticKeyPair: generateStaticKeyPair(),
            ...(ik ? { serverStaticPublicKey: server.staticKeyPair.publicKey } : {}),
            loginPayload: bytes("bad password"),
          }),
          (err) => isWireError(err, "AUTH_REJECTED") && err.message.includes("bad credentials"),
        );
      });
    }

    it("a close code and reason reach the peer", async () => {
      const result = await connect({
        url: server.url,
        clientStaticKeyPair: generateStaticKeyPair(),
        serverStaticPublicKey: server.staticKeyPair.publicKey,
        loginPayload: bytes("erin"),
      });
      const closed: [number, string][] = [];
      result.connection.onClose((code, reason) => closed.push([code, reason]));
      const serverSide = server.connections.at(-1)!;
      serverSide.close(CloseCode.REPLACED, "signed in elsewhere");
      await until(() => closed.length === 1);
      assert.deepEqual(closed[0], [CloseCode.REPLACED, "signed in elsewhere"]);
      await until(() => result.connection.state === "closed");
      assert.throws(
        () => result.connection.send(bytes("late")),
        (err) => isWireError(err, "CLOSED"),
      );
    });

    it("a client close is seen by the server", async () => {
      const result = await connect({
        url: server.url,
        clientStaticKeyPair: generateStaticKeyPair(),
        loginPayload: bytes("frank"),
      });
      await until(() => server.connections.length > 0 && server.connections.at(-1)!.state === "open");
      const serverSide = server.connections.at(-1)!;
      const closed: [number, string][] = [];
      serverSide.onClose((code, reason) => closed.push([code, reason]));
      result.connection.send(bytes("last words"));
      result.connection.close(CloseCode.NORMAL, "done for today");
      await until(() => closed.length === 1);
      assert.deepEqual(closed[0], [CloseCode.NORMAL, "done for today"]);
    });

    it("large stanzas and batches larger than one frame arrive intact", async () => {
      const result = await connect({
        url: server.url,
        clientStaticKeyPair: generateStaticKeyPair(),
        loginPayload: bytes("gina"),
      });
      const conn = result.connection;
      const got = collect(conn);
      const big = new Uint8Array(conn.maxStanzaSize).map((_, i) => i & 0xff);
      conn.send(big);
      for (let i = 0; i < 300; i++) conn.send(new Uint8Array(1000).fill(i & 0xff));
      await until(() => got.length === 301);
      assert.deepEqual(got[0], big);
      assert.ok(got.slice(1).every((s, i) => s.length === 1000 && s[0] === (i & 0xff)));
      assert.throws(
        () => conn.send(new Uint8Array(conn.maxStanzaSize + 1)),
        (err) => isWireError(err, "FRAME_TOO_LARGE"),
      );
      conn.close(CloseCode.NORMAL, "bye");
    });
  });
}
