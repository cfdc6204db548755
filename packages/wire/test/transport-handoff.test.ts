// Handing a logged-in TCP session to another owner of the same socket (what cluster workers do,
// packages/server/src/handoff.ts): the session must go on exactly where it was, with the stanzas
// that had already arrived (decrypted and held, or still unread bytes) delivered first and in order.
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { after, describe, it } from "node:test";
import {
  type Connection,
  connect,
  detachTcpConnection,
  generateStaticKeyPair,
  resumeTcpConnection,
  type SecureConnection,
} from "../src/transport/index.node.ts";
import { bytes, startServer, type TestServer, text, until } from "./transport-helpers.ts";

describe("TCP session handoff", () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("continues the session on a new socket object: held and unread stanzas first, both directions", async () => {
    const detachedAt: Connection[] = [];
    // The server does not take the connection: it waits, lets the client's stanzas pile up, then detaches.
    const server = await startServer("tcp", { onConnection: (c) => detachedAt.push(c) });
    servers.push(server);
    const client = await connect({
      url: server.url,
      clientStaticKeyPair: generateStaticKeyPair(),
      loginPayload: bytes("hi"),
    });
    const received: string[] = [];
    client.connection.onStanza((s) => received.push(text(s)));
    await until(() => detachedAt.length === 1);

    // Some stanzas reach the old owner before the detach (decrypted, held: no handler yet)...
    for (let i = 0; i < 5; i++) client.connection.send(bytes(`early ${i}`));
    await until(() => (detachedAt[0] as unknown as { held?: unknown[] }).held?.length === 5);
    const detached = detachTcpConnection(detachedAt[0]!);
    assert.ok(detached, "a fresh TCP session can be detached");
    assert.equal(detached.state.held.length, 5);
    // ...and some after it: they stay in the socket (or in `unread`) for the new owner.
    for (let i = 0; i < 5; i++) client.connection.send(bytes(`late ${i}`));
    await new Promise((r) => setTimeout(r, 50));

    // The new owner wraps the same OS handle in a new net.Socket, as a process receiving it would.
    const handle = (detached.socket as unknown as { _handle: object })._handle;
    const socket = new Socket({ handle, readable: true, writable: true } as ConstructorParameters<typeof Socket>[0]);
    const resumed: SecureConnection = resumeTcpConnection(socket, detached.unread, detached.state);
    const got: string[] = [];
    resumed.onStanza((s) => {
      got.push(text(s));
      resumed.send(bytes(`echo ${text(s)}`));
    });
    await until(() => got.length === 10);
    assert.deepEqual(got, [...[0, 1, 2, 3, 4].map((i) => `early ${i}`), ...[0, 1, 2, 3, 4].map((i) => `late ${i}`)]);
    await until(() => received.length === 10);
    assert.equal(received[0], "echo early 0");
    assert.equal(received[9], "echo late 4");

    // The old object is retired: it reports no close and refuses to send.
    assert.equal(detachedAt[0]!.state, "closed");
    // Nonces continue: many more records both ways still authenticate.
    for (let i = 0; i < 200; i++) client.connection.send(bytes(`more ${i}`));
    await until(() => received.length === 210);
    resumed.close(1000, "done");
    await until(() => client.connection.state === "closed");
  });

  it("refuses to detach a session that has sent stanzas or has a handler", async () => {
    const seen: Connection[] = [];
    const server = await startServer("tcp", {
      onConnection: (c) => {
        seen.push(c);
        c.onStanza(() => {});
      },
    });
    servers.push(server);
    const client = await connect({
      url: server.url,
      clientStaticKeyPair: generateStaticKeyPair(),
      loginPayload: bytes("x"),
    });
    await until(() => seen.length === 1);
    assert.equal(detachTcpConnection(seen[0]!), null);
    assert.equal(seen[0]!.state, "open", "a refused detach leaves the session serving");
    client.connection.close(1000, "bye");
  });
});
