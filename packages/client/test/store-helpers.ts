// Shared fixtures for the store tests: a fresh profile directory per test, removed afterwards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openProfileStore } from "../src/store/index.node.ts";
import type { ProfileStore } from "../src/store/types.ts";

export function tempDir(): { dir: string; cleanup: () => void } {
  const base = mkdtempSync(join(tmpdir(), "parley-store-"));
  return { dir: join(base, "profile"), cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** Opens a store in a fresh directory with a key file (raw key: no KDF cost), runs fn, cleans up. */
export async function withStore<T>(fn: (store: ProfileStore, dir: string) => T | Promise<T>): Promise<T> {
  const { dir, cleanup } = tempDir();
  const store = await openProfileStore({ dir });
  try {
    return await fn(store, dir);
  } finally {
    store.close();
    cleanup();
  }
}

export const ALICE = "alice";
export const BOB = "bob";
