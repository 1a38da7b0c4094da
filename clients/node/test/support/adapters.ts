/**
 * The behaviour every framework adapter owes, as one suite run against each: a real server on
 * 127.0.0.1:0 in front of a verifier that follows a live authd.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { createVerifier, type Verifier } from "@authd/verify";

import { Authd, type Tokens } from "./authd.js";
import { waitFor } from "./kit.js";

/** A running resource server. Routes: `/whoami` (bearer only) and `/cookie` (bearer, else the cookie `at`). */
export interface App {
  base: string;
  close(): Promise<void>;
}

/** What the server answered. */
export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** `GET base + path` with a bearer token and/or a cookie header. */
export async function get(
  base: string,
  path: string,
  auth: { bearer?: string; cookie?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (auth.bearer !== undefined) headers.authorization = `Bearer ${auth.bearer}`;
  if (auth.cookie !== undefined) headers.cookie = auth.cookie;
  const answer = await fetch(`${base}${path}`, { headers });
  const text = await answer.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: answer.status, headers: answer.headers, body };
}

/** Asserts the contract's 401: the challenge header and the JSON body. */
export function assertUnauthorized(answer: Answer, what: string): void {
  assert.equal(answer.status, 401, `${what}: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.headers.get("www-authenticate"), 'Bearer error="invalid_token"', what);
  assert.match(answer.headers.get("content-type") ?? "", /^application\/json/, what);
  assert.equal(answer.body.error, "invalid_token", what);
  assert.equal(answer.headers.get("cache-control"), "no-store", what);
  assert.equal(typeof answer.body.message, "string", what);
}

/** Asserts the contract's 503 for a stale verifier. */
export function assertUnavailable(answer: Answer, what: string): void {
  assert.equal(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.headers.get("retry-after"), "1", what);
  assert.equal(answer.headers.get("www-authenticate"), null, what);
  assert.equal(answer.body.error, "service_unavailable", what);
  assert.equal(answer.headers.get("cache-control"), "no-store", what);
  assert.equal(typeof answer.body.message, "string", what);
}

/** The state a framework's own extra tests can use. */
export interface Context {
  authd: Authd;
  verifier: Verifier;
  app: App;
  user: Tokens & { email: string };
}

/**
 * Defines the shared tests for one adapter; `start` builds the app over the verifier. Returns
 * the context (filled in once the `before` hook ran) for the framework's own tests, which run
 * between the shared ones and the stale one at the end.
 */
export function adapterSuite(
  name: string,
  start: (verifier: Verifier) => Promise<App>,
  extra: (context: Context) => void = () => {},
): void {
  const context = {} as Context;

  before(async () => {
    context.authd = await Authd.start();
    context.verifier = await createVerifier({
      baseUrl: context.authd.baseUrl,
      serviceKey: await context.authd.serviceKey(),
      maxStalenessMs: 2000,
      logger: null,
    });
    context.app = await start(context.verifier);
    context.user = await context.authd.user();
  });

  after(async () => {
    await context.app?.close();
    context.verifier?.close();
    await context.authd?.dispose();
  });

  test(`${name}: a valid bearer token reaches the handler with its claims`, async () => {
    const { app, user } = context;
    const answer = await get(app.base, "/whoami", { bearer: user.access_token });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.sid, user.session_id);
    assert.equal(answer.body.email, user.email);
    assert.equal(typeof answer.body.sub, "string");
  });

  test(`${name}: no token, a bad token or another scheme answers 401 with WWW-Authenticate`, async () => {
    const { app, user } = context;
    assertUnauthorized(await get(app.base, "/whoami"), "no token");
    assertUnauthorized(await get(app.base, "/whoami", { bearer: "garbage" }), "garbage");
    assertUnauthorized(
      await get(app.base, "/whoami", { bearer: `${user.access_token}x` }),
      "a bad signature",
    );
    const basic = await fetch(`${app.base}/whoami`, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    await basic.arrayBuffer();
    assert.equal(basic.status, 401, "Basic");
    assert.equal(basic.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
    assertUnauthorized(
      await get(app.base, "/whoami", { cookie: `at=${user.access_token}` }),
      "a cookie where none is configured",
    );
  });

  test(`${name}: with the cookie option the token is read from the cookie when there is no bearer header`, async () => {
    const { app, user } = context;
    const cookie = await get(app.base, "/cookie", { cookie: `theme=dark; at=${user.access_token}` });
    assert.equal(cookie.status, 200, JSON.stringify(cookie.body));
    assert.equal(cookie.body.sid, user.session_id);
    const bearer = await get(app.base, "/cookie", { bearer: user.access_token, cookie: "at=garbage" });
    assert.equal(bearer.status, 200, "the bearer header wins over the cookie");
    assertUnauthorized(await get(app.base, "/cookie", { cookie: "at=garbage" }), "a bad cookie");
    assertUnauthorized(await get(app.base, "/cookie", { cookie: "other=1" }), "no such cookie");
  });

  test(`${name}: an ended session's token answers 401 within a second`, async () => {
    const { app, authd, user } = context;
    const session = await authd.login(user.email);
    assert.equal((await get(app.base, "/whoami", { bearer: session.access_token })).status, 200);
    const since = performance.now();
    await authd.logout(session.access_token);
    for (;;) {
      const answer = await get(app.base, "/whoami", { bearer: session.access_token });
      const took = performance.now() - since;
      if (answer.status === 401) {
        assertUnauthorized(answer, "ended");
        console.log(`# ${name}: logout answered 401 after ${took.toFixed(0)} ms`);
        break;
      }
      assert.equal(answer.status, 200);
      assert.ok(took < 1000, `still 200 after ${took.toFixed(0)} ms`);
    }
    const cookie = await get(app.base, "/cookie", { cookie: `at=${session.access_token}` });
    assertUnauthorized(cookie, "ended, from the cookie");
  });

  extra(context);

  test(`${name}: with authd stopped and maxStalenessMs exceeded, 503 with Retry-After: 1 (an ended session stays 401)`, async () => {
    const { app, authd, verifier, user } = context;
    const ended = await authd.login(user.email);
    await authd.logout(ended.access_token);
    await waitFor(
      async () => (await get(app.base, "/whoami", { bearer: ended.access_token })).status === 401,
      2000,
      "ended",
    );
    await authd.stop();
    await waitFor(() => !verifier.status().ready, 5000, "stale");
    assertUnavailable(await get(app.base, "/whoami", { bearer: user.access_token }), "live token, stale");
    assertUnavailable(
      await get(app.base, "/cookie", { cookie: `at=${user.access_token}` }),
      "live cookie, stale",
    );
    assertUnauthorized(await get(app.base, "/whoami", { bearer: ended.access_token }), "ended token, stale");
    assertUnauthorized(await get(app.base, "/whoami", { bearer: "garbage" }), "garbage, stale");
  });
}
