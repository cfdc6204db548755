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
  const previous = perScope.get(key);
  // Uncontended (the common case): start at once instead of a microtask later.
  // Queued: run after the previous task whether it resolved or rejected (its
  // own caller handles its rejection).
  const run = previous === undefined ? task() : previous.then(task, task);
  perScope.set(key, run);
  try {
    return await run;
  } finally {
    if (perScope.get(key) === run) perScope.delete(key);
  }
}
