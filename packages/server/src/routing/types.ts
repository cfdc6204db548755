// Routing between the processes that hold connections. A worker never needs
// to know where a device is connected: it publishes an event, and whichever
// worker holds the device acts on it (the Signal-Server design: wake-ups over
// pub/sub, the queue itself lives in shared storage).
//
// Implementations: in-process (one worker), between local cluster workers over
// IPC through the primary (cluster.ts), and later NATS between machines.

export type RouteEvent =
  /**
   * New entries in a device's queue: the worker holding that device pushes them. With `entry`, the
   * committed entry itself travels along, so a caught-up connection gets it without reading the queue.
   */
  | { type: "wake"; user: string; device: number; entry?: { seq: number; createdAt: number; envelope: Uint8Array } }
  /**
   * One shared entry (group message or notification) committed for many devices: the payload travels
   * once, with each target's seq; workers push it to the targets they hold.
   */
  | {
      type: "wake-shared";
      targets: { user: string; device: number; seq: number }[];
      createdAt: number;
      envelope: Uint8Array;
    }
  /**
   * A device logged in on `owner`: every other worker closes its older connection for it, and every
   * worker counts the device online (presence: no separate online event).
   */
  | { type: "claim"; user: string; device: number; owner: string }
  /** An ephemeral stanza (typing, presence update) for all online devices of `user`; never stored. */
  | { type: "ephemeral"; user: string; stanza: Uint8Array; exceptDevice?: number }
  /** An account's devices changed (linked, removed, account deleted): drop cached device sets. */
  | { type: "devices"; accountId: string; user: string }
  /** A group's membership or state changed: drop cached copies (docs/groups.md). */
  | { type: "group"; group: string }
  /** A device was unlinked: its connections close, everywhere. */
  | { type: "revoke"; user: string; device: number }
  /**
   * Multi-device linking, between the worker holding the waiting companion and the worker holding
   * the primary: a companion waits for `ref`; the primary offers; the companion completes or the
   * link fails. Every worker tracks pending refs so a wrong, reused or expired code fails at once.
   */
  | {
      type: "link";
      phase: "wait" | "offer" | "done" | "failed";
      ref: string;
      user?: string;
      device?: number;
      payload?: Uint8Array;
      expiresAt?: number;
      reason?: string;
    }
  /**
   * A delivered receipt for the devices of `accountId` (only `device` if set), sent to the worker
   * owning that account's queue shard, which pushes it or queues it (Gateway.routeDeliveredReceipt).
   */
  | { type: "receipt"; accountId: string; device?: number; stanza: Uint8Array }
  /** A device of `user` went offline, for presence subscribers (coming online travels as a claim). */
  | { type: "offline"; user: string; device: number; lastSeen: number };

export interface Router {
  /** Delivers `event` to every subscriber in every process, this one included. */
  publish(event: RouteEvent): void;
  /** Delivers `event` to the subscribers of worker `worker` only (this process's if it is that one). */
  sendTo(worker: number, event: RouteEvent): void;
  subscribe(handler: (event: RouteEvent) => void): void;
  close(): Promise<void>;
}
