// Entry of one Parley density generator process (forked through ProcessPool):
// registers accounts in bulk and holds many idle, logged-in Parley connections
// (real Noise IK handshakes and logins), answering only what a client must
// (devacks for queued entries). Used by the vs-ejabberd benchmark.
//
// Bulk registration: every account gets its own Noise key (logins are keyed by
// it) and registration id, but one process-wide Signal identity, signed prekey
// and last-resort KEM key signature are reused: these accounts never open
// Signal sessions, and signing fresh keys per account (~1.7 ms of client CPU)
// would make the generator, not the server, the limit of a 100,000-account
// set-up. The server still verifies both signatures of every registration.
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
import { generateStaticKeyPair, type Stanza } from "@parley/wire";
import { accountKeyPair, fromHex, type LoadAccount, toHex } from "./accounts.ts";
import { type LoadConnection, LoadError, openLoadConnection } from "./connection.ts";
import { MAX_SOCKETS_PER_PROCESS, openFds, PoolError, servePoolCommands } from "./process-pool.ts";

export type DensityCommand =
  | { op: "init"; url: string; serverKey?: string }
  | { op: "register"; names: string[]; localAddresses: string[]; concurrency: number }
  | { op: "check"; account: LoadAccount; serverKey: string }
  | { op: "connect"; accounts: LoadAccount[]; localAddresses: string[]; concurrency: number }
  | { op: "count" }
  | { op: "close-all" }
  | { op: "close" };

export interface DensityConnectReport {
  connected: number;
  failed: number;
  /** Logins that failed once and succeeded when tried again (as a client reconnects). */
  retried: number;
  firstError?: string;
  ik: number;
  ms: number;
}

export interface DensityCountReport {
  open: number;
  fds: number;
}

let url = "";
let serverKey: Uint8Array | undefined;
const conns: LoadConnection[] = [];

const openCount = () => conns.reduce((n, c) => n + (c.closed ? 0 : 1), 0);

function onStanza(conn: LoadConnection, s: Stanza): void {
  // An idle client still acknowledges what the server queued for it (e.g. a prekeys-low notice).
  if (s.kind === "delivery") conn.devack(s.seq);
  else if (s.kind === "receipt" && s.seq !== undefined) conn.devack(s.seq);
  else if (s.kind === "notification" && s.event.type !== "queue-empty" && s.id > 0) conn.devack(s.id);
}

/** Opens a logged-in connection as `account` (IK when `key` is the server's). */
function logIn(account: LoadAccount, key: Uint8Array, localAddress?: string) {
  return openLoadConnection({
    url,
    keyPair: accountKeyPair(account),
    serverKey: key,
    user: account.user,
    device: account.device,
    ...(localAddress !== undefined ? { localAddress } : {}),
  });
}

async function connectAll(accounts: LoadAccount[], localAddresses: string[], concurrency: number) {
  if (!serverKey) throw new PoolError("NO_SERVER_KEY", "init with the server key first");
  const key = serverKey;
  if (openCount() + accounts.length > MAX_SOCKETS_PER_PROCESS) {
    throw new PoolError("TOO_MANY", `${openCount() + accounts.length} connections in one process`);
  }
  const started = performance.now();
  let next = 0;
  let failed = 0;
  let retried = 0;
  let ik = 0;
  let firstError: string | undefined;
  const worker = async () => {
    while (next < accounts.length) {
      const i = next++;
      const account = accounts[i]!;
      // A failed login is tried once more, as a real client reconnects; both outcomes are reported.
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const opened = await logIn(account, key, localAddresses[(i + attempt) % localAddresses.length]!);
          if (opened.pattern === "IK") ik++;
          const conn = opened.conn;
          conn.start((s) => onStanza(conn, s));
          conns.push(conn);
          if (attempt > 0) retried++;
          break;
        } catch (err) {
          firstError ??= err instanceof Error ? err.message : String(err);
          if (attempt > 0) failed++;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, accounts.length) }, worker));
  return {
    connected: accounts.length - failed,
    failed,
    retried,
    ik,
    ms: performance.now() - started,
    ...(firstError !== undefined ? { firstError } : {}),
  } satisfies DensityConnectReport;
}

let sharedKeys: ReturnType<typeof makeSharedKeys> | undefined;
function makeSharedKeys() {
  const identity = generateIdentityKeyPair();
  const signed = generateSignedPreKey(identity, 1);
  const kem = generateKemPreKeyPair(KEM_TYPE_MLKEM1024);
  const kemKey = serializeKemPublicKey(kem.type, kem.publicKey);
  return {
    identityKey: encodePublicKey(identity.publicKey),
    signedPreKey: { id: signed.id, key: encodePublicKey(signed.keyPair.publicKey), signature: signed.signature },
    kyberPreKey: { id: 1, key: kemKey, signature: xeddsaSign(identity.privateKey, kemKey) },
  };
}

const REGISTER_TIMEOUT_MS = 20_000;
/** Registrations that got no answer in time and were retried under a new name (reported). */
const registerRetries = { count: 0, first: "" };

/**
 * One registration, retried (under a fresh name: the first may be half-registered) when the server
 * does not answer within REGISTER_TIMEOUT_MS, so one lost answer cannot hang a 100,000-account set-up.
 */
async function registerWithRetry(name: string, localAddress: string): Promise<LoadAccount> {
  for (let attempt = 0; ; attempt++) {
    const tryName = attempt === 0 ? name : `${name}r${attempt}`;
    let timer: NodeJS.Timeout | undefined;
    const abort = { conn: undefined as LoadConnection | undefined };
    try {
      return await Promise.race([
        registerOne(tryName, localAddress, abort),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new LoadError("TIMEOUT", `registering ${tryName}: no answer in ${REGISTER_TIMEOUT_MS} ms`)),
            REGISTER_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (err) {
      if (!(err instanceof LoadError && err.code === "TIMEOUT") || attempt >= 2) throw err;
      registerRetries.count++;
      registerRetries.first ||= err.message;
      void abort.conn?.close();
    } finally {
      clearTimeout(timer);
    }
  }
}

async function registerOne(
  name: string,
  localAddress: string,
  abort: { conn: LoadConnection | undefined },
): Promise<LoadAccount> {
  sharedKeys ??= makeSharedKeys();
  const noise = generateStaticKeyPair();
  const opened = await openLoadConnection({
    url,
    keyPair: noise,
    ...(serverKey ? { serverKey } : {}),
    localAddress,
  });
  serverKey ??= opened.serverKey;
  const { conn } = opened;
  abort.conn = conn;
  conn.start(() => {});
  try {
    const account = await conn.iq({ op: "register-account", name, code: "" });
    if (account.op !== "account") {
      throw new LoadError("NOT_DEV", `register-account answered ${account.op}: is the server running with --dev?`);
    }
    const device = await conn.iq({
      op: "register-device",
      noiseKey: noise.publicKey,
      registrationId: generateRegistrationId(),
      ...sharedKeys,
      oneTimePreKeys: [],
      kyberOneTimePreKeys: [],
    });
    if (device.op !== "device") throw new LoadError("PROTOCOL", `register-device answered ${device.op}`);
    return {
      user: account.user,
      device: device.device,
      noisePrivateKey: toHex(noise.privateKey),
      noisePublicKey: toHex(noise.publicKey),
    };
  } finally {
    await conn.close();
  }
}

async function registerAll(names: string[], localAddresses: string[], concurrency: number) {
  const accounts = new Array<LoadAccount>(names.length);
  // the first registration learns the server key (XX) unless init gave it; the rest use IK
  if (!serverKey && names.length > 0) accounts[0] = await registerWithRetry(names[0]!, localAddresses[0]!);
  let next = accounts[0] ? 1 : 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      accounts[i] = await registerWithRetry(names[i]!, localAddresses[i % localAddresses.length]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));
  return accounts;
}

/** Does `account` still log in with IK to `key` (a cached account set belongs to this server)? */
async function check(account: LoadAccount, key: Uint8Array): Promise<boolean> {
  try {
    const opened = await logIn(account, key);
    opened.conn.start(() => {});
    await opened.conn.close();
    return opened.pattern === "IK";
  } catch {
    return false;
  }
}

async function closeAll() {
  const all = conns.splice(0);
  for (let i = 0; i < all.length; i += 2000) await Promise.all(all.slice(i, i + 2000).map((c) => c.close()));
}

servePoolCommands<DensityCommand>(async (command) => {
  switch (command.op) {
    case "init":
      url = command.url;
      serverKey = command.serverKey ? fromHex(command.serverKey) : undefined;
      return { pid: process.pid };
    case "register": {
      const accounts = await registerAll(command.names, command.localAddresses, command.concurrency);
      if (!serverKey) throw new PoolError("NO_SERVER_KEY", "nothing registered, so the server key is unknown");
      return {
        accounts,
        serverKey: toHex(serverKey),
        retries: registerRetries.count,
        firstRetry: registerRetries.first,
      };
    }
    case "check":
      return check(command.account, fromHex(command.serverKey));
    case "connect":
      return connectAll(command.accounts, command.localAddresses, command.concurrency);
    case "count":
      return { open: openCount(), fds: openFds() } satisfies DensityCountReport;
    case "close-all":
      return closeAll();
    case "close":
      await closeAll();
      setImmediate(() => process.exit(0));
      return null;
  }
});
