import type { RouteEvent, Router } from "./types.ts";

/** Routing inside one process: events go straight to the subscribers. */
export class LocalRouter implements Router {
  private readonly handlers: ((event: RouteEvent) => void)[] = [];

  publish(event: RouteEvent): void {
    // Deliver on a later turn, like a real bus: publishers never re-enter their own handlers.
    queueMicrotask(() => {
      for (const h of this.handlers) h(event);
    });
  }

  sendTo(_worker: number, event: RouteEvent): void {
    this.publish(event); // one process holds every worker's share
  }

  subscribe(handler: (event: RouteEvent) => void): void {
    this.handlers.push(handler);
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
  }
}
