// Pending multi-device links (docs/multi-device.md). The companion and the
// primary may be connected to different worker processes, so every worker
// keeps the same small table of pending refs, fed by "link" routing events:
// wait (a companion waits), offer (a primary offered; the companion's worker
// forwards it), done / failed (settles the primary's waiting request).
import type { Router } from "../routing/types.ts";
import type { ClientSession } from "./session.ts";

/** How long a companion may wait for its primary. */
export const LINK_TTL_MS = 5 * 60 * 1000;
/** How long a primary's offer waits for the companion to complete. */
export const OFFER_TIMEOUT_MS = 60 * 1000;

interface PendingLink {
  expiresAt: number;
  /** set once a primary offered: only that account's companion may complete */
  offeredBy?: string;
  used: boolean;
}

export class LinkError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class LinkRegistry {
  private readonly pending = new Map<string, PendingLink>();
  /** Companions waiting on this worker, by ref. */
  private readonly waiting = new Map<string, ClientSession>();
  /** Primaries' link-offer requests waiting on this worker, by ref. */
  private readonly offers = new Map<
    string,
    { resolve: (device: number) => void; reject: (e: LinkError) => void; timer: NodeJS.Timeout }
  >();

  constructor(
    private readonly router: Router,
    private readonly now: () => number,
  ) {}

  private sweep(): void {
    const t = this.now();
    for (const [ref, p] of this.pending) if (p.expiresAt < t - LINK_TTL_MS) this.pending.delete(ref);
  }

  /** A companion on this worker waits for `ref`. */
  wait(ref: string, session: ClientSession): void {
    if (this.pending.has(ref)) throw new LinkError("conflict", "this link reference is already in use");
    this.sweep();
    const expiresAt = this.now() + LINK_TTL_MS;
    this.waiting.set(ref, session);
    this.pending.set(ref, { expiresAt, used: false });
    this.router.publish({ type: "link", phase: "wait", ref, expiresAt });
  }

  /** Forgets a companion that went away. */
  drop(session: ClientSession): void {
    for (const [ref, s] of this.waiting) if (s === session) this.waiting.delete(ref);
  }

  /** The primary `user` offers `payload` to the companion waiting for `ref`; resolves with the new device id. */
  async offer(ref: string, user: string, payload: Uint8Array): Promise<number> {
    // The companion's "wait" may still be travelling from another worker: give it a moment.
    for (let i = 0; i < 20 && !this.pending.has(ref); i++) await new Promise((r) => setTimeout(r, 50));
    const p = this.pending.get(ref);
    if (!p)
      throw new LinkError(
        "not-found",
        "no device is waiting for this link code (wrong code, or the new device gave up)",
      );
    if (p.used) throw new LinkError("gone", "this link code was already used");
    if (p.expiresAt < this.now()) throw new LinkError("gone", "this link code has expired");
    if (p.offeredBy !== undefined) throw new LinkError("conflict", "this link code was already offered");
    p.offeredBy = user;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.offers.delete(ref);
        reject(new LinkError("gone", "the new device did not complete the link in time"));
      }, OFFER_TIMEOUT_MS);
      this.offers.set(ref, { resolve, reject, timer });
      this.router.publish({ type: "link", phase: "offer", ref, user, payload });
    });
  }

  /** Checks that the companion on `session` may complete `ref` for `user`. */
  checkComplete(ref: string, user: string, session: ClientSession): void {
    const p = this.pending.get(ref);
    if (!p || this.waiting.get(ref) !== session)
      throw new LinkError("not-found", "this connection is not waiting for that link");
    if (p.used) throw new LinkError("gone", "this link was already used");
    if (p.expiresAt < this.now()) throw new LinkError("gone", "this link has expired");
    if (p.offeredBy !== user) throw new LinkError("forbidden", "the link was not offered by that account");
  }

  completed(ref: string, user: string, device: number): void {
    this.waiting.delete(ref);
    this.router.publish({ type: "link", phase: "done", ref, user, device });
  }

  failed(ref: string, reason: string): void {
    this.router.publish({ type: "link", phase: "failed", ref, reason });
  }

  /** Routing events of every worker. */
  onEvent(e: {
    phase: string;
    ref: string;
    user?: string;
    device?: number;
    payload?: Uint8Array;
    expiresAt?: number;
    reason?: string;
  }): void {
    switch (e.phase) {
      case "wait":
        if (!this.pending.has(e.ref)) this.pending.set(e.ref, { expiresAt: e.expiresAt ?? 0, used: false });
        break;
      case "offer": {
        const p = this.pending.get(e.ref);
        if (p) p.offeredBy = e.user;
        const companion = this.waiting.get(e.ref);
        if (companion && e.payload) {
          companion.send({
            kind: "notification",
            id: 0,
            timestamp: Math.floor(this.now() / 1000),
            event: { type: "link-offer", ref: Uint8Array.from(Buffer.from(e.ref, "hex")), payload: e.payload },
          });
        }
        break;
      }
      case "done":
      case "failed": {
        const p = this.pending.get(e.ref);
        if (p) p.used = true;
        const o = this.offers.get(e.ref);
        if (!o) break;
        this.offers.delete(e.ref);
        clearTimeout(o.timer);
        if (e.phase === "done") o.resolve(e.device ?? 0);
        else o.reject(new LinkError("gone", e.reason ?? "the link failed"));
        break;
      }
    }
  }
}
