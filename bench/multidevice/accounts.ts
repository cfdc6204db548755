// Real SDK clients for the bench: a registered primary, and companions linked to it the way a
// user links a laptop (link request on the new device, acceptLink on the primary).
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { ClientError, openClient, type ParleyClient } from "@parley/client";
import { connect } from "@parley/wire";
import type { WireMeter } from "./wire-meter.ts";

export interface Account {
  name: string;
  /** devices[0] is the primary (device 1); the rest are linked companions. */
  devices: ParleyClient[];
}

export interface ClientFactory {
  serverUrl: string;
  /** Parent directory of every profile (removed by the caller). */
  root: string;
  meter: WireMeter;
}

function profileDir(f: ClientFactory, label: string): string {
  return mkdtempSync(join(f.root, `${label}-`));
}

async function open(f: ClientFactory, label: string): Promise<ParleyClient> {
  return openClient({ dir: profileDir(f, label), serverUrl: f.serverUrl, connect: f.meter.wrap(connect) });
}

/** Registers `name` with a new primary device and connects it. */
export async function registerPrimary(f: ClientFactory, name: string): Promise<ParleyClient> {
  const client = await open(f, name);
  const r = await client.register(name);
  if (r.status !== "registered") throw new Error(`registration of ${name} did not complete: ${r.status}`);
  await client.start();
  return client;
}

/**
 * acceptLink, retried while the server answers "not-found". With several workers the companion's
 * link-wait is answered by its own worker at once, but the other workers learn the ref only when
 * the "wait" routing event has gone through the cluster primary; an offer that reaches another
 * worker before that is refused. A person scanning a QR code never hits this window; a program
 * linking right away does (about 1 link in 8 with 2 workers), so the bench waits it out.
 */
async function acceptLinkWhenKnown(primary: ParleyClient, code: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await primary.acceptLink(code);
    } catch (err) {
      if (!(err instanceof ClientError && err.code === "not-found") || attempt >= 20) throw err;
      linkRetries++;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** How many link offers had to be repeated because of the race above (reported by the bench). */
export let linkRetries = 0;

/** Links a new companion to `primary` and connects it; resolves with the companion and its device id. */
export async function linkCompanion(
  f: ClientFactory,
  primary: ParleyClient,
): Promise<{ companion: ParleyClient; device: number }> {
  const companion = await open(f, `${primary.accountName}-companion`);
  const request = await companion.createLinkRequest();
  const [device, linked] = await Promise.all([acceptLinkWhenKnown(primary, request.code), request.linked]);
  if (linked.device !== device || linked.user !== primary.accountName) {
    throw new Error(`link mismatch: primary says device ${device}, companion says ${linked.user}.${linked.device}`);
  }
  await companion.start();
  return { companion, device };
}

/** An account with `deviceCount` devices: a primary and deviceCount - 1 companions. */
export async function createAccount(f: ClientFactory, name: string, deviceCount: number): Promise<Account> {
  const primary = await registerPrimary(f, name);
  const devices = [primary];
  for (let i = 1; i < deviceCount; i++) devices.push((await linkCompanion(f, primary)).companion);
  const listed = (await primary.ownDevices()).map((d) => d.id);
  if (listed.length !== deviceCount) {
    throw new Error(`${name} should have ${deviceCount} devices, its signed list has ${listed.join(",")}`);
  }
  return { name, devices };
}

export async function stopAll(clients: Iterable<ParleyClient>): Promise<void> {
  await Promise.all(
    [...clients].map(async (c) => {
      await c.stop().catch(() => {});
      c.store.close();
    }),
  );
}
