// The SDK flow in TypeScript, on a client generated from openapi.yaml (openapi-typescript +
// openapi-fetch): register, login (body delivery), getMe, refresh, reuse of the old refresh
// token (401, the session is revoked: its new refresh token and its access token fail too),
// logout. Usage: node dist/flow.js http://127.0.0.1:PORT (the server runs with
// AUTHD_REUSE_GRACE_SECS=0, so a replay is reuse at once).
import createClient from "openapi-fetch";

import type { components, paths } from "./generated/authd.js";

type TokenResponse = components["schemas"]["TokenResponse"];
type ErrorBody = components["schemas"]["ErrorBody"];

const baseUrl = process.argv[2] ?? process.env.AUTHD_URL;
if (!baseUrl) {
  throw new Error("usage: node dist/flow.js BASE_URL");
}
const client = createClient<paths>({ baseUrl });

let steps = 0;
function check(cond: boolean, what: string): asserts cond {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
  steps += 1;
}

function bearer(token: string): { headers: { Authorization: string } } {
  return { headers: { Authorization: `Bearer ${token}` } };
}

function expectError(error: ErrorBody | undefined, status: number, actual: number, code: string): void {
  check(actual === status, `status ${actual}, expected ${status}`);
  check(error?.error === code, `error ${JSON.stringify(error)}, expected ${code}`);
  check(typeof error?.message === "string" && error.message.length > 0, "error message present");
}

async function login(email: string, password: string): Promise<TokenResponse & { refresh_token: string }> {
  const { data, error, response } = await client.POST("/auth/login", {
    body: { email, password, delivery: "body" },
  });
  check(response.status === 200 && data !== undefined, `login: ${response.status} ${JSON.stringify(error)}`);
  check(data.token_type === "Bearer", "token_type is Bearer");
  check(data.expires_in > 0 && data.refresh_expires_in > 0, "lifetimes are positive");
  check(typeof data.refresh_token === "string", "body delivery returns the refresh token in the body");
  check(response.headers.get("set-cookie") === null, "body delivery sets no cookie");
  return { ...data, refresh_token: data.refresh_token };
}

async function main(): Promise<void> {
  const email = `ts-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
  const password = "correct horse battery staple";

  // register
  const reg = await client.POST("/auth/register", { body: { email, password } });
  check(reg.response.status === 201 && reg.data !== undefined, `register: ${reg.response.status}`);
  check(reg.data.email === email, "register echoes the normalised email");
  const userId: string = reg.data.user_id;

  const again = await client.POST("/auth/register", { body: { email, password } });
  expectError(again.error, 409, again.response.status, "email_taken");

  // login, body delivery
  const first = await login(email, password);

  // getMe
  const me = await client.GET("/me", bearer(first.access_token));
  check(me.response.status === 200 && me.data !== undefined, `getMe: ${me.response.status}`);
  check(me.data.user_id === userId && me.data.email === email, "getMe: the token's owner");
  check(me.data.session_id === first.session_id, "getMe: the login's session");

  // refresh: rotates within the same session
  const rot = await client.POST("/auth/refresh", { body: { refresh_token: first.refresh_token } });
  check(rot.response.status === 200 && rot.data !== undefined, `refresh: ${rot.response.status}`);
  const second = rot.data;
  check(typeof second.refresh_token === "string" && second.refresh_token !== first.refresh_token, "refresh rotates");
  check(second.session_id === first.session_id, "refresh keeps the session");
  const me2 = await client.GET("/me", bearer(second.access_token));
  check(me2.response.status === 200, "the new access token works");

  // reuse of the rotated token: 401, and the whole session is revoked
  const reuse = await client.POST("/auth/refresh", { body: { refresh_token: first.refresh_token } });
  expectError(reuse.error, 401, reuse.response.status, "invalid_refresh_token");
  const afterReuse = await client.POST("/auth/refresh", { body: { refresh_token: second.refresh_token! } });
  expectError(afterReuse.error, 401, afterReuse.response.status, "invalid_refresh_token");
  const meAfter = await client.GET("/me", bearer(second.access_token));
  expectError(meAfter.error, 401, meAfter.response.status, "invalid_token");
  check(
    (meAfter.response.headers.get("www-authenticate") ?? "").includes('error="invalid_token"'),
    "WWW-Authenticate names invalid_token",
  );

  // the reuse is in the security log of a new session
  const third = await login(email, password);
  const events = await client.GET("/auth/events", bearer(third.access_token));
  check(events.response.status === 200 && events.data !== undefined, "listSecurityEvents");
  check(
    events.data.some((e) => e.kind === "refresh_token_reused" && e.session_id === first.session_id),
    "a refresh_token_reused event for the revoked session",
  );
  const sessions = await client.GET("/auth/sessions", bearer(third.access_token));
  check(sessions.response.status === 200 && sessions.data !== undefined, "listSessions");
  check(
    sessions.data.length === 1 && sessions.data[0]!.id === third.session_id && sessions.data[0]!.current,
    "only the new session is live",
  );

  // logout with the access token: 204 and the cookie expired; the token stops working
  const out = await client.POST("/auth/logout", { ...bearer(third.access_token), params: { query: { scope: "local" } } });
  check(out.response.status === 204, `logout: ${out.response.status}`);
  check((out.response.headers.get("set-cookie") ?? "").includes("Max-Age=0"), "logout expires the cookie");
  const meGone = await client.GET("/me", bearer(third.access_token));
  expectError(meGone.error, 401, meGone.response.status, "invalid_token");
  const rtGone = await client.POST("/auth/refresh", { body: { refresh_token: third.refresh_token } });
  expectError(rtGone.error, 401, rtGone.response.status, "invalid_refresh_token");

  // logout with a refresh token in the body (of an ended session) is not an error
  const outAgain = await client.POST("/auth/logout", { body: { refresh_token: third.refresh_token } });
  check(outAgain.response.status === 204, `logout of an ended session: ${outAgain.response.status}`);

  console.log(`typescript flow: ok (${steps} checks)`);
}

main().catch((err: unknown) => {
  console.error("typescript flow: FAILED:", err);
  process.exit(1);
});
