/**
 * The core verifier against a live authd: what a good token gives, what every forged or broken
 * token gets, that verifying makes no request, and how creation fails.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";

import {
  BuildError,
  createVerifier,
  ExpiredError,
  ForbiddenHeaderError,
  InvalidError,
  MalformedError,
  NotYetValidError,
  RevokedError,
  UnknownKeyError,
  VerifyError,
  type Verifier,
} from "@authd/verify";

import { Authd, freePort, type Tokens } from "./support/authd.js";
import {
  b64url,
  claimsOf,
  ownKey,
  refusedWithin,
  refuses,
  signEd25519,
  signHs256,
  waitFor,
  watchedFetch,
} from "./support/kit.js";

let authd: Authd;
let key: string;
let verifier: Verifier;
let user: Tokens & { email: string };

before(async () => {
  authd = await Authd.start();
  key = await authd.serviceKey();
  verifier = await createVerifier({ baseUrl: authd.baseUrl, serviceKey: key, logger: null });
  user = await authd.user();
});

after(async () => {
  verifier?.close();
  await authd?.dispose();
});

describe("a live token", () => {
  test("verifies and hands over every claim", async () => {
    const claims = await verifier.verify(user.access_token);
    assert.equal(claims.sid, user.session_id);
    assert.equal(claims.email, user.email);
    assert.equal(claims.iss, authd.baseUrl);
    assert.equal(claims.aud, "authd");
    for (const name of ["sub", "jti"] as const) assert.equal(typeof claims[name], "string");
    assert.ok(claims.exp > claims.iat);
    assert.deepEqual(claims, claimsOf(user.access_token), "every claim, as sent");
  });

  test("the status reports a ready verifier and counts the requests sent", () => {
    const status = verifier.status();
    assert.equal(status.ready, true);
    assert.equal(status.keys, 1);
    assert.equal(status.lastError, null);
    assert.ok(status.lastSync instanceof Date);
    assert.ok(status.stalenessMs < 30_000);
    // The JWKS, the one snapshot page and the long-poll held open.
    assert.ok(status.requests >= 3, `requests ${status.requests}`);
  });

  test("1000 verifications send no request to authd", async () => {
    const watch = watchedFetch();
    const watched = await createVerifier({
      baseUrl: authd.baseUrl,
      serviceKey: key,
      fetch: watch.fetch,
      logger: null,
    });
    try {
      const before = watched.status().requests;
      const seenBefore = watch.seen.length;
      const start = performance.now();
      for (let i = 0; i < 1000; i += 1) await watched.verify(user.access_token);
      const took = performance.now() - start;
      // Only a long-poll coming back at its wait's end may send one meanwhile; none is a verify's.
      const during = watch.seen.slice(seenBefore);
      assert.ok(
        during.every((r) => r.url.searchParams.has("wait")),
        "only long-polls",
      );
      assert.equal(watched.status().requests - before, during.length);
      const plain = verifier.status().requests;
      for (let i = 0; i < 1000; i += 1) await verifier.verify(user.access_token);
      assert.ok(verifier.status().requests - plain <= 1, "the default transport too");
      console.log(
        `# 1000 verifications in ${took.toFixed(0)} ms, ${during.length} request(s) meanwhile (long-polls)`,
      );
    } finally {
      watched.close();
    }
  });

  test("an ended session's token is refused, and the status counts it", async () => {
    const other = await authd.login(user.email);
    await verifier.verify(other.access_token);
    const since = performance.now();
    await authd.logout(other.access_token);
    const ms = await refusedWithin(verifier, other.access_token, since, "logout");
    console.log(`# logout refused after ${ms.toFixed(0)} ms`);
    assert.ok(verifier.status().revokedEntries >= 1);
    await verifier.verify(user.access_token);
  });

  test("an ended session's entry is forgotten once its expires_at plus the leeway has passed", async () => {
    const other = await authd.login(user.email);
    await authd.logout(other.access_token);
    await refusedWithin(verifier, other.access_token, performance.now(), "logout");
    // Seven minutes on, past the token's exp (5 min) and the entry's horizon plus the leeway.
    const later = await createVerifier({
      baseUrl: authd.baseUrl,
      serviceKey: key,
      logger: null,
      now: () => Date.now() + 420_000,
    });
    try {
      assert.ok(verifier.status().revokedEntries >= 1);
      assert.equal(later.status().revokedEntries, 0, "nothing held past its horizon");
      await refuses(later, other.access_token, ExpiredError, "its token has expired anyway");
    } finally {
      later.close();
    }
  });

  test("inspect, JSON and errors never show the service key or a token", async () => {
    const shown = `${inspect(verifier, { depth: 10 })} ${JSON.stringify(verifier)} ${String(verifier)}`;
    assert.ok(!shown.includes(key), "the key is hidden");
    assert.ok(!shown.includes(key.slice(9, 30)), "no part of the key either");
    assert.match(shown, /<redacted>/);
    const refusal = await verifier.verify(`${user.access_token}x`).catch((e: unknown) => e);
    assert.ok(refusal instanceof VerifyError);
    assert.ok(!`${refusal.message} ${inspect(refusal)}`.includes(user.access_token.slice(0, 40)));
  });
});

describe("forged and broken tokens", () => {
  test("alg none, HS256 keyed with the public key, wrong typ, garbage and oversize are refused", async () => {
    const { kid, x } = await authd.jwk();
    const [h, p] = user.access_token.split(".") as [string, string];
    const claims = claimsOf(user.access_token);
    const mine = ownKey(kid);
    const cases: [string, string, abstract new (...a: never[]) => VerifyError][] = [
      ["alg none, no signature", `${b64url({ alg: "none", typ: "at+jwt", kid })}.${p}.`, MalformedError],
      [
        "alg none, a signature",
        `${b64url({ alg: "none", typ: "at+jwt", kid })}.${p}.${b64url("x")}`,
        ForbiddenHeaderError,
      ],
      [
        "HS256 keyed with the raw public key",
        signHs256({ alg: "HS256", typ: "at+jwt", kid }, claims, Buffer.from(x, "base64url")),
        ForbiddenHeaderError,
      ],
      [
        "HS256 keyed with the JWKS x",
        signHs256({ alg: "HS256", typ: "at+jwt", kid }, claims, x),
        ForbiddenHeaderError,
      ],
      [
        "typ JWT",
        signEd25519({ alg: "EdDSA", typ: "JWT", kid }, claims, mine.privateKey),
        ForbiddenHeaderError,
      ],
      ["no typ", signEd25519({ alg: "EdDSA", kid }, claims, mine.privateKey), ForbiddenHeaderError],
      [
        "our key under authd's kid",
        signEd25519({ alg: "EdDSA", typ: "at+jwt", kid }, claims, mine.privateKey),
        InvalidError,
      ],
      ["no kid", signEd25519({ alg: "EdDSA", typ: "at+jwt" }, claims, mine.privateKey), UnknownKeyError],
      [
        "a payload swapped in",
        `${h}.${b64url({ ...claims, sub: "someone-else" })}.${user.access_token.split(".")[2]}`,
        InvalidError,
      ],
      ["a signature cut short", user.access_token.slice(0, -3), InvalidError],
      ["garbage", "garbage", MalformedError],
      ["empty", "", MalformedError],
      ["three empty parts", "..", MalformedError],
      ["a header that is not JSON", `${b64url("nope")}.${p}.${b64url("x")}`, MalformedError],
      ["not base64url", `${h}.${p}.a+b/c=`, MalformedError],
      ["4097 bytes", `${h}.${p}.${"A".repeat(4097 - h.length - p.length - 2)}`, MalformedError],
      ["a refresh token", user.refresh_token, MalformedError],
    ];
    for (const name of ["jku", "jwk", "x5u", "x5c", "crit", "enc", "zip", "b64"]) {
      const header = {
        alg: "EdDSA",
        typ: "at+jwt",
        kid,
        [name]: name === "crit" ? ["exp"] : name === "b64" ? false : "x",
      };
      cases.push([`a ${name} header`, signEd25519(header, claims, mine.privateKey), ForbiddenHeaderError]);
    }
    assert.equal(Buffer.byteLength(cases.find(([n]) => n === "4097 bytes")?.[1] ?? ""), 4097);
    for (const [what, token, kind] of cases) {
      await refuses(verifier, token, kind, what);
      const error = await verifier.verify(token).catch((e: VerifyError) => e);
      assert.equal((error as VerifyError).status, 401, what);
      assert.equal((error as VerifyError).error, "invalid_token", what);
    }
    // And the real one still verifies.
    await verifier.verify(user.access_token);
  });

  test("a kid authd does not have is refused and refetches the JWKS, at most once per interval", async () => {
    const watch = watchedFetch();
    const kit = await createVerifier({
      baseUrl: authd.baseUrl,
      serviceKey: key,
      fetch: watch.fetch,
      jwksRefetchIntervalMs: 60_000,
      logger: null,
    });
    try {
      const jwksFetches = () => watch.seen.filter((r) => r.url.pathname === "/.well-known/jwks.json").length;
      assert.equal(jwksFetches(), 1, "the JWKS is fetched once at start-up");
      const mine = ownKey("rotated-in");
      const token = signEd25519(
        { alg: "EdDSA", typ: "at+jwt", kid: "rotated-in" },
        claimsOf(user.access_token),
        mine.privateKey,
      );
      // authd "rotates": the next JWKS answer holds the new key.
      watch.extraKeys.push(mine.jwk);
      await refuses(kit, token, UnknownKeyError, "unknown kid");
      await waitFor(() => jwksFetches() === 2, 2000, "the JWKS refetch");
      await waitFor(() => kit.status().keys === 2, 2000, "the new key held");
      const claims = await kit.verify(token);
      assert.equal(claims.sid, user.session_id, "the next request with that kid verifies");
      // Other unknown kids within the interval refetch nothing more.
      for (let i = 0; i < 50; i += 1) {
        const other = signEd25519(
          { alg: "EdDSA", typ: "at+jwt", kid: `unknown-${i}` },
          claimsOf(user.access_token),
          mine.privateKey,
        );
        await refuses(kit, other, UnknownKeyError, "another unknown kid");
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(jwksFetches(), 2, "rate-limited");
    } finally {
      kit.close();
    }
  });

  test("claims are checked like authd checks them (tokens signed by a key the kit trusts)", async () => {
    const watch = watchedFetch();
    const mine = ownKey("trusted-by-test");
    watch.extraKeys.push(mine.jwk);
    const kit = await createVerifier({
      baseUrl: authd.baseUrl,
      serviceKey: key,
      fetch: watch.fetch,
      logger: null,
    });
    try {
      const header = { alg: "EdDSA", typ: "at+jwt", kid: "trusted-by-test" };
      const now = Math.floor(Date.now() / 1000);
      const good = { ...claimsOf(user.access_token), iat: now, exp: now + 300 };
      const forge = (claims: object) => signEd25519(header, claims, mine.privateKey);
      const without = (name: string) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== name));
      assert.equal(
        (await kit.verify(forge(good))).sid,
        user.session_id,
        "sanity: the forger's key is trusted",
      );
      assert.equal(
        (await kit.verify(forge({ ...good, iat: now - 300, exp: now - 25 }))).sid,
        user.session_id,
        "within the leeway",
      );
      const cases: [string, object, abstract new (...a: never[]) => VerifyError][] = [
        ["another iss", { ...good, iss: "https://evil.example" }, InvalidError],
        ["another aud", { ...good, aud: "someone-else" }, InvalidError],
        ["aud as an array", { ...good, aud: ["authd"] }, InvalidError],
        ["exp as a string", { ...good, exp: String(now + 300) }, InvalidError],
        ["exp before iat", { ...good, iat: now, exp: now - 1 }, InvalidError],
        ["sid as a number", { ...good, sid: 7 }, InvalidError],
        ["expired past the leeway", { ...good, iat: now - 400, exp: now - 40 }, ExpiredError],
        ["issued in the future", { ...good, iat: now + 60, exp: now + 360 }, NotYetValidError],
        ["nbf in the future", { ...good, nbf: now + 60 }, NotYetValidError],
        ["a claims set that is an array", [good], InvalidError],
      ];
      for (const name of ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]) {
        cases.push([`without ${name}`, without(name), InvalidError]);
      }
      for (const [what, claims, kind] of cases) await refuses(kit, forge(claims), kind, what);

      // A valid signature does not save an ended session.
      const other = await authd.login(user.email);
      await authd.logout(other.access_token);
      await refusedWithin(
        kit,
        forge({ ...good, sid: other.session_id }),
        performance.now(),
        "a forged token of an ended session",
      );
    } finally {
      kit.close();
    }
  });

  test("the configured issuer, audience and clock decide", async () => {
    const kit = (options: object) =>
      createVerifier({ baseUrl: `${authd.baseUrl}/`, serviceKey: key, logger: null, ...options });
    const trailing = await kit({});
    const elsewhere = await kit({ issuer: "https://auth.example.com" });
    const otherAudience = await kit({ audience: "orders" });
    const later = await kit({ now: () => Date.now() + 400_000 });
    const earlier = await kit({ now: () => Date.now() - 400_000 });
    try {
      assert.equal(
        (await trailing.verify(user.access_token)).sid,
        user.session_id,
        "default issuer: no trailing slash",
      );
      await refuses(elsewhere, user.access_token, InvalidError, "another issuer");
      await refuses(otherAudience, user.access_token, InvalidError, "another audience");
      await refuses(later, user.access_token, ExpiredError, "400 s later");
      await refuses(earlier, user.access_token, NotYetValidError, "400 s earlier");
    } finally {
      for (const v of [trailing, elsewhere, otherAudience, later, earlier]) v.close();
    }
  });
});

describe("creation", () => {
  test("fails with a typed error, and never with the key in it", async () => {
    const failure = async (options: Record<string, unknown>) => {
      const error = await createVerifier({
        baseUrl: authd.baseUrl,
        serviceKey: key,
        logger: null,
        ...options,
      }).then(
        (v) => {
          v.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      assert.ok(
        error instanceof BuildError,
        `expected a BuildError for ${JSON.stringify(options)}, got ${String(error)}`,
      );
      assert.ok(!error.message.includes(key));
      return error;
    };
    assert.equal((await failure({ serviceKey: undefined })).code, "missing_service_key");
    assert.equal((await failure({ serviceKey: "authd_sk_ with space" })).code, "invalid_service_key");
    assert.equal((await failure({ baseUrl: "ftp://127.0.0.1" })).code, "invalid_base_url");
    assert.equal((await failure({ maxStalenessMs: 500 })).code, "invalid_setting");

    const unknownKey = await failure({ serviceKey: "authd_sk_not-a-key-authd-knows" });
    assert.equal(unknownKey.code, "snapshot");
    assert.equal(unknownKey.cause?.code, "invalid_service_key");

    const introspectOnly = await authd.serviceKey("introspector", "introspect");
    const noScope = await failure({ serviceKey: introspectOnly });
    assert.equal(noScope.code, "snapshot");
    assert.equal(noScope.cause?.code, "insufficient_scope");

    const down = await failure({ baseUrl: `http://127.0.0.1:${await freePort()}` });
    assert.equal(down.code, "jwks");
    assert.equal(down.cause?.code, "unreachable");
  });

  test("a verifier that is closed refuses with Stale, and its status says so", async () => {
    const kit = await createVerifier({ baseUrl: authd.baseUrl, serviceKey: key, logger: null });
    await kit.verify(user.access_token);
    kit.close();
    const error = await kit.verify(user.access_token).catch((e: VerifyError) => e);
    assert.equal((error as VerifyError).code, "stale");
    assert.equal((error as VerifyError).status, 503);
    assert.equal(kit.status().ready, false);
    // A known-ended session stays a 401, closed or not.
    assert.ok(!(error instanceof RevokedError));
  });
});
