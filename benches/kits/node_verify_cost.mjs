// The cost of one verify without HTTP: the kit's verifier.verify vs a bare jose jwtVerify (the
// same options as node_server.mjs's /bare), in interleaved blocks of 500 calls over the tokens of
// a file, awaited one at a time, until each has had SECS seconds. Wall time and process CPU
// (process.cpuUsage: the main thread plus libuv's pool, where WebCrypto verifies) per call.
//   AUTHD_URL=... AUTHD_SERVICE_KEY=... node benches/kits/node_verify_cost.mjs TOKENS_FILE [SECS]
import { readFileSync } from "node:fs";

import { dep, kit } from "./deps.mjs";

const [file, secsArg] = process.argv.slice(2);
const secs = Number(secsArg ?? 3);
const baseUrl = process.env.AUTHD_URL;
const tokens = readFileSync(file, "utf8").split("\n").filter(Boolean);
const jose = await dep("jose");
const { createVerifier } = await kit("index");
const verifier = await createVerifier({ baseUrl, serviceKey: process.env.AUTHD_SERVICE_KEY, logger: null });
const jwks = await (await fetch(`${baseUrl}/.well-known/jwks.json`)).json();
const jwk = jwks.keys.find((k) => k.kty === "OKP" && k.crv === "Ed25519");
const key = await jose.importJWK({ kty: "OKP", crv: "Ed25519", x: jwk.x }, "EdDSA");
const options = {
  algorithms: ["EdDSA"],
  typ: "at+jwt",
  issuer: baseUrl,
  audience: "authd",
  requiredClaims: ["iss", "aud", "sub", "sid", "jti", "iat", "exp"],
  clockTolerance: 31,
};
const variants = {
  bare: (t) => jose.jwtVerify(t, key, options),
  kit: (t) => verifier.verify(t),
};
const acc = Object.fromEntries(Object.keys(variants).map((v) => [v, { calls: 0, wallNs: 0n, cpuUs: 0 }]));
let i = 0;
for (const f of Object.values(variants)) for (let k = 0; k < 500; k++) await f(tokens[k % tokens.length]);
while (Object.values(acc).some((a) => a.wallNs < BigInt(secs * 1e9))) {
  for (const [name, f] of Object.entries(variants)) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < 500; k++) await f(tokens[i++ % tokens.length]);
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    acc[name].calls += 500;
    acc[name].wallNs += t1 - t0;
    acc[name].cpuUs += c1.user + c1.system;
  }
}
verifier.close();
const r = { mode: "verify_cost", kit: "node", node: process.version, distinct_tokens: tokens.length };
for (const [name, a] of Object.entries(acc)) {
  r[`${name}_wall_us`] = Math.round((Number(a.wallNs) / 1e3 / a.calls) * 100) / 100;
  r[`${name}_cpu_us`] = Math.round((a.cpuUs / a.calls) * 100) / 100;
}
r.kit_over_bare_wall = Math.round((r.kit_wall_us / r.bare_wall_us) * 1000) / 1000;
r.kit_over_bare_cpu = Math.round((r.kit_cpu_us / r.bare_cpu_us) * 1000) / 1000;
console.log(JSON.stringify(r));
process.exit(0);
