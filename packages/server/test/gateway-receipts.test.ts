// Delivered receipts (second ticks) to a sender that is connected and caught up are pushed from
// memory, with no queue row (Gateway.routeDeliveredReceipt); one the sender has not acknowledged
// when its connection ends is stored then, and comes again on its next login.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { hex, login, messageTo, type RawClient, type RawIdentity, registerRaw } from "./gateway-helpers/raw-client.ts";
import { metricValue, startTestServer, type TestServer } from "./gateway-helpers/server.ts";

describe("delivered receipts pushed from memory", () => {
  let server: TestServer;
  let alice: RawIdentity;
  let bob: RawIdentity;
  const open: RawClient[] = [];
  const depth = async () => metricValue(await server.metrics(), "parley_queue_depth");

  before(async () => {
    server = await startTestServer();
    alice = await registerRaw(server.url, "alice_r");
    bob = await registerRaw(server.url, "bob_r");
  });
  after(async () => {
    for (const c of open) c.close();
    await server.stop();
  });

  const connect = async (id: RawIdentity) => {
    const c = await login(server.tcpUrl, id);
    open.push(c);
    await c.waitFor(
      (x) => x.received.some((s) => s.kind === "notification" && s.event.type === "queue-empty"),
      "queue-empty",
    );
    return c;
  };
  const receiptFor = (c: RawClient, id: string) =>
    c.waitFor(
      (x) => x.received.find((s) => s.kind === "receipt" && s.type === "delivered" && s.ids.some((i) => hex(i) === id)),
      `delivered receipt for ${id}`,
    );

  it("stores nothing for a receipt the connected sender acknowledges, and stores one it leaves unacknowledged", async () => {
    const a = await connect(alice);
    a.autoAck = false; // alice holds her acks for now
    const b = await connect(bob);
    const msg = messageTo(bob.user, [bob.device], randomBytes(40));
    if (msg.kind !== "message") throw new Error("unreachable");
    const id = hex(msg.id);
    a.send(msg);
    await b.waitFor((x) => x.deliveries().find((d) => hex(d.id) === id), "delivery to bob"); // bob acks: autoAck
    const receipt = await receiptFor(a, id);
    assert.ok(receipt.kind === "receipt" && typeof receipt.seq === "number");
    // Bob's entry is deleted; the receipt to alice never had a row.
    for (let i = 0; i < 50 && (await depth()) !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await depth(), 0);

    // Alice goes away without acknowledging it: now it is stored, and her next login gets it again.
    a.close();
    await a.waitClosed();
    for (let i = 0; i < 50 && (await depth()) !== 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await depth(), 1);
    const again = await login(server.tcpUrl, alice);
    open.push(again);
    const stored = await receiptFor(again, id);
    assert.ok(stored.kind === "receipt" && stored.seq !== undefined && stored.seq > receipt.seq!);
    for (let i = 0; i < 50 && (await depth()) !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await depth(), 0, "acked (autoAck) and deleted");

    // An acknowledged memory receipt is gone for good: a later login gets nothing more.
    const msg2 = messageTo(bob.user, [bob.device], randomBytes(40));
    if (msg2.kind !== "message") throw new Error("unreachable");
    again.send(msg2);
    await receiptFor(again, hex(msg2.id));
    again.close();
    await again.waitClosed();
    const third = await connect(alice);
    assert.equal(third.received.filter((s) => s.kind === "receipt").length, 0);
  });
});
