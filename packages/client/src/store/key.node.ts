// Where the 32-byte database key comes from: a key file (created on first use, mode 0600)
// or a passphrase stretched with scrypt (node:crypto) using a per-profile random salt.
// The key is handed to SQLCipher as a raw hex key, so SQLCipher's own PBKDF2 is skipped.
import { randomBytes, scrypt } from "node:crypto";
import { closeSync, constants, fstatSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { StoreError } from "./errors.ts";

export const KEY_BYTES = 32;

/** scrypt cost for passphrases: N=2^17, r=8, p=1 (OWASP's recommendation; 128 MiB, ~0.3 s). */
export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

/** Stored next to the database in clear (a salt and cost are not secret). */
export interface KdfFile {
  readonly alg: "scrypt";
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** hex, 16 bytes */
  readonly salt: string;
}

function errno(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}

/** Rejects anything but a regular file of ours, unreadable by group/others. */
function checkKeyFileDescriptor(fd: number, path: string): void {
  const st = fstatSync(fd);
  if (!st.isFile()) throw new StoreError("INSECURE_KEY_FILE", `key file ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new StoreError(
      "INSECURE_KEY_FILE",
      `key file ${path} has mode ${(st.mode & 0o777).toString(8)}: it must not be accessible by group or others (chmod 600)`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new StoreError("INSECURE_KEY_FILE", `key file ${path} belongs to uid ${st.uid}, not to this user (${uid})`);
  }
}

/** Reads an existing key file after checking its permissions. */
export function readKeyFile(path: string): Uint8Array {
  let fd: number;
  try {
    // O_NOFOLLOW: a symlink planted in place of the key file is refused, not followed.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = errno(e);
    if (code === "ENOENT") throw new StoreError("NOT_FOUND", `key file ${path} does not exist`, { cause: e });
    if (code === "ELOOP")
      throw new StoreError("INSECURE_KEY_FILE", `key file ${path} is a symbolic link`, { cause: e });
    throw new StoreError("IO", `cannot open key file ${path}`, { cause: e });
  }
  try {
    checkKeyFileDescriptor(fd, path);
    const key = readFileSync(fd);
    if (key.length !== KEY_BYTES) {
      throw new StoreError("CORRUPT", `key file ${path} holds ${key.length} bytes, expected ${KEY_BYTES}`);
    }
    return new Uint8Array(key);
  } finally {
    closeSync(fd);
  }
}

/**
 * Returns the key stored at `path`, creating it (32 random bytes, mode 0600) when missing
 * and `mayCreate`. Creation is exclusive, so two processes racing agree on one key.
 */
export function loadOrCreateKeyFile(path: string, mayCreate: boolean): Uint8Array {
  if (mayCreate) {
    let fd: number | undefined;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      if (errno(e) !== "EEXIST") throw new StoreError("IO", `cannot create key file ${path}`, { cause: e });
    }
    if (fd !== undefined) {
      try {
        const key = randomBytes(KEY_BYTES);
        writeSync(fd, key);
        fsyncSync(fd);
        return new Uint8Array(key);
      } finally {
        closeSync(fd);
      }
    }
  }
  return readKeyFile(path);
}

export function newKdfFile(params: ScryptParams = DEFAULT_SCRYPT): KdfFile {
  return { alg: "scrypt", N: params.N, r: params.r, p: params.p, salt: randomBytes(16).toString("hex") };
}

export function parseKdfFile(text: string, path: string): KdfFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new StoreError("CORRUPT", `${path} is not JSON`, { cause: e });
  }
  const v = value as Partial<Record<keyof KdfFile, unknown>>;
  const isPow2 = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 2 && (n as number) <= 2 ** 24;
  const ok =
    typeof value === "object" &&
    value !== null &&
    v.alg === "scrypt" &&
    isPow2(v.N) &&
    ((v.N as number) & ((v.N as number) - 1)) === 0 &&
    Number.isSafeInteger(v.r) &&
    (v.r as number) >= 1 &&
    (v.r as number) <= 32 &&
    Number.isSafeInteger(v.p) &&
    (v.p as number) >= 1 &&
    (v.p as number) <= 16 &&
    typeof v.salt === "string" &&
    /^[0-9a-f]{32}$/.test(v.salt);
  if (!ok) throw new StoreError("CORRUPT", `${path} has unexpected KDF parameters`);
  return value as KdfFile;
}

/** scrypt(NFKC(passphrase), salt) → 32 bytes, off the main thread (libuv pool). */
export function deriveKeyFromPassphrase(passphrase: string, kdf: KdfFile): Promise<Uint8Array> {
  const normalized = passphrase.normalize("NFKC");
  if (normalized.length === 0) throw new StoreError("INVALID_ARGUMENT", "empty passphrase");
  const maxmem = 128 * kdf.N * kdf.r * kdf.p + 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(
      normalized,
      Buffer.from(kdf.salt, "hex"),
      KEY_BYTES,
      { N: kdf.N, r: kdf.r, p: kdf.p, maxmem },
      (err, key) => {
        if (err) reject(new StoreError("IO", "scrypt failed", { cause: err }));
        else resolve(new Uint8Array(key));
      },
    );
  });
}
