// Bulk registration of load-test accounts, and the cache that lets repeated
// runs against the same server (same data directory) skip it.
//
// The server verifies the XEdDSA signatures of the signed prekey and of the
// last-resort KEM prekey, so each identity signs real keys. ML-KEM key
// generation is slow, so ONE last-resort KEM key pair is generated per process
// and signed by every identity; no one-time prekeys are uploaded (the bench
// never fetches bundles).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPreKeyPair,
  generateRegistrationId,
  generateSignedPreKey,
  KEM_TYPE_MLKEM1024,
  serializeKemPublicKey,
  xeddsaSign,
} from "@parley/signal";
import { generateStaticKeyPair, type StaticKeyPair } from "@parley/wire";
import { LoadError, mapLimit, openLoadConnection } from "./connection.ts";

/** A registered account as the generator needs it: its name, device and Noise transport key. */
export interface LoadAccount {
  user: string;
  device: number;
  /** hex */
  noisePrivateKey: string;
  /** hex */
  noisePublicKey: string;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

export function accountKeyPair(a: LoadAccount): StaticKeyPair {
  return { privateKey: unhex(a.noisePrivateKey), publicKey: unhex(a.noisePublicKey) };
}

let sharedKem: { serialized: Uint8Array } | undefined;
/** The process's one last-resort KEM public key (serialized with its type byte). */
function lastResortKemKey(): Uint8Array {
  if (!sharedKem) {
    const pair = generateKemPreKeyPair(KEM_TYPE_MLKEM1024);
    sharedKem = { serialized: serializeKemPublicKey(pair.type, pair.publicKey) };
  }
  return sharedKem.serialized;
}

export interface RegisterOptions {
  url: string;
  names: readonly string[];
  serverKey?: Uint8Array;
  localAddresses?: readonly string[];
  concurrency?: number;
}

/** Registers one account per name (dev server: no verification code). */
export async function registerAccounts(
  options: RegisterOptions,
): Promise<{ accounts: LoadAccount[]; serverKey: Uint8Array }> {
  const kemKey = lastResortKemKey();
  let serverKey = options.serverKey;
  const addresses = options.localAddresses ?? [];
  const registerOne = async (name: string, index: number): Promise<LoadAccount> => {
    const noise = generateStaticKeyPair();
    const address = addresses.length > 0 ? addresses[index % addresses.length] : undefined;
    const opened = await openLoadConnection({
      url: options.url,
      keyPair: noise,
      ...(serverKey ? { serverKey } : {}),
      ...(address ? { localAddress: address } : {}),
    });
    serverKey ??= opened.serverKey;
    const { conn } = opened;
    conn.start(() => {});
    try {
      const account = await conn.iq({ op: "register-account", name, code: "" });
      if (account.op !== "account") {
        throw new LoadError("NOT_DEV", `register-account answered ${account.op}: is the server running with --dev?`);
      }
      const identity = generateIdentityKeyPair();
      const signed = generateSignedPreKey(identity, 1);
      const device = await conn.iq({
        op: "register-device",
        noiseKey: noise.publicKey,
        registrationId: generateRegistrationId(),
        identityKey: encodePublicKey(identity.publicKey),
        signedPreKey: { id: signed.id, key: encodePublicKey(signed.keyPair.publicKey), signature: signed.signature },
        kyberPreKey: { id: 1, key: kemKey, signature: xeddsaSign(identity.privateKey, kemKey) },
        oneTimePreKeys: [],
        kyberOneTimePreKeys: [],
      });
      if (device.op !== "device") throw new LoadError("PROTOCOL", `register-device answered ${device.op}`);
      return {
        user: account.user,
        device: device.device,
        noisePrivateKey: hex(noise.privateKey),
        noisePublicKey: hex(noise.publicKey),
      };
    } finally {
      await conn.close();
    }
  };
  // The first registration learns the server key (XX); the others use IK.
  const first = options.names.length > 0 ? [await registerOne(options.names[0]!, 0)] : [];
  const rest = await mapLimit(options.names.slice(1), options.concurrency ?? 32, (name, i) => registerOne(name, i + 1));
  if (!serverKey) throw new LoadError("NO_SERVER_KEY", "no account registered, so the server key is unknown");
  return { accounts: [...first, ...rest], serverKey };
}

/** Fresh, valid account names (3..32 chars of a-z0-9_.), unique per run. */
export function accountNames(count: number, runTag = Date.now().toString(36)): string[] {
  return Array.from({ length: count }, (_, i) => `ld${runTag}_${i}`);
}

// ---------------------------------------------------------------- cache

export interface AccountCache {
  version: 1;
  dataDir: string;
  /** hex */
  serverKey: string;
  accounts: LoadAccount[];
}

const RESULTS_DIR = fileURLToPath(new URL("../results/load-accounts/", import.meta.url));

/** The cache file of a server data directory (one file per directory). */
export function accountCachePath(dataDir: string): string {
  const key = createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 16);
  return `${RESULTS_DIR}${key}.json`;
}

export function readAccountCache(dataDir: string): AccountCache | undefined {
  try {
    const cache = JSON.parse(readFileSync(accountCachePath(dataDir), "utf8")) as AccountCache;
    if (cache.version !== 1 || cache.dataDir !== resolve(dataDir) || !Array.isArray(cache.accounts)) return undefined;
    return cache;
  } catch {
    return undefined;
  }
}

export function writeAccountCache(dataDir: string, serverKey: Uint8Array, accounts: LoadAccount[]): void {
  const path = accountCachePath(dataDir);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const cache: AccountCache = { version: 1, dataDir: resolve(dataDir), serverKey: hex(serverKey), accounts };
  writeFileSync(`${path}.tmp`, `${JSON.stringify(cache)}\n`);
  renameSync(`${path}.tmp`, path);
}

export { hex as toHex, unhex as fromHex };
