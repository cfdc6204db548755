import { StorageError } from "./errors.ts";

/**
 * Account names are either usernames or phone numbers. Both are normalized before they are
 * stored or looked up, so "+1 (555) 010-0000" and "+15550100000", or "Alice" and "alice",
 * cannot become two accounts.
 */
const PHONE_SEPARATORS = /[\s\-().]/g;
const E164 = /^\+[1-9][0-9]{6,14}$/;
const USERNAME = /^[a-z][a-z0-9_.]{2,31}$/;

/** Returns the canonical form of a username or phone number; INVALID_ARGUMENT for anything else. */
export function normalizeAccountName(name: string): string {
  if (typeof name !== "string" || name.length > 64) {
    throw new StorageError("INVALID_ARGUMENT", "account name must be a string of at most 64 characters");
  }
  const trimmed = name.trim();
  if (trimmed.startsWith("+")) {
    const phone = trimmed.replace(PHONE_SEPARATORS, "");
    if (E164.test(phone)) return phone;
    throw new StorageError("INVALID_ARGUMENT", "phone number must be E.164: + and 7 to 15 digits");
  }
  // NFKC first so full-width or compatibility letters cannot slip past the ASCII check as look-alikes.
  const username = trimmed.normalize("NFKC").toLowerCase();
  if (USERNAME.test(username)) return username;
  throw new StorageError(
    "INVALID_ARGUMENT",
    "username must be 3 to 32 characters of a-z, 0-9, '_' or '.', starting with a letter",
  );
}

/** normalizeAccountName that answers null instead of throwing (for lookups and contact lists). */
export function tryNormalizeAccountName(name: string): string | null {
  try {
    return normalizeAccountName(name);
  } catch {
    return null;
  }
}
