// A well-behaved pair of devices that keeps messaging both ways while a test
// attacks the server: every message must be acked without error and delivered
// to the other side, and neither connection may be closed.
import { randomBytes } from "node:crypto";
import { hex, messageTo, type RawClient } from "./raw-client.ts";

export class Chatter {
  private timer: NodeJS.Timeout | undefined;
  private readonly sent: { from: RawClient; to: RawClient; id: string }[] = [];

  constructor(
    private readonly a: RawClient,
    private readonly b: RawClient,
  ) {}

  /** Sends one message each way every `intervalMs` until stop(). */
  start(intervalMs = 10): this {
    const round = () => {
      this.sendOne(this.a, this.b);
      this.sendOne(this.b, this.a);
    };
    round();
    this.timer = setInterval(round, intervalMs);
    return this;
  }

  private sendOne(from: RawClient, to: RawClient): void {
    if (from.closed) return;
    const stanza = messageTo(to.label, [1], randomBytes(48));
    if (stanza.kind !== "message") return;
    this.sent.push({ from, to, id: hex(stanza.id) });
    from.send(stanza);
  }

  /** Stops sending and waits until every message is acked and delivered; throws on any failure. */
  async stop(timeoutMs = 15_000): Promise<{ messages: number }> {
    clearInterval(this.timer);
    const acked = (c: RawClient) =>
      new Map(c.received.flatMap((s) => (s.kind === "ack" ? [[hex(s.id), s] as const] : [])));
    const delivered = (c: RawClient) => new Set(c.deliveries().map((d) => hex(d.id)));
    const started = performance.now(); // monotonic: this machine's wall clock jumps
    for (;;) {
      for (const c of [this.a, this.b]) {
        if (c.closed) throw new Error(`well-behaved ${c.label} was disconnected: ${c.closed.code} ${c.closed.reason}`);
      }
      const acks = new Map([...acked(this.a), ...acked(this.b)]);
      const bad = [...acks.values()].find((s) => s.kind === "ack" && s.error !== undefined);
      if (bad) throw new Error(`well-behaved message refused: ${JSON.stringify(bad.kind === "ack" ? bad.error : bad)}`);
      const inbox = new Map([
        [this.a, delivered(this.a)],
        [this.b, delivered(this.b)],
      ]);
      const missing = this.sent.filter((m) => !acks.has(m.id) || !inbox.get(m.to)!.has(m.id));
      if (missing.length === 0) return { messages: this.sent.length };
      if (performance.now() - started > timeoutMs) {
        throw new Error(`${missing.length} of ${this.sent.length} well-behaved messages not acked+delivered`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
