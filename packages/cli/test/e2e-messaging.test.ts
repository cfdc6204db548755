import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { directChatId, type ParleyClient } from "@parley/client";
import { newUser, startTestServer, waitFor } from "./helpers.ts";

describe("1:1 messaging through a real server", () => {
  let env: Awaited<ReturnType<typeof startTestServer>>;
  let alice: ParleyClient;
  let bob: ParleyClient;

  before(async () => {
    env = await startTestServer();
    alice = await newUser("alice", env.url);
    bob = await newUser("bob", env.url);
  });
  after(async () => {
    await alice?.stop();
    await bob?.stop();
    await env?.stop();
  });

  it("delivers both ways with sent → delivered → read ticks", async () => {
    const received: string[] = [];
    bob.on("message", (e) => received.push(e.message.body ?? ""));
    const id = await alice.sendText("bob", "hello bob");
    assert.equal(alice.store.getMessage("alice", id)?.status !== "pending", true);
    await waitFor(() => received.includes("hello bob"), 15_000, "bob receives");
    await alice.waitForStatus(id, "delivered");
    assert.equal(bob.markRead("alice"), 1);
    await alice.waitForStatus(id, "read");

    const back: string[] = [];
    alice.on("message", (e) => back.push(e.message.body ?? ""));
    await bob.sendText("alice", "hi alice");
    await waitFor(() => back.includes("hi alice"), 15_000, "alice receives");
    const history = bob.store.history(directChatId("alice")).messages.map((m) => m.body);
    assert.deepEqual(history, ["hi alice", "hello bob"]);
  });

  it("shows matching safety numbers on both sides", () => {
    const a = alice.safetyNumber("bob");
    const b = bob.safetyNumber("alice");
    assert.match(a, /^\d{60}$/);
    assert.equal(a, b);
  });

  it("a stop() during start() keeps the client stopped", async () => {
    await bob.stop();
    const states: string[] = [];
    const off = bob.on("connection", (e) => states.push(e.state));
    try {
      const starting = bob.start();
      await bob.stop(); // while the handshake and login are under way
      const started = await starting.then(
        () => "resolved",
        (err: { code?: string }) => err.code,
      );
      assert.equal(started, "STOPPED");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(bob.connectionState, "stopped", `states: ${states.join(" → ")}`);
      assert.ok(!states.includes("connected"), `states: ${states.join(" → ")}`);
    } finally {
      off();
    }
    await bob.start();
    assert.equal(bob.connectionState, "connected");
  });

  it("relays typing and presence", async () => {
    const typing: string[] = [];
    bob.on("typing", (e) => typing.push(`${e.user}:${e.state}`));
    // Typing is best-effort (never queued, rate-limited): keep typing until Bob sees it.
    await waitFor(
      () => {
        alice.sendTyping("bob", "composing");
        return typing.includes("alice:composing");
      },
      10_000,
      "typing",
    );

    const presence: string[] = [];
    alice.on("presence", (e) => presence.push(`${e.user}:${e.online}`));
    alice.subscribePresence("bob");
    await waitFor(() => presence.includes("bob:true"), 10_000, "bob online");
    await bob.stop();
    await waitFor(() => presence.includes("bob:false"), 10_000, "bob offline");
  });
});
