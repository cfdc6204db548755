// A key → set-of-values map that stores a lone value without a Set. Almost every user has one
// device online, and these maps hold an entry per online user in every worker (presence) or per
// connection (sessions by user): a Set per entry cost ~100+ bytes each, for nothing, at 100,000
// connections × several workers.

export class CompactMultiMap<K, V> {
  private readonly map = new Map<K, V | Set<V>>();

  /** Adds `value` under `key`; returns how many values the key had before. */
  add(key: K, value: V): number {
    const cur = this.map.get(key);
    if (cur === undefined) {
      this.map.set(key, value);
      return 0;
    }
    if (cur instanceof Set) {
      const before = cur.size;
      cur.add(value);
      return before;
    }
    if (cur !== value) this.map.set(key, new Set([cur, value]));
    return 1;
  }

  /** Removes `value` from `key`; returns how many values the key has left. */
  delete(key: K, value: V): number {
    const cur = this.map.get(key);
    if (cur === undefined) return 0;
    if (cur instanceof Set) {
      cur.delete(value);
      if (cur.size === 1) this.map.set(key, cur.values().next().value as V);
      else if (cur.size === 0) this.map.delete(key);
      return cur.size;
    }
    if (cur !== value) return 1;
    this.map.delete(key);
    return 0;
  }

  count(key: K): number {
    const cur = this.map.get(key);
    if (cur === undefined) return 0;
    return cur instanceof Set ? cur.size : 1;
  }

  /** The values of `key` (a copy when there are several, so callers may change the map meanwhile). */
  values(key: K): V[] {
    const cur = this.map.get(key);
    if (cur === undefined) return [];
    return cur instanceof Set ? [...cur] : [cur];
  }
}
