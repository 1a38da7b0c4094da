/**
 * The kit's pure rules, without authd: the revoked set's horizons, reading a token from the
 * request, the answers to a refusal, Retry-After, the backoff, and which JWKs are kept.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { RevokedError, StaleError } from "@authd/verify";

import { parseRetryAfter } from "../dist/client.js";
import { readToken, refusal } from "../dist/http.js";
import { parseJwks } from "../dist/keys.js";
import { horizonOf, RevokedSet } from "../dist/revoked.js";
import { Backoff } from "../dist/sync.js";

const entry = (session_id: string, expires_at: string) => ({ session_id, expires_at });

test("an entry is kept until its expires_at plus the leeway has passed", () => {
  const set = new RevokedSet();
  set.insertAll([entry("s1", "1970-01-01T00:01:40Z"), entry("s2", "1970-01-01T00:08:20Z")]);
  set.purge(130_000, 30_000);
  assert.ok(set.has("s1"), "kept at exactly horizon + leeway");
  set.purge(130_001, 30_000);
  assert.ok(!set.has("s1"));
  assert.ok(set.has("s2"));
  assert.equal(set.size, 1);
});

test("an entry delivered twice keeps the later horizon", () => {
  const set = new RevokedSet();
  set.insertAll([entry("s", "1970-01-01T00:03:20Z")]);
  set.insertAll([entry("s", "1970-01-01T00:01:40Z")]);
  assert.equal(set.size, 1);
  set.purge(180_000, 0);
  assert.ok(set.has("s"), "the horizon is 200 s, not the later-delivered 100 s");
});

test("expires_at is read as RFC 3339 with any offset, and a page with an unreadable one inserts nothing", () => {
  assert.equal(horizonOf(entry("s", "1970-01-01T00:01:40Z")), 100_000);
  assert.equal(horizonOf(entry("s", "1970-01-01T01:01:40+01:00")), 100_000);
  assert.equal(horizonOf(entry("s", "1970-01-01T00:01:40.250Z")), 100_250);
  for (const bad of ["yesterday", "1970-01-01", "100", ""]) {
    assert.throws(() => horizonOf(entry("s", bad)), /expires_at/);
  }
  const set = new RevokedSet();
  assert.throws(() => set.insertAll([entry("a", "2030-01-01T00:00:00Z"), entry("b", "soon")]));
  assert.equal(set.size, 0);
});

test("the bearer header wins over the cookie, which is read only when configured", () => {
  assert.equal(readToken("Bearer abc", "at=def", "at"), "abc");
  assert.equal(readToken("bearer   abc ", undefined), "abc");
  assert.equal(readToken("Basic dXNlcg==", "at=def", "at"), "def");
  assert.equal(readToken("Basic dXNlcg==", "at=def"), undefined);
  assert.equal(readToken(undefined, ["a=1; at=def", "b=2"], "at"), "def");
  assert.equal(readToken(undefined, 'at="quoted"', "at"), "quoted");
  assert.equal(readToken(undefined, "xat=1; at=", "at"), undefined);
  assert.equal(readToken("Bearer ", undefined), undefined);
  assert.equal(readToken("Bearer", undefined), undefined);
});

test("refusals carry the contract's status, headers and body", () => {
  const denied = refusal(new RevokedError());
  assert.equal(denied.status, 401);
  assert.equal(denied.headers["WWW-Authenticate"], 'Bearer error="invalid_token"');
  assert.equal(denied.body.error, "invalid_token");
  assert.deepEqual(refusal(undefined), denied, "no token answers like a refused one");
  const stale = refusal(new StaleError());
  assert.equal(stale.status, 503);
  assert.equal(stale.headers["Retry-After"], "1");
  assert.equal(stale.headers["WWW-Authenticate"], undefined);
  assert.equal(stale.body.error, "service_unavailable");
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const inTwo = parseRetryAfter(new Date(Date.now() + 2000).toUTCString()) ?? 0;
  assert.ok(inTwo > 500 && inTwo <= 2000, String(inTwo));
});

test("the backoff doubles from 100 ms to at most 5 s, with jitter, and resets", () => {
  const backoff = new Backoff();
  const delays = Array.from({ length: 10 }, () => backoff.next());
  assert.ok(delays[0]! >= 50 && delays[0]! <= 100);
  assert.ok(delays[3]! >= 400 && delays[3]! <= 800);
  assert.ok(delays.every((d) => d <= 5000));
  assert.ok(delays[9]! >= 2500);
  backoff.reset();
  assert.ok(backoff.next() <= 100);
});

test("only Ed25519 signing keys are kept from a JWKS, and one without any is an error", async () => {
  const x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
  const keys = await parseJwks(
    JSON.stringify({
      keys: [
        { kty: "OKP", crv: "Ed25519", x, kid: "a", alg: "EdDSA", use: "sig" },
        { kty: "OKP", crv: "Ed25519", x, kid: "no-alg-no-use" },
        { kty: "OKP", crv: "Ed25519", x, kid: "enc", use: "enc" },
        { kty: "OKP", crv: "Ed25519", x, kid: "es", alg: "ES256" },
        { kty: "OKP", crv: "X25519", x, kid: "x25519" },
        { kty: "RSA", n: "AQAB", e: "AQAB", kid: "rsa" },
        { kty: "OKP", crv: "Ed25519", x: "c2hvcnQ", kid: "short" },
        { kty: "OKP", crv: "Ed25519", x },
      ],
    }),
  );
  assert.deepEqual([...keys.keys()].sort(), ["a", "no-alg-no-use"]);
  await assert.rejects(parseJwks('{"keys":[]}'), { code: "no_keys" });
  await assert.rejects(parseJwks("<html>"), { code: "body" });
});
