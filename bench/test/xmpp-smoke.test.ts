// The XMPP mode of the load generator: the stanza splitter on its own (always),
// and against a real ejabberd (only where Debian's ejabberd is installed; the
// test says so and skips otherwise): every message delivered and receipted
// exactly once, offline messages all stored and drained. No timings.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loopbackAddress } from "../load/connection.ts";
import { XmppLoadGenerator } from "../load/xmpp-generator.ts";
import { attr, elementName, StanzaSplitter } from "../load/xmpp-xml.ts";
import { ejabberdLibs, type RunningEjabberd, startEjabberd } from "../vs-ejabberd/ejabberd-process.ts";

describe("XMPP stanza splitter", () => {
  const server =
    "<?xml version='1.0'?><stream:stream id='1' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" +
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>" +
    "<message from='a@localhost/r' to='b@localhost' type='chat' id='t.0.1'><body>hi &amp; bye</body><request xmlns='urn:xmpp:receipts'/></message>" +
    "<a xmlns='urn:xmpp:sm:3' h='42'/>" +
    "<message from='b@localhost/r' id='rt.0.1'><received xmlns='urn:xmpp:receipts' id='t.0.1'/></message>" +
    "</stream:stream>";

  const collect = (chunks: string[]) => {
    const seen: string[] = [];
    let opened = 0;
    let closed = 0;
    const splitter = new StanzaSplitter({
      streamOpen: () => opened++,
      stanza: (xml) => seen.push(xml),
      streamClose: () => closed++,
    });
    for (const c of chunks) splitter.push(c);
    return { seen, opened, closed };
  };

  it("splits whole input and every two-way cut of it into the same stanzas", () => {
    const whole = collect([server]);
    assert.equal(whole.opened, 1);
    assert.equal(whole.closed, 1);
    assert.deepEqual(whole.seen.map(elementName), ["stream:features", "message", "a", "message"]);
    for (let cut = 1; cut < server.length; cut++) {
      const split = collect([server.slice(0, cut), server.slice(cut)]);
      assert.deepEqual(split.seen, whole.seen, `cut at ${cut}`);
      assert.equal(split.closed, 1);
    }
    // byte by byte
    assert.deepEqual(collect([...server]).seen, whole.seen);
  });

  it("reads attributes of the top tag or of a nested one", () => {
    const { seen } = collect([server]);
    const msg = seen[1]!;
    assert.equal(attr(msg, "id"), "t.0.1");
    assert.equal(attr(msg, "from"), "a@localhost/r");
    assert.equal(attr(msg, "to"), "b@localhost");
    assert.equal(attr(msg, "xmlns"), undefined, "attributes of child tags are not the top tag's");
    assert.equal(attr(seen[2]!, "h"), "42");
    const receipt = seen[3]!;
    assert.equal(attr(receipt, "id", receipt.indexOf("<received")), "t.0.1");
  });
});

const libs = ejabberdLibs();
const skip = libs
  ? false
  : "Debian's ejabberd is not installed (apt-get install -y ejabberd, or run npm run bench:vs-ejabberd once)";
if (skip) console.log(`# SKIP xmpp-smoke against ejabberd: ${skip}`);

describe("XMPP load generator against a real ejabberd", { skip }, () => {
  let server: RunningEjabberd;
  let generator: XmppLoadGenerator;
  const users = (from: number, n: number) => Array.from({ length: n }, (_, i) => `smoke${from + i}`);

  before(async () => {
    server = await startEjabberd({ userPrefix: "smoke", users: 30, password: "pw" }, () => {});
    generator = new XmppLoadGenerator({ host: "127.0.0.1", port: server.port, domain: server.domain, password: "pw" });
  });

  after(async () => {
    await generator?.closeAll();
    await server?.stop();
  });

  it("10 pairs for ~1 s: every message delivered and receipted exactly once", { timeout: 60_000 }, async () => {
    const online = users(1, 20);
    const login = await generator.connectAll(online, [loopbackAddress(2), loopbackAddress(3)], 8);
    assert.equal(login.connected, 20);
    assert.equal(generator.openCount(), 20);
    const flows = Array.from({ length: 10 }, (_, i) => ({ from: online[2 * i]!, to: online[2 * i + 1]! }));
    const report = await generator.traffic({ flows, mode: "saturate", maxInFlight: 10, warmupMs: 200, measureMs: 800 });
    const { sent, delivered, receipted } = report.totals;
    assert.ok(sent > 0, "something was sent");
    assert.equal(delivered, sent, "every message delivered");
    assert.equal(receipted, sent, "every message receipted");
    assert.deepEqual(report.missing, { ack: 0, delivery: 0, receipt: 0 });
    assert.equal(report.duplicates, 0);
    assert.equal(report.misrouted, 0);
    assert.equal(report.ackErrors, 0, report.firstError);
    assert.equal(report.connectionsLost, 0);
    await generator.disconnect(online);
  });

  it("offline: stored messages are acknowledged, then all arrive once at login", { timeout: 60_000 }, async () => {
    const [recipient, ...senders] = users(21, 4) as [string, ...string[]];
    await generator.connectAll(senders, [], 3, { streamManagement: true });
    // Inner time limits below the test's, so that a stall fails with the counts it reached.
    const store = await generator.offlineStore({ senders, recipient, messages: 300, window: 50, timeoutMs: 20_000 });
    assert.equal(store.acked, 300, `acked ${store.acked} of 300 (${JSON.stringify(store)})`);
    assert.equal(store.ackErrors, 0, store.firstError);
    const drain = await generator.offlineDrain(recipient, undefined, 20_000);
    assert.equal(drain.delivered, 300, `delivered ${drain.delivered} of 300 (${JSON.stringify(drain)})`);
    assert.equal(drain.receipted, 300);
    assert.equal(drain.duplicates, 0);
    assert.equal(drain.misrouted, 0);
    assert.deepEqual(drain.missing, { ack: 0, delivery: 0, receipt: 0 });
  });
});
