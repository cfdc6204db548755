import { randomBytes } from "node:crypto";
import { QueueShard } from "./src/storage/sqlite/queue-shard.ts";

const f = process.argv[2]!;
const shard = new QueueShard({ file: f, index: 0, mapError: (e) => e, readonly: process.argv[3] === "ro" });
const N = 20000;
let t = performance.now();
for (let i = 0; i < N; i++) shard.fetch(randomBytes(8).toString("hex"), 1, 0, 64);
console.log("fetch", (((performance.now() - t) * 1000) / N).toFixed(2), "µs");
t = performance.now();
for (let i = 0; i < N; i++) shard.depth(randomBytes(8).toString("hex"), 1);
console.log("depth", (((performance.now() - t) * 1000) / N).toFixed(2), "µs");
