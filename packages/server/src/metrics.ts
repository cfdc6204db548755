// A small Prometheus metrics registry. Each worker process keeps its own
// numbers; /metrics merges the snapshots of all workers (sums counters, gauges
// and histogram buckets), so one scrape describes the whole server.

const LATENCY_BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

export interface MetricSnapshot {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  /** counter/gauge: [value]; histogram: bucket counts..., +Inf count, sum. */
  values: number[];
}

export class Counter {
  value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(by = 1): void {
    this.value += by;
  }
}

export class Gauge {
  value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  set(v: number): void {
    this.value = v;
  }
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
}

export class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  sum = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  observe(ms: number): void {
    this.sum += ms;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.counts[i]!++;
  }
}

export class Metrics {
  readonly connections = new Gauge("parley_connections", "Open authenticated client connections");
  readonly handshakes = new Counter("parley_handshakes_total", "Completed transport handshakes");
  readonly handshakeFailures = new Counter("parley_handshake_failures_total", "Failed or rejected handshakes");
  readonly handoffs = new Counter(
    "parley_connection_handoffs_total",
    "TCP connections passed to the worker that owns their account's queue shard",
  );
  readonly messagesIn = new Counter("parley_messages_in_total", "Message stanzas accepted from senders");
  readonly envelopesQueued = new Counter("parley_envelopes_queued_total", "Per-device envelopes committed to queues");
  readonly envelopesPushed = new Counter("parley_envelopes_pushed_total", "Envelopes pushed to devices");
  readonly envelopesAcked = new Counter(
    "parley_envelopes_acked_total",
    "Envelopes acknowledged by devices and deleted",
  );
  readonly receiptsRouted = new Counter("parley_receipts_routed_total", "Receipts routed to senders");
  readonly stanzasRejected = new Counter(
    "parley_stanzas_rejected_total",
    "Stanzas refused (malformed, stale devices, limits)",
  );
  readonly disconnectsForAbuse = new Counter("parley_abuse_disconnects_total", "Connections closed for protocol abuse");
  readonly queueDepth = new Gauge("parley_queue_depth", "Envelopes waiting in device queues (sampled)");
  readonly commitLatency = new Histogram(
    "parley_commit_latency_ms",
    "Time from a send's arrival to its durable commit",
  );
  readonly deliveryLatency = new Histogram(
    "parley_delivery_latency_ms",
    "Time from commit to the device's acknowledgement",
  );

  snapshot(): MetricSnapshot[] {
    return Object.values(this).map((m: Counter | Gauge | Histogram) => ({
      name: m.name,
      help: m.help,
      type: m instanceof Histogram ? "histogram" : m instanceof Gauge ? "gauge" : "counter",
      values: m instanceof Histogram ? [...m.counts, m.sum] : [m.value],
    }));
  }
}

/** Sums snapshots from several workers metric by metric. */
export function mergeSnapshots(snapshots: MetricSnapshot[][]): MetricSnapshot[] {
  const merged = new Map<string, MetricSnapshot>();
  for (const snap of snapshots) {
    for (const m of snap) {
      const cur = merged.get(m.name);
      if (!cur) merged.set(m.name, { ...m, values: [...m.values] });
      else {
        for (let i = 0; i < m.values.length; i++) cur.values[i] = (cur.values[i] ?? 0) + (m.values[i] ?? 0);
      }
    }
  }
  return [...merged.values()];
}

export function renderPrometheus(metrics: MetricSnapshot[], workers: number): string {
  const lines: string[] = [
    "# HELP parley_workers Worker processes serving connections",
    "# TYPE parley_workers gauge",
    `parley_workers ${workers}`,
  ];
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    if (m.type !== "histogram") {
      lines.push(`${m.name} ${m.values[0] ?? 0}`);
      continue;
    }
    let cumulative = 0;
    LATENCY_BUCKETS_MS.forEach((le, i) => {
      cumulative += m.values[i] ?? 0;
      lines.push(`${m.name}_bucket{le="${le}"} ${cumulative}`);
    });
    cumulative += m.values[LATENCY_BUCKETS_MS.length] ?? 0;
    lines.push(`${m.name}_bucket{le="+Inf"} ${cumulative}`);
    lines.push(`${m.name}_sum ${m.values[LATENCY_BUCKETS_MS.length + 1] ?? 0}`, `${m.name}_count ${cumulative}`);
  }
  return `${lines.join("\n")}\n`;
}
