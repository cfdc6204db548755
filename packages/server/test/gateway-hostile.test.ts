// Hostile clients against a live in-process server (workers: 0). While each
// attack runs, a well-behaved pair of raw devices keeps messaging both ways and
// must see every message acked and delivered, with no error and no disconnect.
// Each test also records what the attacker observed (close code and reason).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { connect as netConnect } from "node:net";
import { after, before, describe, it, type TestContext } from "node:test";
import { CloseCode, encodeStanza, generateStaticKeyPair, type Stanza } from "@parley/wire";
import { WebSocket as WsClient } from "ws";
import { Chatter } from "./gateway-helpers/chatter.ts";
import {
  hello,
  hex,
  type IqError,
  login,
  loginPausable,
  messageId,
  messageTo,
  openRaw,
  openWithWebSocket,
  type RawClient,
  type RawIdentity,
  registerRaw,
} from "./gateway-helpers/raw-client.ts";
import { metricValue, startTestServer, type TestServer } from "./gateway-helpers/server.ts";

const closeName = (code: number) => Object.entries(CloseCode).find(([, c]) => c === code)?.[0] ?? String(code);

describe("hostile clients against a live server", () => {
  let env: TestServer;
  let alice: RawIdentity;
  let bob: RawIdentity;
  let mallory: RawIdentity;
  let ca: RawClient;
  let cb: RawClient;
  const seen: string[] = [];

  before(async () => {
    env = await startTestServer();
    [alice, bob, mallory] = await Promise.all([
      registerRaw(env.url, "alice"),
      registerRaw(env.url, "bob"),
      registerRaw(env.url, "mallory"),
    ]);
    ca = await login(env.tcpUrl, alice); // one of the pair over TCP,
    cb = await login(env.url, bob); // the other over WebSocket
  });
  after(async () => {
    console.log(`what the attackers saw:\n  ${seen.join("\n  ")}`);
    ca?.close();
    cb?.close();
    await env?.stop();
  });

  /** Runs `attack` while Alice and Bob chat; fails if any of their messages is lost or refused. */
  async function underLoad(t: TestContext, attack: () => Promise<void>): Promise<void> {
    const chat = new Chatter(ca, cb).start();
    try {
      await attack();
    } finally {
      const { messages } = await chat.stop();
      t.diagnostic(`well-behaved pair: ${messages} messages acked and delivered during the attack`);
      assert.ok(messages > 0);
    }
  }

  function record(what: string, outcome: string): void {
    seen.push(`${what.padEnd(58)} → ${outcome}`);
  }

  /** A raw TCP socket that records whether the server closed it and how many bytes it answered. */
  async function rawTcp(port: number) {
    const socket = netConnect({ host: "127.0.0.1", port });
    await once(socket, "connect");
    let answered = 0;
    socket.on("data", (d: Buffer) => {
      answered += d.length;
    });
    socket.on("error", () => {});
    const closed = once(socket, "close").then(() => answered);
    return { socket, closed };
  }

  const tcpPort = () => env.server.tcpPort;

  async function handshakeFailures(): Promise<number> {
    return metricValue(await env.metrics(), "parley_handshake_failures_total");
  }

  function closeLogs(code: number) {
    return env.logs.filter((l) => l.msg === "connection closed" && l.code === code);
  }

  it("(a) drops peers that send random bytes instead of a handshake", (t) =>
    underLoad(t, async () => {
      const before = await handshakeFailures();
      const attempts: [string, Uint8Array][] = [
        // first byte ≥ 0x10: a length prefix above the 4,096-byte handshake frame limit
        ["random bytes (TCP)", Uint8Array.from([0x80 | randomBytes(1)[0]!, ...randomBytes(2047)])],
        ["a frame of an unknown handshake type (TCP)", Uint8Array.from([0, 40, 0x7f, ...randomBytes(39)])],
        ["an XX_INIT with a 5-byte ephemeral key (TCP)", Uint8Array.from([0, 6, 1, ...randomBytes(5)])],
        ["an empty frame (TCP)", Uint8Array.from([0, 0, 1, 2, 3])],
      ];
      for (const [what, bytes] of attempts) {
        const { socket, closed } = await rawTcp(tcpPort());
        socket.write(bytes);
        const answered = await closed;
        assert.equal(answered, 0, `${what}: the server answered ${answered} bytes`);
        record(what, "socket dropped by the server, 0 bytes answered");
      }

      const ws = new WsClient(`ws://127.0.0.1:${env.server.httpPort}/ws`);
      await once(ws, "open");
      ws.send(randomBytes(300));
      const [wsCode] = (await once(ws, "close")) as [number];
      record("random binary WebSocket message", `WebSocket closed (${wsCode})`);

      const text = new WsClient(`ws://127.0.0.1:${env.server.httpPort}/ws`);
      await once(text, "open");
      text.send("hello?");
      const [textCode] = (await once(text, "close")) as [number];
      record("a text WebSocket message", `WebSocket closed (${textCode})`);

      const http = await rawTcp(env.server.httpPort);
      http.socket.write(randomBytes(512));
      await http.closed;
      record("random bytes to the HTTP port", "HTTP 400 and close");

      const failures = (await handshakeFailures()) - before;
      assert.ok(failures >= attempts.length + 2, `handshake failures counted: ${failures}`);
      const codes = env.logs.filter((l) => l.msg === "handshake failed").map((l) => l.code);
      assert.ok(codes.includes("FRAME_TOO_LARGE") && codes.includes("HANDSHAKE_FAILED"), `logged: ${codes}`);
    }));

  it("(b) closes a logged-in or registering peer that sends an undecodable stanza with PROTOCOL_VIOLATION", (t) =>
    underLoad(t, async () => {
      const registering = await openRaw(env.url, generateStaticKeyPair(), hello(), "garbage-registering");
      registering.sendBytes(Uint8Array.from([0xfe, 0x01, 0x02, 0x03]));
      const c1 = await registering.waitClosed();
      assert.equal(c1.code, CloseCode.PROTOCOL_VIOLATION);
      assert.match(c1.reason, /^malformed stanza \(UNKNOWN_TYPE/);
      record("registering: stanza of unknown kind 0xfe", `${closeName(c1.code)} "${c1.reason}"`);

      const m = await login(env.tcpUrl, mallory, "mallory");
      const valid = encodeStanza(messageTo("bob", [1], randomBytes(16)));
      m.sendBytes(valid.subarray(0, valid.length - 3));
      const c2 = await m.waitClosed();
      assert.equal(c2.code, CloseCode.PROTOCOL_VIOLATION);
      assert.match(c2.reason, /^malformed stanza \(TRUNCATED/);
      record("logged in: a truncated message stanza", `${closeName(c2.code)} "${c2.reason}"`);

      const m2 = await login(env.tcpUrl, mallory, "mallory");
      // name-packed atom with an invalid 3-char group: decoders are strict
      m2.sendBytes(Uint8Array.from([0x05, 0x04, 0x01, 0xf3, 0x03, 0xff, 0xff]));
      const c3 = await m2.waitClosed();
      assert.equal(c3.code, CloseCode.PROTOCOL_VIOLATION);
      assert.match(c3.reason, /^malformed stanza/);
      record("logged in: presence with a corrupt name atom", `${closeName(c3.code)} "${c3.reason}"`);
    }));

  it("(c) refuses an oversized frame from its length prefix, without buffering it", (t) =>
    underLoad(t, async () => {
      // TCP, during the handshake: the prefix announces 65,535 bytes (limit 4,096); only 10 follow.
      const { socket, closed } = await rawTcp(tcpPort());
      socket.write(Uint8Array.from([0xff, 0xff, 1, ...randomBytes(9)]));
      assert.equal(await closed, 0); // dropped at once: it did not wait for the announced body
      const logged = env.logs.filter((l) => l.msg === "handshake failed" && l.code === "FRAME_TOO_LARGE");
      assert.ok(logged.length > 0);
      record("TCP handshake frame announcing 65,535 bytes", "socket dropped at once (FRAME_TOO_LARGE logged)");

      // WebSocket, after a valid handshake: a frame header announcing 1 MiB (max 65,535), no body.
      const before = closeLogs(CloseCode.FRAME_TOO_LARGE).length;
      const att = await openWithWebSocket(env.url, generateStaticKeyPair(), hello(), "oversized-ws");
      const header = Buffer.alloc(14);
      header[0] = 0x82; // FIN + binary
      header[1] = 0x80 | 127; // masked, 64-bit length follows
      header.writeBigUInt64BE(1n << 20n, 2);
      randomBytes(4).copy(header, 10); // mask key
      att.socket.write(header);
      const wsClose = await att.wsClose;
      assert.equal(wsClose.code, 1009); // WebSocket "message too big", decided from the header alone
      await att.client.waitClosed();
      assert.equal(closeLogs(CloseCode.FRAME_TOO_LARGE).length, before + 1); // the server's side: FRAME_TOO_LARGE
      record(
        "WebSocket frame header announcing 1 MiB after login",
        `WebSocket close ${wsClose.code} "${wsClose.reason}"; server closed the session with FRAME_TOO_LARGE`,
      );
      assert.equal(att.ws.readyState, WsClient.CLOSED);
    }));

  it("(d) closes peers that send stanzas out of order or in the wrong direction", (t) =>
    underLoad(t, async () => {
      // Before registering, only registration iqs are allowed.
      const early = await openRaw(env.url, generateStaticKeyPair(), hello(), "early");
      await assert.rejects(
        early.iq({ op: "get-devices", users: ["bob"] }),
        (e: IqError) => e.error.code === "unauthorized",
      );
      await assert.rejects(
        early.iq({ op: "prekey-count" }),
        (e: IqError) => e.error.code === "unauthorized" && /register first/.test(e.error.text ?? ""),
      );
      assert.equal(early.closed, undefined); // an iq error, not a disconnect
      early.send(messageTo("bob", [1], randomBytes(8)));
      const c0 = await early.waitClosed();
      assert.equal(c0.code, CloseCode.PROTOCOL_VIOLATION);
      assert.match(c0.reason, /not logged in: message before registration/);
      record("registering: a message before registering", `${closeName(c0.code)} "${c0.reason}"`);

      const early2 = await openRaw(env.url, generateStaticKeyPair(), hello(), "early2");
      early2.send({ kind: "devack", seqs: [1, 2, 3] });
      const c00 = await early2.waitClosed();
      assert.equal(c00.code, CloseCode.PROTOCOL_VIOLATION);
      record("registering: a devack before registering", `${closeName(c00.code)} "${c00.reason}"`);

      const now = Math.floor(Date.now() / 1000);
      const serverOnly: Stanza[] = [
        {
          kind: "delivery",
          id: messageId(),
          from: { user: "alice", device: 1 },
          timestamp: now,
          seq: 1,
          type: "msg",
          body: randomBytes(8),
        },
        { kind: "ack", id: messageId(), timestamp: now },
        { kind: "iq-result", id: 1, result: { op: "ok" } },
        { kind: "iq-error", id: 1, error: { code: "bad-request" } },
        { kind: "notification", id: 1, timestamp: now, event: { type: "queue-empty" } },
      ];
      for (const stanza of serverOnly) {
        const m = await login(env.url, mallory, "mallory");
        m.send(stanza);
        const c = await m.waitClosed();
        assert.equal(c.code, CloseCode.PROTOCOL_VIOLATION, stanza.kind);
        assert.equal(c.reason, `a client may not send ${stanza.kind} stanzas`);
        record(`logged in: a ${stanza.kind} stanza (server → client only)`, `${closeName(c.code)} "${c.reason}"`);
      }

      const m = await login(env.url, mallory, "mallory");
      m.send({ kind: "receipt", type: "read", ids: [messageId()], timestamp: now });
      const c = await m.waitClosed();
      assert.equal(c.code, CloseCode.PROTOCOL_VIOLATION);
      assert.match(c.reason, /receipt needs a recipient/);
      record("logged in: a receipt without a recipient", `${closeName(c.code)} "${c.reason}"`);

      const m2 = await login(env.url, mallory, "mallory");
      await assert.rejects(
        m2.iq({ op: "register-account", name: "mallory2", code: "" }),
        (e: IqError) => e.error.code === "conflict",
      );
      record("logged in: register-account again", "iq-error conflict, connection kept");
      m2.close();
    }));

  it("(e) a connection cannot act as another device, and a stale device set is refused with both lists", (t) =>
    underLoad(t, async () => {
      // Login hellos claiming identities the connection's static key does not own.
      await assert.rejects(
        openRaw(env.url, generateStaticKeyPair(), hello({ user: "alice", device: 1 }), "impostor"),
        (e: Error) => /AUTH_REJECTED: not-registered/.test(e.message),
      );
      record("hello as alice/1 with an unregistered key", "login refused: not-registered");
      await assert.rejects(
        openRaw(env.url, mallory.noise, hello({ user: "alice", device: 1 }), "impostor"),
        (e: Error) => /AUTH_REJECTED: unauthorized/.test(e.message),
      );
      record("hello as alice/1 with mallory's registered key", "login refused: unauthorized");
      await assert.rejects(
        openRaw(env.url, mallory.noise, hello({ user: "mallory", device: 2 }), "impostor"),
        (e: Error) => /AUTH_REJECTED: not-registered/.test(e.message),
      );
      record("hello as mallory/2 with mallory/1's key", "login refused: not-registered");

      // Registering a device under someone else's Noise key (to take over its logins) is refused.
      const thief = await openRaw(env.url, generateStaticKeyPair(), hello(), "thief");
      await thief.iq({ op: "register-account", name: "thief", code: "" });
      const { registerDeviceRequest, newDeviceKeys } = await import("./gateway-helpers/keys.ts");
      await assert.rejects(
        thief.iq(registerDeviceRequest(alice.noise.publicKey, newDeviceKeys())),
        (e: IqError) => e.error.code === "bad-request" && /static key of this connection/.test(e.error.text ?? ""),
      );
      record("register-device with alice's Noise key", "iq-error bad-request");
      thief.close();

      const m = await login(env.url, mallory, "mallory");
      // `from` is filled by the server: a receipt claiming to come from alice arrives as mallory's.
      const forgedId = messageId();
      m.send({
        kind: "receipt",
        type: "read",
        ids: [forgedId],
        from: { user: "alice", device: 1 },
        to: { user: "bob" },
        timestamp: 0,
      });
      const receipt = await cb.waitFor(
        (c) => c.received.find((s) => s.kind === "receipt" && s.ids.some((id) => hex(id) === hex(forgedId))),
        "the forged receipt",
      );
      assert.deepEqual(receipt.kind === "receipt" && receipt.from, { user: "mallory", device: 1 });
      const msg = messageTo("bob", [1], randomBytes(8));
      m.send(msg);
      const delivered = await cb.waitFor(
        (c) => c.deliveries().find((d) => msg.kind === "message" && hex(d.id) === hex(msg.id)),
        "mallory's message",
      );
      assert.deepEqual(delivered.from, { user: "mallory", device: 1 });
      record("receipt with from = alice/1", "delivered to bob as from mallory/1");

      // Stale device sets (Sesame): the ack lists what is missing and what is extra, per user.
      const cases: [string, Stanza, { user: string; missing: number[]; extra: number[]; stale: number[] }[]][] = [
        [
          "to bob devices 1 and 2",
          messageTo("bob", [1, 2], randomBytes(8)),
          [{ user: "bob", missing: [], extra: [2], stale: [] }],
        ],
        [
          "to bob device 7 only",
          messageTo("bob", [7], randomBytes(8)),
          [{ user: "bob", missing: [1], extra: [7], stale: [] }],
        ],
        [
          "to bob 1 and to mallory's own device 3",
          {
            kind: "message",
            id: messageId(),
            to: "bob",
            timestamp: 0,
            enc: [
              { to: { user: "bob", device: 1 }, type: "msg", body: randomBytes(8) },
              { to: { user: "mallory", device: 3 }, type: "msg", body: randomBytes(8) },
            ],
          },
          [{ user: "mallory", missing: [], extra: [3], stale: [] }],
        ],
      ];
      for (const [what, stanza, devices] of cases) {
        m.send(stanza);
        const ack = await m.waitFor((c) => stanza.kind === "message" && c.ackFor(stanza.id), `ack of ${what}`);
        assert.equal(ack.error?.code, "device-mismatch", what);
        assert.deepEqual(ack.error?.devices, devices, what);
        record(`message ${what}`, `ack error device-mismatch ${JSON.stringify(devices)}`);
      }
      const none = cb
        .deliveries()
        .filter((d) => cases.some(([, s]) => s.kind === "message" && hex(s.id) === hex(d.id)));
      assert.equal(none.length, 0, "a refused message must not be delivered to anyone");

      // Acking queue entries that are not one's own deletes nothing (alice's traffic is unaffected).
      m.send({ kind: "devack", seqs: Array.from({ length: 2000 }, (_, i) => i + 1) });
      await m.iq({ op: "prekey-count" }); // round trip: the devack was processed
      assert.equal(m.closed, undefined);
      record("devack of seqs 1..2000 (other devices' entries)", "nothing deleted, connection kept");
      m.close();
    }));

  it("(f) closes a flooding peer with RATE_LIMITED and drops typing storms", (t) =>
    underLoad(t, async () => {
      const m = await login(env.url, mallory, "mallory");
      const stanza = encodeStanza({ kind: "node", node: { tag: "x", attrs: {} } });
      for (let i = 0; i < 12_000; i++) m.sendBytes(stanza);
      const c = await m.waitClosed();
      assert.equal(c.code, CloseCode.RATE_LIMITED);
      assert.match(c.reason, /too many stanzas/);
      record("12,000 stanzas in one burst", `${closeName(c.code)} "${c.reason}"`);

      const m2 = await login(env.url, mallory, "mallory");
      for (let i = 0; i < 400; i++) void m2.iq({ op: "prekey-count" }).catch(() => {});
      const c2 = await m2.waitClosed();
      assert.equal(c2.code, CloseCode.RATE_LIMITED);
      assert.match(c2.reason, /too many requests/);
      record("400 iq requests in one burst", `${closeName(c2.code)} "${c2.reason}"`);

      const m3 = await login(env.url, mallory, "mallory");
      for (let i = 0; i < 1000; i++) m3.send({ kind: "chatstate", state: "composing", to: "bob" });
      await m3.iq({ op: "prekey-count" }); // processed
      await new Promise((r) => setTimeout(r, 100));
      const typing = cb.received.filter((s) => s.kind === "chatstate" && s.from === "mallory").length;
      assert.ok(typing >= 1 && typing <= 20, `bob saw ${typing} typing notifications`);
      assert.equal(m3.closed, undefined);
      record("1,000 typing notifications", `not closed; ${typing} relayed, the rest dropped`);
      m3.close();
    }));

  it("(g) a peer that never reads gets at most one delivery window; the rest waits on disk and nothing is lost", (t) =>
    underLoad(t, async () => {
      const sloth = await registerRaw(env.url, "sloth");
      const feeder = await login(env.url, mallory, "mallory");
      const { client, socket } = await loginPausable(tcpPort(), sloth);
      client.autoAck = false;
      socket.pause(); // never reads from now on
      const total = 400;
      const ids: string[] = [];
      for (let i = 0; i < total; i++) {
        const msg = messageTo("sloth", [1], randomBytes(4 * 1024));
        if (msg.kind === "message") ids.push(hex(msg.id));
        feeder.send(msg);
      }
      // The sender is not slowed down by the slow reader: every message is durably queued.
      await feeder.waitFor((c) => c.received.filter((s) => s.kind === "ack").length === total, "all acks");
      assert.ok(feeder.received.every((s) => s.kind !== "ack" || s.error === undefined));
      await new Promise((r) => setTimeout(r, 300)); // let the server push what it will

      socket.resume();
      const window = env.config.deliveryWindow;
      await new Promise((r) => setTimeout(r, 500));
      const pushedBeforeAck = client.deliveries().length;
      assert.ok(pushedBeforeAck <= window, `${pushedBeforeAck} deliveries pushed without acks (window ${window})`);
      record(
        `a device that does not read while ${total} × 4 KiB are queued`,
        client.closed
          ? `${closeName(client.closed.code)} "${client.closed.reason}"`
          : `not closed; ${pushedBeforeAck} pushed (≤ window ${window}), the rest kept in the queue`,
      );

      // Reading again (or reconnecting when it was cut off), the device gets every message once, in order.
      let reader = client;
      if (client.closed) reader = await login(env.url, sloth, "sloth");
      else {
        client.autoAck = true;
        client.send({ kind: "devack", seqs: client.deliveries().map((d) => d.seq) });
      }
      await reader.waitFor((c) => c.deliveries().length >= total, "all deliveries", 15_000);
      const got = [...new Map(reader.deliveries().map((d) => [hex(d.id), d])).keys()];
      assert.deepEqual(got, ids);
      feeder.close();
      reader.close();
    }));

  it("(g) a device with a large backlog (a window of 40 KiB messages) is served, not cut off as a slow consumer", (t) =>
    underLoad(t, async () => {
      const late = await registerRaw(env.url, "late");
      const feeder = await login(env.url, mallory, "mallory");
      const total = 300; // 12 MB queued while the device is offline: more than the 8 MiB send cap
      // In batches: our own client would overflow its 8 MiB send buffer with 12 MB in one turn.
      for (let i = 0; i < total; i++) {
        feeder.send(messageTo("late", [1], randomBytes(40 * 1024)));
        if (i % 50 === 49)
          await feeder.waitFor((c) => c.received.filter((s) => s.kind === "ack").length === i + 1, "acks");
      }
      assert.ok(feeder.received.every((s) => s.kind !== "ack" || s.error === undefined));
      const device = await login(env.tcpUrl, late, "late");
      await device.waitFor((c) => c.deliveries().length >= total || c.closed, "the backlog", 15_000);
      assert.equal(device.closed, undefined, `cut off: ${JSON.stringify(device.closed)}`);
      assert.equal(device.deliveries().length, total);
      record(`a device logging in to ${total} × 40 KiB queued`, "served in full, not closed");
      feeder.close();
      device.close();
    }));
});
