// Registration with a verification code (the default, non --dev server) and presence privacy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openClient } from "@parley/client";
import { newUser, startTestServer, tempDir, waitFor } from "./helpers.ts";

describe("registration and privacy", () => {
  it("registers with a verification code sent through the verifier; wrong codes and taken names fail", async () => {
    const codes = new Map<string, string>();
    const env = await startTestServer({ dev: false }, undefined, {
      async sendCode(name, code) {
        codes.set(name, code);
      },
    });
    try {
      const dir = tempDir("reg");
      const client = await openClient({ dir, serverUrl: env.url, preKeyBatch: 5 });
      assert.deepEqual(await client.register("+4915112345678"), { status: "code-sent" });
      const code = codes.get("+4915112345678");
      assert.match(code ?? "", /^\d{6}$/);
      const wrong = code === "000000" ? "111111" : "000000";
      await assert.rejects(
        client.register("+4915112345678", wrong),
        (e: Error & { code?: string }) => e.code === "bad-code",
      );
      const ok = await client.register("+4915112345678", code!);
      assert.deepEqual(ok, { status: "registered", user: "+4915112345678", device: 1 });
      await client.start();
      await client.stop();

      const other = await openClient({ dir: tempDir("reg2"), serverUrl: env.url, preKeyBatch: 5 });
      await assert.rejects(
        other.register("+49 151 1234 5678"),
        (e: Error & { code?: string }) => e.code === "name-taken",
      );
      await assert.rejects(other.register("x"), (e: Error & { code?: string }) => e.code === "bad-request");
    } finally {
      await env.stop();
    }
  });

  it("shows presence only as the privacy setting allows", async () => {
    const env = await startTestServer();
    const alice = await newUser("alice", env.url);
    const bob = await newUser("bob", env.url);
    const carol = await newUser("carol", env.url);
    try {
      await bob.addContact("alice"); // Bob's contacts: Alice (the default privacy is "contacts")
      const seen = (c: typeof alice) => {
        const events: string[] = [];
        c.on("presence", (e) => events.push(`${e.user}:${e.online}`));
        return events;
      };
      const atAlice = seen(alice);
      const atCarol = seen(carol);
      alice.subscribePresence("bob");
      carol.subscribePresence("bob");
      await waitFor(() => atAlice.includes("bob:true"), 10_000, "alice sees bob online");
      await waitFor(() => atCarol.includes("bob:false"), 10_000, "carol gets the neutral answer");
      assert.ok(!atCarol.includes("bob:true"), "carol is not a contact: she never sees Bob online");

      await bob.iq({ op: "set-privacy", setting: "last-seen", value: "nobody" });
      const later = seen(alice);
      alice.subscribePresence("bob");
      await waitFor(() => later.includes("bob:false"), 10_000, "nobody: alice gets the neutral answer");
      assert.ok(!later.includes("bob:true"));
    } finally {
      await alice.stop();
      await bob.stop();
      await carol.stop();
      await env.stop();
    }
  });
});
