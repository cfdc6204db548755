// Routing between node:cluster workers: a worker sends its event to the
// primary, which fans it out to every worker (including the sender). Events
// published within one event-loop turn travel as one IPC message, because
// per-message IPC costs more than the work it carries under load.
import type { Worker } from "node:cluster";
import type { RouteEvent, Router } from "./types.ts";

interface WireEvent {
  type: RouteEvent["type"];
  user: string;
  group?: string;
  accountId?: string;
  phase?: "wait" | "offer" | "done" | "failed";
  ref?: string;
  payload?: string; // base64
  expiresAt?: number;
  reason?: string;
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
  if (e.type === "ephemeral") return { ...e, stanza: Buffer.from(e.stanza).toString("base64") };
  if (e.type === "group") return { type: "group", user: "", group: e.group };
  if (e.type === "link") {
    const { payload, ...rest } = e;
    return { ...rest, user: e.user ?? "", ...(payload ? { payload: Buffer.from(payload).toString("base64") } : {}) };
  }
  return { ...e };
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
    case "revoke":
      return { type: "revoke", user: w.user, device: w.device ?? 0 };
    case "link":
      return {
        type: "link",
        phase: w.phase ?? "failed",
        ref: w.ref ?? "",
        ...(w.user ? { user: w.user } : {}),
        ...(w.device !== undefined ? { device: w.device } : {}),
        ...(w.payload !== undefined ? { payload: new Uint8Array(Buffer.from(w.payload, "base64")) } : {}),
        ...(w.expiresAt !== undefined ? { expiresAt: w.expiresAt } : {}),
        ...(w.reason !== undefined ? { reason: w.reason } : {}),
      };
    case "devices":
      return { type: "devices", accountId: w.accountId ?? "", user: w.user };
    case "group":
      return { type: "group", group: w.group ?? "" };
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
