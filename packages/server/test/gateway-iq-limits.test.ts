// An iq answer that cannot fit one stanza is answered with an error, never left hanging, and the
// connection's name-interning tables stay in step (the refused stanza interned nothing).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IqError, login, type RawIdentity, registerRaw } from "./gateway-helpers/raw-client.ts";
import { startTestServer } from "./gateway-helpers/server.ts";

describe("iq answers over the stanza size", () => {
  it("fetch-bundles for too many users gets too-large, and the connection keeps working", async () => {
    const env = await startTestServer();
    try {
      // Each bundle carries a 1,569-byte KEM key: 45 bundles exceed a 64 KiB stanza.
      const users: RawIdentity[] = [];
      for (let i = 0; i < 45; i++) users.push(await registerRaw(env.url, `user${i}`));
      const asker = await login(env.url, users[0]!);
      await assert.rejects(
        asker.iq({ op: "fetch-bundles", users: users.map((u) => ({ user: u.user })) }),
        (e: unknown) => e instanceof IqError && e.error.code === "too-large",
      );
      const small = await asker.iq({ op: "fetch-bundles", users: [{ user: "user7" }, { user: "user8" }] });
      assert.equal(small.op, "bundles");
      assert.deepEqual(small.op === "bundles" ? small.bundles.map((b) => b.user) : [], ["user7", "user8"]);
      asker.close();
    } finally {
      await env.stop();
    }
  });
});
