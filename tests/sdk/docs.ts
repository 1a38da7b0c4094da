// The docs UI in a real browser: headless Debian chromium driven by playwright-core opens /docs
// (Swagger UI served by the binary), and through "Try it out" registers, logs in with cookie
// delivery (200, and the HttpOnly __Host-refresh_token cookie lands in the browser's jar),
// authorizes with the access token and calls getMe, refreshes through the cookie, then logs out
// and sees the cookie gone; authorizes with a service key and lists the revocations feed. The
// admin API: adminListUsers by the registered user's email prefix answers 401 with no admin key,
// 403 with the feed's service key authorized as `adminKey`, and 200 naming that user with
// AUTHD_ADMIN_KEY (run.sh gives it to this step and to the SDK flows, never to schemathesis).
// Account recovery: requestPasswordReset answers 202 for the user (and the reset mail lands in
// AUTHD_MAIL_DIR) and 202 for an unknown address. Every request the page makes goes to authd
// itself (the UI works offline). Screenshots go to the output folder.
// Usage: node dist/docs.js BASE_URL OUT_DIR
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium, type BrowserContext, type Cookie, type Locator, type Page } from "playwright-core";

const baseArg = process.argv[2];
if (!baseArg) {
  throw new Error("usage: node dist/docs.js BASE_URL OUT_DIR");
}
const baseUrl: string = baseArg;
const outDir = process.argv[3] ?? ".";
const COOKIE = "__Host-refresh_token";
const TIMEOUT = 30_000;

let steps = 0;
function check(cond: boolean, what: string): asserts cond {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
  steps += 1;
  console.log(`  ok: ${what}`);
}

async function refreshCookie(context: BrowserContext): Promise<Cookie | undefined> {
  return (await context.cookies(baseUrl)).find((c) => c.name === COOKIE);
}

/** Fills the Authorize dialog's form of `scheme` with `value`, authorizes, closes the dialog. */
async function authorize(page: Page, scheme: string, value: string): Promise<void> {
  await page.locator(".scheme-container .auth-wrapper button.authorize").first().click();
  const form = page.locator(".modal-ux form").filter({ hasText: `${scheme} (http, Bearer)` });
  await form.locator('input[aria-label="auth-bearer-value"]').fill(value);
  await form.locator("button.modal-btn.auth.authorize").click();
  await page.locator(".modal-ux button.btn-done").first().click();
}

/** Removes the authorization of `scheme` in the Authorize dialog ("Logout"), closes the dialog. */
async function unauthorize(page: Page, scheme: string): Promise<void> {
  await page.locator(".scheme-container .auth-wrapper button.authorize").first().click();
  const form = page.locator(".modal-ux form").filter({ hasText: `${scheme} (http, Bearer)` });
  await form.locator('button[aria-label="Remove authorization"]').click();
  await page.locator(".modal-ux button.btn-done").first().click();
}

/** Opens an operation's block and switches it to "Try it out". */
async function tryOut(page: Page, tag: string, operationId: string): Promise<Locator> {
  const op = page.locator(`#operations-${tag}-${operationId}`);
  await op.waitFor({ timeout: TIMEOUT });
  if (!(await op.locator(".opblock-body").isVisible())) {
    await op.locator(".opblock-summary").first().click();
  }
  const button = op.locator("button.try-out__btn");
  if ((await button.innerText()).trim() === "Try it out") {
    await button.click();
  }
  return op;
}

/** Executes the operation and returns the status and the body shown in "Server response". */
async function execute(op: Locator): Promise<{ status: number; body: string }> {
  const clear = op.locator("button.btn-clear");
  if (await clear.isVisible()) {
    await clear.click();
  }
  await op.locator("button.execute").click();
  const status = op.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor({ timeout: TIMEOUT });
  const code = Number.parseInt((await status.innerText()).trim(), 10);
  const bodyEl = op.locator(".live-responses-table .response-col_description pre").first();
  const body = (await bodyEl.count()) > 0 ? await bodyEl.innerText() : "";
  return { status: code, body };
}

async function setBody(op: Locator, body: unknown): Promise<void> {
  await op.locator("textarea.body-param__text").fill(body === undefined ? "" : JSON.stringify(body, null, 2));
}

async function setHeader(op: Locator, name: string, value: string): Promise<void> {
  await op.locator(`tr[data-param-name="${name}"][data-param-in="header"] input`).fill(value);
}

async function setQuery(op: Locator, name: string, value: string): Promise<void> {
  await op.locator(`tr[data-param-name="${name}"][data-param-in="query"] input`).fill(value);
}

/** Whether a password-reset mail to `email` is in AUTHD_MAIL_DIR, polling for up to 10 s. */
async function resetMailTo(email: string): Promise<boolean> {
  const dir = process.env.AUTHD_MAIL_DIR ?? "";
  const to = new RegExp(`^To: .*${email.replace(/[.+]/g, "\\$&")}`, "mi");
  const deadline = Date.now() + 10_000;
  while (dir !== "") {
    const found = readdirSync(dir)
      .filter((name) => name.endsWith(".eml") && !name.startsWith("."))
      // Quoted-printable: soft line breaks and `=3D`.
      .map((name) => readFileSync(join(dir, name), "latin1").replace(/=\r?\n/g, "").replace(/=3D/g, "="))
      .some((text) => to.test(text) && text.includes("#action=reset-password&token="));
    if (found || Date.now() > deadline) {
      return found;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function main(): Promise<void> {
  const profile = mkdtempSync(join(tmpdir(), "authd-docs-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const foreign: string[] = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("request", (req) => {
      const url = req.url();
      if (!url.startsWith(baseUrl) && !url.startsWith("data:") && !url.startsWith("blob:")) {
        foreign.push(url);
      }
    });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(String(err)));

    const resp = await page.goto(`${baseUrl}/docs`, { waitUntil: "load" });
    check(resp?.status() === 200, "GET /docs is 200");
    await page.locator(".swagger-ui .info .title").waitFor({ timeout: TIMEOUT });
    check((await page.locator(".swagger-ui .info .title").innerText()).includes("authd"), "the docs show the spec's title");
    await page.screenshot({ path: join(outDir, "docs.png") });

    const email = `docs-${Date.now()}@example.com`;
    const password = "correct horse battery staple";

    // register
    const register = await tryOut(page, "Auth", "register");
    await setBody(register, { email, password });
    const registered = await execute(register);
    check(registered.status === 201, `register via the docs UI: ${registered.status}`);

    // login, cookie delivery
    check((await refreshCookie(context)) === undefined, "no refresh cookie before login");
    const login = await tryOut(page, "Auth", "login");
    await setBody(login, { email, password, delivery: "cookie" });
    const loggedIn = await execute(login);
    check(loggedIn.status === 200, `login via the docs UI: ${loggedIn.status}`);
    const tokens = JSON.parse(loggedIn.body) as {
      access_token?: string;
      refresh_token?: string;
      session_id?: string;
    };
    check(typeof tokens.access_token === "string", "the access token is in the body");
    check(tokens.refresh_token === undefined, "the refresh token is not in the body");
    const cookie = await refreshCookie(context);
    check(cookie !== undefined, `the ${COOKIE} cookie is in the browser's jar`);
    check(cookie.httpOnly, "the cookie is HttpOnly");
    check(cookie.secure && cookie.sameSite === "Strict" && cookie.path === "/", "the cookie is Secure, SameSite=Strict, Path=/");
    await login.locator(".live-responses-table").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(outDir, "docs-login.png") });

    // Authorize with the access token, then getMe
    await authorize(page, "bearerAuth", tokens.access_token ?? "");
    const me = await tryOut(page, "Me", "getMe");
    const who = await execute(me);
    check(who.status === 200 && who.body.includes(email), `getMe with the authorized token: ${who.status}`);
    const userId = (JSON.parse(who.body) as { user_id?: string }).user_id ?? "no user id";

    // refresh through the cookie (the docs UI sends the X-Requested-With header it documents)
    const refresh = await tryOut(page, "Auth", "refresh");
    await setHeader(refresh, "X-Requested-With", "swagger-ui");
    await setBody(refresh, undefined);
    const refreshed = await execute(refresh);
    check(refreshed.status === 200, `refresh through the cookie: ${refreshed.status}`);
    const rotated = await refreshCookie(context);
    check(rotated !== undefined && rotated.value !== cookie.value, "the cookie was rotated");

    // logout: 204 and the cookie is gone from the jar
    const logout = await tryOut(page, "Auth", "logout");
    await setHeader(logout, "X-Requested-With", "swagger-ui");
    await setBody(logout, undefined);
    const loggedOut = await execute(logout);
    check(loggedOut.status === 204, `logout via the docs UI: ${loggedOut.status}`);
    check((await refreshCookie(context)) === undefined, "the refresh cookie is gone after logout");
    const after = await execute(me);
    check(after.status === 401, `the access token is refused after logout: ${after.status}`);

    // Authorize with a service key, then the feed lists the session that just ended.
    const serviceKey = process.env.AUTHD_SERVICE_KEY ?? "";
    check(serviceKey.startsWith("authd_sk_"), "run.sh made a service key (AUTHD_SERVICE_KEY)");
    await authorize(page, "serviceKey", serviceKey);
    const feed = await tryOut(page, "ResourceServers", "listRevocations");
    const listed = await execute(feed);
    check(
      listed.status === 200 && listed.body.includes(tokens.session_id ?? "no session id"),
      `listRevocations with the authorized service key lists the ended session: ${listed.status}`,
    );

    // The admin API: find the registered user by an email prefix. With no admin key authorized
    // the UI sends no credentials (401); the feed's service key as `adminKey` lacks the scope
    // (403); the admin key finds the user (200).
    const adminKey = process.env.AUTHD_ADMIN_KEY ?? "";
    check(adminKey.startsWith("authd_sk_"), "run.sh made an admin key (AUTHD_ADMIN_KEY)");
    const prefix = email.slice(0, -"@example.com".length);
    const users = await tryOut(page, "Admin", "adminListUsers");
    await setQuery(users, "query", prefix);
    const anonymous = await execute(users);
    check(
      anonymous.status === 401 && anonymous.body.includes("invalid_service_key"),
      `adminListUsers with no admin key authorized is refused: ${anonymous.status}`,
    );
    await authorize(page, "adminKey", serviceKey);
    const unscoped = await execute(users);
    check(
      unscoped.status === 403 && unscoped.body.includes("insufficient_scope"),
      `adminListUsers with the feed's service key as adminKey is refused: ${unscoped.status}`,
    );
    await unauthorize(page, "adminKey");
    await authorize(page, "adminKey", adminKey);
    const found = await execute(users);
    check(found.status === 200, `adminListUsers with the authorized admin key: ${found.status}`);
    const page1 = JSON.parse(found.body) as { users?: { id?: string; email?: string }[] };
    const listedUsers = page1.users ?? [];
    check(
      listedUsers.some((u) => u.email === email && u.id === userId),
      `adminListUsers names the registered user (${email}, ${userId})`,
    );
    check(
      listedUsers.every((u) => (u.email ?? "").startsWith(prefix)),
      `adminListUsers lists only emails starting with ${prefix}`,
    );
    await users.locator(".live-responses-table").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(outDir, "docs-admin.png") });

    // Account recovery: "forgot password" answers 202 whether or not the address has an account;
    // for the registered user the reset mail follows.
    const forgot = await tryOut(page, "Auth", "requestPasswordReset");
    await setBody(forgot, { email });
    const asked = await execute(forgot);
    check(asked.status === 202, `requestPasswordReset via the docs UI: ${asked.status}`);
    check(await resetMailTo(email), `the password-reset mail to ${email} is in AUTHD_MAIL_DIR`);
    await setBody(forgot, { email: `nobody-${email}` });
    const unknown = await execute(forgot);
    check(unknown.status === 202, `requestPasswordReset for an unknown address: ${unknown.status}`);

    await page.locator(`#operations-Auth-logout`).scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(outDir, "docs-logout.png") });
    check(foreign.length === 0, `the page loaded nothing from elsewhere ${JSON.stringify(foreign)}`);
    check(errors.length === 0, `no script errors ${JSON.stringify(errors)}`);
    console.log(`docs ui: ok (${steps} checks; screenshots in ${outDir})`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error("docs ui: FAILED:", err);
  process.exit(1);
});
