// Commands between the load orchestrator and its generator processes (JSON over the IPC channel).
import type { LoadAccount } from "./accounts.ts";
import type { StoreOptions, TrafficOptions } from "./generator.ts";

export type Command =
  | { op: "init"; url: string; serverKey?: string }
  | { op: "register"; names: string[]; localAddresses: string[]; concurrency: number }
  | { op: "connect"; accounts: LoadAccount[]; localAddresses: string[]; concurrency: number }
  | { op: "traffic"; options: TrafficOptions }
  | { op: "offline-store"; options: StoreOptions }
  | { op: "offline-drain"; recipient: LoadAccount; localAddress?: string }
  | { op: "disconnect"; users: string[] }
  | { op: "close" };
