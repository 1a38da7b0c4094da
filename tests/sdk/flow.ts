// The SDK flow in TypeScript, on a client generated from openapi.yaml (openapi-typescript +
// openapi-fetch): register, login (body delivery), getMe, refresh, reuse of the old refresh
// token (401, the session is revoked: its new refresh token and its access token fail too),
// logout. Then the admin API with a service key of scope `admin` (AUTHD_ADMIN_KEY, made by
// run.sh): create a user, find it, set its app_metadata (the next refresh's access token carries
// it), list its sessions, disable it (its access token is refused at once), read its audit trail
// (each admin action names the key), delete it (404 after). A user's access token is no admin key.
// And a password reset: requestPasswordReset (202), the token from the mail authd wrote to
// AUTHD_MAIL_DIR (run.sh starts it without SMTP), resetPassword (204), the old session's access
// token refused, the new password logs in, the spent token refused (400 invalid_email_token).
// Usage: node dist/flow.js http://127.0.0.1:PORT (the server runs with
// AUTHD_REUSE_GRACE_SECS=0, so a replay is reuse at once).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

import createClient from "openapi-fetch";

import type { components, paths } from "./generated/authd.js";

type TokenResponse = components["schemas"]["TokenResponse"];
type ErrorBody = components["schemas"]["ErrorBody"];

const baseUrl = process.argv[2] ?? process.env.AUTHD_URL;
if (!baseUrl) {
  throw new Error("usage: node dist/flow.js BASE_URL");
}
const client = createClient<paths>({ baseUrl });
const adminKey = process.env.AUTHD_ADMIN_KEY ?? "";
if (!adminKey.startsWith("authd_sk_")) {
  throw new Error("AUTHD_ADMIN_KEY must hold a service key of scope admin (run.sh makes one)");
}
const admin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${adminKey}` } });

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

/** The claims of a JWT (its middle part, base64url-decoded); the signature is not checked here. */
function jwtClaims(token: string): Record<string, unknown> {
  const parts = token.split(".");
  check(parts.length === 3, "the access token is a JWT (three parts)");
  return JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

/**
 * The token of the newest password-reset mail to `email` in AUTHD_MAIL_DIR (`.eml` files,
 * quoted-printable bodies), polling for up to 10 s: authd mails after answering.
 */
async function resetTokenFromMail(email: string): Promise<string> {
  const dir = process.env.AUTHD_MAIL_DIR ?? "";
  check(dir !== "", "AUTHD_MAIL_DIR names authd's mail directory (run.sh sets it)");
  const deadline = Date.now() + 10_000;
  for (;;) {
    const mails = readdirSync(dir)
      .filter((name) => name.endsWith(".eml") && !name.startsWith("."))
      .map((name) => join(dir, name))
      .map((path) => ({
        mtime: statSync(path).mtimeMs,
        // Quoted-printable: soft line breaks and `=3D` (the token itself is base64url).
        text: readFileSync(path, "latin1").replace(/=\r?\n/g, "").replace(/=3D/g, "="),
      }))
      .filter((m) => new RegExp(`^To: .*${email.replace(/[.+]/g, "\\$&")}`, "mi").test(m.text))
      .sort((a, b) => b.mtime - a.mtime);
    for (const mail of mails) {
      const m = /#action=reset-password&token=([A-Za-z0-9_-]{43})/.exec(mail.text);
      if (m) {
        return m[1]!;
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`no password-reset mail to ${email} in ${dir} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function resetScenario(): Promise<void> {
  const email = `ts-reset-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
  const password = "correct horse battery staple";
  const newPassword = "a longer and newer passphrase";
  const reg = await client.POST("/auth/register", { body: { email, password } });
  check(reg.response.status === 201, `register: ${reg.response.status}`);
  const before = await login(email, password);

  // requestPasswordReset: 202, no body, whatever the address
  const forgot = await client.POST("/auth/password/forgot", { body: { email } });
  check(forgot.response.status === 202, `requestPasswordReset: ${forgot.response.status} ${JSON.stringify(forgot.error)}`);
  const unknown = await client.POST("/auth/password/forgot", { body: { email: `nobody-${email}` } });
  check(unknown.response.status === 202, `requestPasswordReset of an unknown address: ${unknown.response.status}`);
  const token = await resetTokenFromMail(email);

  // resetPassword: 204; every session ends at once
  const reset = await client.POST("/auth/password/reset", { body: { token, new_password: newPassword } });
  check(reset.response.status === 204, `resetPassword: ${reset.response.status} ${JSON.stringify(reset.error)}`);
  const meOld = await client.GET("/me", bearer(before.access_token));
  expectError(meOld.error, 401, meOld.response.status, "invalid_token");
  const rtOld = await client.POST("/auth/refresh", { body: { refresh_token: before.refresh_token } });
  expectError(rtOld.error, 401, rtOld.response.status, "invalid_refresh_token");

  // the old password is refused, the new one logs in
  const oldLogin = await client.POST("/auth/login", { body: { email, password, delivery: "body" } });
  expectError(oldLogin.error, 401, oldLogin.response.status, "invalid_credentials");
  const after = await login(email, newPassword);
  const me = await client.GET("/me", bearer(after.access_token));
  check(me.response.status === 200 && me.data?.email === email, `getMe after the reset: ${me.response.status}`);

  // the token is spent
  const again = await client.POST("/auth/password/reset", { body: { token, new_password: "yet another long passphrase" } });
  expectError(again.error, 400, again.response.status, "invalid_email_token");
}

async function adminScenario(): Promise<void> {
  const email = `ts-admin-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
  const password = "correct horse battery staple";

  // adminCreateUser with a password: 201, the user can log in at once
  const created = await admin.POST("/admin/users", { body: { email, password } });
  check(
    created.response.status === 201 && created.data !== undefined,
    `adminCreateUser: ${created.response.status} ${JSON.stringify(created.error)}`,
  );
  const user = created.data;
  check(user.email === email && !user.disabled && !user.email_verified, "adminCreateUser: the new user");
  check(user.app_metadata === undefined || user.app_metadata === null, "adminCreateUser: no app_metadata yet");
  const userId = user.id;

  // adminListUsers by email prefix
  const found = await admin.GET("/admin/users", { params: { query: { query: email.slice(0, -"@example.com".length), limit: 10 } } });
  check(found.response.status === 200 && found.data !== undefined, `adminListUsers: ${found.response.status}`);
  check(
    found.data.users.length === 1 && found.data.users[0]!.id === userId && found.data.users[0]!.email === email,
    `adminListUsers by prefix finds the user alone: ${JSON.stringify(found.data.users.map((u) => u.email))}`,
  );
  check(found.data.cursor === null || found.data.cursor === undefined, "adminListUsers: a single page");

  // a user's access token is not an admin key
  const first = await login(email, password);
  check(!("app_metadata" in jwtClaims(first.access_token)), "no app_metadata claim before an admin sets it");
  const notAdmin = await client.GET("/admin/users", bearer(first.access_token));
  expectError(notAdmin.error, 401, notAdmin.response.status, "invalid_service_key");

  // adminUpdateUser: app_metadata, carried by the access token of the next refresh
  const roles = { roles: ["support"] };
  const patched = await admin.PATCH("/admin/users/{id}", {
    params: { path: { id: userId } },
    body: { app_metadata: roles },
  });
  check(patched.response.status === 200 && patched.data !== undefined, `adminUpdateUser: ${patched.response.status}`);
  check(JSON.stringify(patched.data.app_metadata) === JSON.stringify(roles), "adminUpdateUser echoes app_metadata");
  const rot = await client.POST("/auth/refresh", { body: { refresh_token: first.refresh_token } });
  check(rot.response.status === 200 && rot.data !== undefined, `refresh after adminUpdateUser: ${rot.response.status}`);
  const claims = jwtClaims(rot.data.access_token);
  check(claims.sub === userId && claims.sid === first.session_id, "the refreshed token is the user's, same session");
  check(
    JSON.stringify(claims.app_metadata) === JSON.stringify(roles),
    `the refreshed access token carries app_metadata.roles == ["support"]: ${JSON.stringify(claims.app_metadata)}`,
  );
  const accessToken = rot.data.access_token;

  // adminListUserSessions: the one login
  const sessions = await admin.GET("/admin/users/{id}/sessions", { params: { path: { id: userId } } });
  check(sessions.response.status === 200 && sessions.data !== undefined, `adminListUserSessions: ${sessions.response.status}`);
  check(
    sessions.data.length === 1 && sessions.data[0]!.id === first.session_id,
    `adminListUserSessions shows the one session: ${JSON.stringify(sessions.data)}`,
  );

  // disable: the session ends at once, its access token is refused, logins are refused
  const meBefore = await client.GET("/me", bearer(accessToken));
  check(meBefore.response.status === 200, `getMe before disabling: ${meBefore.response.status}`);
  const disabled = await admin.PATCH("/admin/users/{id}", {
    params: { path: { id: userId } },
    body: { disabled: true },
  });
  check(disabled.response.status === 200 && disabled.data?.disabled === true, `adminUpdateUser disabled: ${disabled.response.status}`);
  const meDisabled = await client.GET("/me", bearer(accessToken));
  expectError(meDisabled.error, 401, meDisabled.response.status, "invalid_token");
  const loginDisabled = await client.POST("/auth/login", { body: { email, password, delivery: "body" } });
  expectError(loginDisabled.error, 401, loginDisabled.response.status, "invalid_credentials");
  const noSessions = await admin.GET("/admin/users/{id}/sessions", { params: { path: { id: userId } } });
  check(noSessions.response.status === 200 && noSessions.data?.length === 0, "a disabled user has no sessions");

  // adminListEvents: the admin actions, each naming the key
  const events = await admin.GET("/admin/events", { params: { query: { user_id: userId } } });
  check(events.response.status === 200 && events.data !== undefined, `adminListEvents: ${events.response.status}`);
  check(events.data.events.every((e) => e.user_id === userId), "adminListEvents: only this user's events");
  for (const kind of ["user_created", "app_metadata_changed", "user_disabled"]) {
    const ev = events.data.events.find((e) => e.kind === kind);
    check(ev !== undefined, `adminListEvents has ${kind}: ${JSON.stringify(events.data.events.map((e) => e.kind))}`);
    check((ev.actor ?? "").startsWith("service_key:sdk-admin"), `${kind} names the key as actor: ${ev.actor}`);
  }

  // adminDeleteUser: 204, then 404
  const deleted = await admin.DELETE("/admin/users/{id}", { params: { path: { id: userId } } });
  check(deleted.response.status === 204, `adminDeleteUser: ${deleted.response.status}`);
  const gone = await admin.GET("/admin/users/{id}", { params: { path: { id: userId } } });
  expectError(gone.error, 404, gone.response.status, "not_found");
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

  await resetScenario();
  await adminScenario();

  console.log(`typescript flow: ok (${steps} checks)`);
}

main().catch((err: unknown) => {
  console.error("typescript flow: FAILED:", err);
  process.exit(1);
});
