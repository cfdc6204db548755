// Serializes load → modify → store of one address's session record, so two
// concurrent encrypt/decrypt calls cannot both start from the same stored
// record and lose one update (libsignal's callers must do this themselves).

const queues = new WeakMap<object, Map<string, Promise<unknown>>>();

export async function withAddressLock<T>(scope: object, key: string, task: () => Promise<T>): Promise<T> {
  let perScope = queues.get(scope);
  if (!perScope) {
    perScope = new Map();
    queues.set(scope, perScope);
  }
  const previous = perScope.get(key) ?? Promise.resolve();
  const run = previous.then(task, task);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  perScope.set(key, settled);
  try {
    return await run;
  } finally {
    if (perScope.get(key) === settled) perScope.delete(key);
  }
}
