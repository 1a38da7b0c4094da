// The Node kit's revoked set: memory before and after it holds 100,000 more entries that arrived
// through authd's feed (rows inserted straight into revoked_sessions by a child process,
// benches/kits/insert_revoked.py; authd's sync loop reads them and serves them on the feed).
//   AUTHD_URL=... AUTHD_SERVICE_KEY=... node --expose-gc benches/kits/node_memory.mjs \
//     DB_FILE snapshot|follow [LABEL]
// snapshot: 100,000 rows, then the verifier is built (it loads them as its snapshot), then
//           100,000 more arrive through the long-poll;
// follow:   the verifier is built on an empty feed, then 100,000 and 100,000 more arrive.
// At each point: gc() twice, 300 ms, process.memoryUsage(). Prints one JSON line.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import { kit } from "./deps.mjs";

const [dbFile, sequence, label] = process.argv.slice(2);
const baseUrl = process.env.AUTHD_URL;
const serviceKey = process.env.AUTHD_SERVICE_KEY;
const STEP = 100_000;
const insertScript = fileURLToPath(new URL("insert_revoked.py", import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (typeof globalThis.gc !== "function") {
  console.error("run with node --expose-gc");
  process.exit(2);
}

async function authdEntries() {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("authd_revoked_sessions "));
  return line ? Number(line.split(" ")[1]) : 0;
}

async function until(what, test, ms = 120_000) {
  const t = Date.now();
  while (!(await test())) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function insert(n) {
  execFileSync("python3", [insertScript, dbFile, String(n)], { stdio: ["ignore", "ignore", "inherit"] });
}

const points = [];
async function point(at, entries) {
  globalThis.gc();
  globalThis.gc();
  await sleep(300);
  globalThis.gc();
  const m = process.memoryUsage();
  points.push({ at, kit_entries: entries, heap_used: m.heapUsed, rss: m.rss, external: m.external });
}

const { createVerifier } = await kit("index");
await authdEntries(); // warms this process's fetch before the first reading
let verifier;
let buildMs = null;
if (sequence === "snapshot") {
  insert(STEP);
  await until("authd's sync", async () => (await authdEntries()) >= STEP);
  await point("before the verifier", 0);
  const t = Date.now();
  verifier = await createVerifier({ baseUrl, serviceKey, logger: null });
  buildMs = Date.now() - t;
  await point("snapshot loaded", verifier.status().revokedEntries);
} else {
  verifier = await createVerifier({ baseUrl, serviceKey, logger: null });
  await point("verifier built, empty", verifier.status().revokedEntries);
}
const steps = sequence === "snapshot" ? 1 : 2;
for (let i = 0; i < steps; i++) {
  const want = verifier.status().revokedEntries + STEP;
  const t = Date.now();
  insert(STEP);
  await until("the kit", async () => verifier.status().revokedEntries >= want);
  const ms = Date.now() - t;
  await point(`+${STEP} through the feed (${ms} ms)`, verifier.status().revokedEntries);
}
verifier.close();

const deltas = [];
for (let i = 1; i < points.length; i++) {
  const a = points[i - 1];
  const b = points[i];
  const n = b.kit_entries - a.kit_entries;
  deltas.push({
    entries: n,
    heap_bytes_per_entry: Math.round((b.heap_used - a.heap_used) / n),
    rss_bytes_per_entry: Math.round((b.rss - a.rss) / n),
  });
}
console.log(
  JSON.stringify({
    mode: "memory",
    kit: "node",
    sequence,
    label: label ?? sequence,
    node: process.version,
    build_ms: buildMs,
    points,
    deltas,
  }),
);
process.exit(0);
