// The server's static Noise key: its transport identity, pinned by clients at
// registration (they then reconnect with Noise_IK). Created once per data
// directory with mode 0600; every worker process reads the same file.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateStaticKeyPair } from "@parley/wire";

export interface ServerKeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

export const SERVER_KEY_FILE = "server-static.key";

/** Loads `<dataDir>/server-static.key` (private ‖ public, 64 bytes), creating it if missing. */
export function loadOrCreateServerKey(dataDir: string): ServerKeyPair {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, SERVER_KEY_FILE);
  if (!existsSync(file)) {
    const pair = generateStaticKeyPair(); // node:crypto X25519, as the transport uses
    writeFileSync(file, Buffer.concat([pair.privateKey, pair.publicKey]), { mode: 0o600, flag: "wx" });
    return pair;
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) chmodSync(file, 0o600); // never leave the key readable by others
  const raw = readFileSync(file);
  if (raw.length !== 64) throw new Error(`${file} is corrupt: expected 64 bytes, found ${raw.length}`);
  return { privateKey: new Uint8Array(raw.subarray(0, 32)), publicKey: new Uint8Array(raw.subarray(32)) };
}
