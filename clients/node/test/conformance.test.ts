/**
 * The conformance fixtures every kit runs (tests/conformance/ in the repository): the generator
 * starts authd in a known state and hands out tokens with the verdict authd itself gives each;
 * this kit must give the same one. The Rust and Python kits run the same fixtures.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";

import { createVerifier, VerifyError, type Verifier } from "@authd/verify";

import { authdBinary } from "./support/authd.js";

interface Case {
  name: string;
  description: string;
  token: string;
  verdict: string;
  sub?: string;
  sid?: string;
}

interface Fixtures {
  version: number;
  authd_url: string;
  service_key: string;
  issuer: string;
  audience: string;
  leeway_secs: number;
  valid_until: number;
  cases: Case[];
}

/** The generator: `AUTHD_CONFORMANCE_BIN`, else `examples/conformance` beside the authd binary. */
function generatorBinary(): string {
  const given = process.env.AUTHD_CONFORMANCE_BIN;
  const path = given ? resolve(given) : resolve(dirname(authdBinary()), "examples", "conformance");
  if (!existsSync(path)) {
    throw new Error(
      `the conformance generator is missing at ${path}: build it with ` +
        "`cargo build --release --example conformance` in the repository root (or point " +
        "AUTHD_CONFORMANCE_BIN at one)",
    );
  }
  return path;
}

let generator: ChildProcess;
let fixtures: Fixtures;
let verifier: Verifier;

before(async () => {
  generator = spawn(generatorBinary(), ["--authd", authdBinary()], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: generator.stdout! });
  const first = await new Promise<string>((resolveLine, reject) => {
    lines.once("line", resolveLine);
    generator.once("exit", (code) => reject(new Error(`the generator exited (${code}) before its fixtures`)));
  });
  fixtures = JSON.parse(first) as Fixtures;
  verifier = await createVerifier({
    baseUrl: fixtures.authd_url,
    serviceKey: fixtures.service_key,
    issuer: fixtures.issuer,
    audience: fixtures.audience,
    leewaySecs: fixtures.leeway_secs,
    logger: null,
  });
});

after(async () => {
  await verifier?.close();
  generator?.stdin?.end();
});

test("the Node kit gives every conformance fixture its verdict", async () => {
  assert.equal(fixtures.version, 1);
  assert.ok(fixtures.cases.length >= 40, `the fixture set shrank to ${fixtures.cases.length}`);
  assert.ok(Date.now() / 1000 < fixtures.valid_until, "the fixtures expired before they were run");
  const wrong: string[] = [];
  for (const c of fixtures.cases) {
    let got: string;
    try {
      const claims = await verifier.verify(c.token);
      got = claims.sub === c.sub && claims.sid === c.sid ? "accept" : `accept with other claims (${claims.sub})`;
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      got = e.code;
    }
    if (got !== c.verdict) wrong.push(`${c.name}: expected ${c.verdict}, got ${got} (${c.description})`);
  }
  assert.deepEqual(wrong, [], `${wrong.length} of ${fixtures.cases.length} cases wrong`);
});
