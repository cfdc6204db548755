// A minimal typed event emitter (browser-safe: no node:events).
export type Listener<T> = (event: T) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  once<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(name, (e) => {
      off();
      listener(e);
    });
    return off;
  }

  protected emit<K extends keyof Events>(name: K, event: Events[K]): void {
    for (const l of this.listeners.get(name) ?? []) {
      try {
        (l as Listener<Events[K]>)(event);
      } catch {
        // a throwing listener must not break message processing
      }
    }
  }
}
