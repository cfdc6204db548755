// Routing between node:cluster workers. Events go straight to every other worker over the worker
// mesh (./mesh.ts: direct Unix-socket links, one frame per peer per event-loop turn), and to this
// worker's own subscribers on a later microtask, so publishers never re-enter their own handlers.
// (Before the mesh, every event crossed the primary: two JSON IPC hops and the primary's CPU.)
import type { WorkerMesh } from "./mesh.ts";
import type { RouteEvent, Router } from "./types.ts";

/** Worker side. */
export class ClusterWorkerRouter implements Router {
  private readonly handlers: ((event: RouteEvent) => void)[] = [];

  constructor(private readonly mesh: WorkerMesh) {
    mesh.onRoute((e) => this.dispatch(e));
  }

  private dispatch(e: RouteEvent): void {
    for (const h of this.handlers) h(e);
  }

  publish(event: RouteEvent): void {
    this.mesh.broadcast({ t: "route", e: event });
    queueMicrotask(() => this.dispatch(event));
  }

  sendTo(worker: number, event: RouteEvent): void {
    if (worker === this.mesh.index) queueMicrotask(() => this.dispatch(event));
    else this.mesh.send(worker, { t: "route", e: event });
  }

  subscribe(handler: (event: RouteEvent) => void): void {
    this.handlers.push(handler);
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
  }
}
