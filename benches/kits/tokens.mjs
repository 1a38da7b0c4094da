// Logs N sessions in against a running authd and writes their access tokens, one a line.
//   node benches/kits/tokens.mjs URL N OUT [PER_USER]
// Registers ceil(N / PER_USER) users (default 50 sessions each, under authd's default cap of 100
// per user), then logs in with `delivery: "body"`, 8 at a time (argon2: ~90 logins/s on 2 cores).
import { writeFileSync } from "node:fs";

const [url, nArg, out, perUserArg] = process.argv.slice(2);
const n = Number(nArg);
const perUser = Number(perUserArg ?? 50);
if (!url || !n || !out) {
  console.error("usage: tokens.mjs URL N OUT [PER_USER]");
  process.exit(2);
}
const run = Math.random().toString(36).slice(2, 10);
const password = "kitbench password 0123";
const users = Math.ceil(n / perUser);
const emails = Array.from({ length: users }, (_, i) => `kb-${run}-${i}@kitbench.example.com`);

async function post(path, body) {
  const r = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.text() };
}

async function pool(count, width, task) {
  const results = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

const t0 = Date.now();
await pool(users, 8, async (i) => {
  const r = await post("/auth/register", { email: emails[i], password });
  if (r.status !== 201 && r.status !== 409) throw new Error(`register: HTTP ${r.status} ${r.body}`);
});
const tokens = await pool(n, 8, async (i) => {
  const r = await post("/auth/login", { email: emails[i % users], password, delivery: "body" });
  if (r.status !== 200) throw new Error(`login: HTTP ${r.status} ${r.body}`);
  return JSON.parse(r.body).access_token;
});
writeFileSync(out, tokens.join("\n") + "\n");
console.error(`tokens: ${tokens.length} in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${out}`);
