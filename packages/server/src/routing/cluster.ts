// Routing between node:cluster workers: a worker sends its event to the
// primary, which fans it out to every worker (including the sender). Events
// published within one event-loop turn travel as one IPC message, because
// per-message IPC costs more than the work it carries under load.
import type { Worker } from "node:cluster";
import type { RouteEvent, Router } from "./types.ts";

interface WireEvent {
  type: RouteEvent["type"];
  user: string;
  accountId?: string;
  device?: number;
  owner?: string;
  stanza?: string; // base64: IPC is JSON
  exceptDevice?: number;
  online?: boolean;
  lastSeen?: number;
}

export interface RouteBatch {
  parleyRoute: WireEvent[];
}

function toWire(e: RouteEvent): WireEvent {
  return e.type === "ephemeral" ? { ...e, stanza: Buffer.from(e.stanza).toString("base64") } : { ...e };
}

function fromWire(w: WireEvent): RouteEvent | null {
  switch (w.type) {
    case "wake":
      return { type: "wake", user: w.user, device: w.device ?? 0 };
    case "claim":
      return { type: "claim", user: w.user, device: w.device ?? 0, owner: w.owner ?? "" };
    case "ephemeral":
      return {
        type: "ephemeral",
        user: w.user,
        stanza: new Uint8Array(Buffer.from(w.stanza ?? "", "base64")),
        ...(w.exceptDevice !== undefined ? { exceptDevice: w.exceptDevice } : {}),
      };
    case "devices":
      return { type: "devices", accountId: w.accountId ?? "", user: w.user };
    case "presence":
      return {
        type: "presence",
        user: w.user,
        device: w.device ?? 0,
        online: w.online ?? false,
        lastSeen: w.lastSeen ?? 0,
      };
    default:
      return null;
  }
}

export function isRouteBatch(msg: unknown): msg is RouteBatch {
  return typeof msg === "object" && msg !== null && Array.isArray((msg as RouteBatch).parleyRoute);
}

/** Worker side. */
export class ClusterWorkerRouter implements Router {
  private readonly handlers: ((event: RouteEvent) => void)[] = [];
  private pending: WireEvent[] = [];
  private readonly onMessage = (msg: unknown) => {
    if (!isRouteBatch(msg)) return;
    for (const w of msg.parleyRoute) {
      const e = fromWire(w);
      if (e) for (const h of this.handlers) h(e);
    }
  };

  constructor() {
    process.on("message", this.onMessage);
  }

  publish(event: RouteEvent): void {
    if (this.pending.length === 0) setImmediate(() => this.flush());
    this.pending.push(toWire(event));
  }

  private flush(): void {
    const batch: RouteBatch = { parleyRoute: this.pending };
    this.pending = [];
    if (process.connected) process.send?.(batch);
  }

  subscribe(handler: (event: RouteEvent) => void): void {
    this.handlers.push(handler);
  }

  async close(): Promise<void> {
    process.off("message", this.onMessage);
    this.handlers.length = 0;
  }
}

/** Primary side: relays every batch to all live workers. */
export function relayBetweenWorkers(workers: () => Iterable<Worker>, msg: RouteBatch): void {
  for (const w of workers()) {
    if (w.isConnected()) w.send(msg);
  }
}
