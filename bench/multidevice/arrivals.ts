// When each message reached each device: "message" events on every device of the accounts under
// test, and the sender's tick events ("status": sent = ✓ server ack, delivered = ✓✓ receipt).
// Everything is recorded as it happens, so a waiter registered late still sees earlier arrivals.
import { performance } from "node:perf_hooks";
import type { ParleyClient } from "@parley/client";

type Waiter = { id: string; clients: readonly ParleyClient[]; resolve: (at: number) => void };

export class Arrivals {
  private readonly at = new Map<string, Map<ParleyClient, number>>();
  private readonly status = new Map<string, Map<string, number>>();
  private waiters: Waiter[] = [];
  private readonly offs: (() => void)[] = [];

  watch(clients: readonly ParleyClient[]): void {
    for (const client of clients) {
      this.offs.push(
        client.on("message", (e) => this.arrived(e.message.id, client)),
        client.on("status", (e) => {
          const byStatus = this.status.get(e.id) ?? new Map<string, number>();
          if (!byStatus.has(e.status)) byStatus.set(e.status, performance.now());
          this.status.set(e.id, byStatus);
          this.check();
        }),
      );
    }
  }

  unwatch(): void {
    for (const off of this.offs.splice(0)) off();
  }

  private arrived(id: string, client: ParleyClient): void {
    const byClient = this.at.get(id) ?? new Map<ParleyClient, number>();
    if (!byClient.has(client)) byClient.set(client, performance.now());
    this.at.set(id, byClient);
    this.check();
  }

  /** The time the last of `clients` received message `id`, or undefined while one still lacks it. */
  lastArrival(id: string, clients: readonly ParleyClient[]): number | undefined {
    const byClient = this.at.get(id);
    let last = 0;
    for (const c of clients) {
      const t = byClient?.get(c);
      if (t === undefined) return undefined;
      last = Math.max(last, t);
    }
    return last;
  }

  /** When the sender saw `status` for its message `id` (first time). */
  statusAt(id: string, status: "sent" | "delivered"): number | undefined {
    return this.status.get(id)?.get(status);
  }

  /** Resolves with the time the last of `clients` received `id`; rejects after timeoutMs. */
  waitAll(id: string, clients: readonly ParleyClient[], timeoutMs: number): Promise<number> {
    const now = this.lastArrival(id, clients);
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { id, clients, resolve };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const missing = clients.filter((c) => !this.at.get(id)?.has(c)).map((c) => `${c.accountName}.${c.deviceId}`);
        reject(new Error(`message ${id} did not reach ${missing.join(", ")} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiter.resolve = (at) => {
        clearTimeout(timer);
        resolve(at);
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves with the time the sender saw `status` for `id`, or undefined after timeoutMs. */
  async waitStatus(id: string, status: "sent" | "delivered", timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const t = this.statusAt(id, status);
      if (t !== undefined || performance.now() > deadline) return t;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  private check(): void {
    if (this.waiters.length === 0) return;
    const done: Waiter[] = [];
    for (const w of this.waiters) {
      const t = this.lastArrival(w.id, w.clients);
      if (t !== undefined) {
        done.push(w);
        w.resolve(t);
      }
    }
    if (done.length > 0) this.waiters = this.waiters.filter((w) => !done.includes(w));
  }
}
