// authd in a real browser: the reference SPA client (examples/spa/authd-client.js), its demo
// page on another origin, and authd's cookies, CSRF rules and reuse grace window, in Debian's
// headless Chromium driven by playwright-core. Run with tests/browser/run.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  errorOf, events, freePort, getMe, loginBody, newUser, openAndLogIn, refreshBody, refreshCookie, register,
  screenshot, setup, sleep, statusOf, waitForLogLine, waitForStatus,
} from './harness.mjs';

test('login, then a page reload restores the session from the refresh cookie alone', async (t) => {
  const { authd, context, demoUrl } = await setup(t, { name: 'reload-restores-session' });
  const user = newUser();
  await register(authd, user);
  const page = await openAndLogIn(context, demoUrl(), user);
  const firstSession = await page.evaluate(() => window.authd.state.sessionId);

  // Nothing of the session is kept in web storage: only the HttpOnly cookie survives a reload.
  // The one stored item is the account's device token, which logs nobody in.
  const storage = await page.evaluate(() => ({
    local: Object.keys(localStorage).map((k) => [k, localStorage.getItem(k)]),
    session: sessionStorage.length,
  }));
  assert.equal(storage.session, 0);
  assert.equal(storage.local.length, 1, JSON.stringify(storage.local));
  const [deviceKey, deviceToken] = storage.local[0];
  assert.ok(deviceKey.startsWith('authd:device:') && deviceKey.endsWith(user.email), deviceKey);
  assert.ok(deviceToken.startsWith('v1.'), 'a device token, not a session token');

  const refreshes = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/auth/refresh')) refreshes.push(r); });
  await page.reload();
  await waitForStatus(page, 'logged_in');
  await page.waitForFunction((e) => document.getElementById('me').textContent.includes(e), user.email);
  assert.equal(refreshes.length, 1, 'the reload restored the session with one refresh');
  assert.equal(await page.evaluate(() => window.authd.state.sessionId), firstSession, 'same session');
  const me = JSON.parse(await page.textContent('#me'));
  assert.equal(me.email, user.email);
  assert.equal(me.session_id, firstSession);

  // Single flight inside the tab: three concurrent refresh() calls, one request.
  refreshes.length = 0;
  const results = await page.evaluate(() => Promise.all([1, 2, 3].map(() => window.authd.refresh())));
  assert.deepEqual(results, [true, true, true]);
  assert.equal(refreshes.length, 1, 'one refresh request for three callers');
  await screenshot(page, 'reload-restores-session');
});

test('the refresh cookie is HttpOnly, Secure, SameSite=Strict and host-only', async (t) => {
  const { authd, context, demoUrl } = await setup(t, { name: 'cookie-attributes' });
  const user = newUser();
  await register(authd, user);
  const page = await context.newPage();
  const loginResponse = page.waitForResponse((r) => r.url().endsWith('/auth/login') && r.request().method() === 'POST');
  await openAndLogIn(context, demoUrl(), user, page);
  const body = await (await loginResponse).json();
  assert.equal(body.refresh_token, undefined, 'cookie delivery never puts the refresh token in the body');
  assert.ok(body.access_token);

  const cookie = await refreshCookie(context);
  assert.ok(cookie, 'the browser holds __Host-refresh_token');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/');
  assert.equal(cookie.domain, '127.0.0.1', 'host-only (no Domain attribute)');
  assert.ok(cookie.expires > Date.now() / 1000 + 86_400, `a remembered login keeps the cookie (expires ${cookie.expires})`);
  // Cookies ignore ports: the demo page (same host as authd) would see it were it not HttpOnly.
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes('refresh_token'), `document.cookie shows no refresh token: ${JSON.stringify(visible)}`);
  await screenshot(page, 'cookie-attributes');
});

test("'Keep me logged in' unticked: the refresh cookie lasts until the browser closes, also after a refresh", async (t) => {
  const { authd, context, demoUrl } = await setup(t, { name: 'remember-false' });
  const user = newUser();
  await register(authd, user);
  const page = await context.newPage();
  await page.goto(demoUrl());
  await waitForStatus(page, 'logged_out');
  await page.fill('#email', user.email);
  await page.fill('#password', user.password);
  await page.uncheck('#remember');
  const loginResponse = page.waitForResponse((r) => r.url().endsWith('/auth/login') && r.request().method() === 'POST');
  await page.click('#login');
  await waitForStatus(page, 'logged_in');
  assert.equal((await loginResponse).request().postDataJSON().remember, false);
  const cookie = await refreshCookie(context);
  assert.ok(cookie, 'the browser holds the refresh cookie');
  assert.equal(cookie.expires, -1, 'a session cookie (no Max-Age)');
  assert.equal(await page.evaluate(() => window.authd.refresh()), true);
  const after = await refreshCookie(context);
  assert.notEqual(after.value, cookie.value, 'rotated');
  assert.equal(after.expires, -1, 'still a session cookie after the refresh');
  await screenshot(page, 'remember-false');
});

test('an access token that expired unnoticed (timers asleep) is refreshed on the 401 and the call retried', async (t) => {
  const { authd, context, demoUrl } = await setup(t, {
    name: 'refresh-on-401',
    env: { AUTHD_ACCESS_TTL_SECS: '4', AUTHD_LEEWAY_SECS: '0' },
  });
  const user = newUser();
  await register(authd, user);
  const page = await context.newPage();
  await page.clock.install(); // the page's Date and timers, under the test's control
  await openAndLogIn(context, demoUrl(), user, page);
  // The laptop sleeps: the page's clock stands still (well before its refresh timer, due 3.2 s
  // after login) while the access token expires for real.
  await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 1000);
  const before = await page.evaluate(() => window.authd.accessToken);
  for (let i = 0; i < 100 && (await getMe(authd, before)).status === 200; i++) await sleep(100);
  assert.equal((await getMe(authd, before)).status, 401, 'the access token has expired');

  const calls = [];
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (r.request().method() !== 'OPTIONS' && (path === '/me' || path === '/auth/refresh')) calls.push(`${path} ${r.status()}`);
  });
  const res = await page.evaluate(async () => {
    const r = await window.authd.fetch('/me');
    return { status: r.status, body: await r.json() };
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.email, user.email);
  // (The demo page also calls /me itself when the token changes: more `/me 200` may follow.)
  assert.deepEqual(calls.slice(0, 3), ['/me 401', '/auth/refresh 200', '/me 200'], calls.join(', '));
  assert.ok(calls.slice(3).every((c) => c === '/me 200'), calls.join(', '));
  assert.notEqual(await page.evaluate(() => window.authd.accessToken), before, 'a new access token');
  assert.equal(await statusOf(page), 'logged_in');
  await screenshot(page, 'refresh-on-401');
});

// Five tabs share one session; their access tokens expire at the same moment (every tab takes
// the token the last refresh broadcast), and each tab's timer fires a refresh then.
//
// With no client lock the requests do not reach authd in the order the browser attached the
// cookie: a tab whose timer fired a few ms late already sends the successor token (rotating it
// again) while an older request carrying the first token is still on its way. Within the grace
// window authd answers that late request with the session's current token, so the shared cookie
// jar ends up holding the token that works (this run failed about one time in ten while authd
// only replayed a successor that was still unused).
for (const [mode, query, options] of [
  ['single-flight with Web Locks', {}, {}],
  ['single-flight with the BroadcastChannel fallback', { webLocks: 'off' }, {}],
  ['no client lock: the grace window alone', { singleFlight: 'off' }, {}],
]) {
  test(`five tabs refresh at the same moment and stay logged in (${mode})`, options, async (t) => {
    const ttl = 6;
    const slug = `five-tabs-${query.webLocks ? 'broadcast' : query.singleFlight ? 'no-lock' : 'web-locks'}`;
    const { authd, context, demoUrl } = await setup(t, {
      name: slug,
      env: { AUTHD_ACCESS_TTL_SECS: String(ttl), AUTHD_LEEWAY_SECS: '0' },
    });
    const user = newUser();
    await register(authd, user);
    // Another device of the same user reads the security events, whatever becomes of the tabs.
    let observerRt = (await loginBody(authd, user)).refresh_token;
    const observedEvents = async () => {
      const fresh = await refreshBody(authd, observerRt);
      observerRt = fresh.refresh_token;
      return (await events(authd, fresh.access_token)).map((e) => e.kind);
    };
    const url = demoUrl(query);
    const pages = [await openAndLogIn(context, url, user)];
    for (let i = 1; i < 5; i++) {
      const p = await context.newPage();
      await p.goto(url);
      await waitForStatus(p, 'logged_in');
      pages.push(p);
    }
    // All five hold the same token, so they expire together.
    const same = async () => new Set(await Promise.all(pages.map((p) => p.evaluate(() => window.authd.accessToken)))).size === 1;
    for (let i = 0; i < 50 && !(await same()); i++) await sleep(100);
    assert.ok(await same(), 'the five tabs share one access token');
    const first = await pages[0].evaluate(() => ({ ...window.authd.state, token: window.authd.accessToken }));

    const refreshes = [];
    const answers = [];
    context.on('request', (r) => {
      if (r.method() === 'POST' && r.url().endsWith('/auth/refresh')) refreshes.push(Date.now());
    });
    context.on('response', (r) => {
      if (r.request().method() === 'POST' && r.url().endsWith('/auth/refresh')) answers.push(`${Date.now() % 100000}:${r.status()}`);
    });
    t.after(() => t.diagnostic(`refresh answers (ms:status): ${answers.join(' ')}`));
    // Two expiries: each one fires five timers at once.
    const cycles = 2;
    await sleep(first.expiresAt - Date.now() + (cycles - 1) * ttl * 1000 + 600);

    try {
      for (const [i, p] of pages.entries()) {
        assert.equal(await statusOf(p), 'logged_in', `tab ${i + 1} is still logged in`);
        const me = await p.evaluate(async () => {
          const res = await window.authd.fetch('/me');
          return { status: res.status, body: await res.json() };
        });
        assert.equal(me.status, 200, `tab ${i + 1}: /me with its current token`);
        assert.equal(me.body.session_id, first.sessionId, `tab ${i + 1}: still the same session`);
      }
    } catch (e) {
      t.diagnostic(`security events: ${(await observedEvents().catch((err) => [err.message])).join(', ')}`);
      throw e;
    }
    // The tokens really expired (no leeway): the first one is refused now.
    assert.equal((await getMe(authd, first.token)).status, 401, 'the first access token has expired');

    const kinds = await observedEvents();
    assert.ok(!kinds.includes('refresh_token_reused'), `no reuse recorded: ${kinds.join(', ')}`);
    assert.ok(!kinds.includes('session_revoked'), `no revocation recorded: ${kinds.join(', ')}`);

    // How many refresh requests the browser sent per expiry, grouped by burst.
    const bursts = [];
    for (const at of refreshes) {
      if (bursts.length && at - bursts.at(-1).last < 1000) { bursts.at(-1).n++; bursts.at(-1).last = at; }
      else bursts.push({ n: 1, last: at });
    }
    const perExpiry = bursts.map((b) => b.n);
    t.diagnostic(`refresh requests per expiry: ${JSON.stringify(perExpiry)}`);
    assert.ok(perExpiry.length >= cycles, `at least ${cycles} expiries were refreshed: ${JSON.stringify(perExpiry)}`);
    if (query.singleFlight === 'off') {
      assert.ok(perExpiry.some((n) => n >= 3), `the tabs raced (several refreshes of one token): ${JSON.stringify(perExpiry)}`);
    } else {
      assert.ok(perExpiry.every((n) => n === 1), `one refresh per expiry across five tabs: ${JSON.stringify(perExpiry)}`);
    }
    for (const [i, p] of pages.entries()) {
      await p.bringToFront();
      await screenshot(p, `${slug}-tab${i + 1}`);
    }
  });
}

test('logout in one tab logs every tab out at once, clears the cookie and kills the access token', async (t) => {
  const { authd, context, demoUrl } = await setup(t, { name: 'logout-all-tabs' });
  const user = newUser();
  await register(authd, user);
  const url = demoUrl();
  const pages = [await openAndLogIn(context, url, user)];
  for (let i = 1; i < 3; i++) {
    const p = await context.newPage();
    await p.goto(url);
    await waitForStatus(p, 'logged_in');
    pages.push(p);
  }
  const accessToken = await pages[2].evaluate(() => window.authd.accessToken);
  const oldCookie = await refreshCookie(context);
  assert.equal((await getMe(authd, accessToken)).status, 200);

  const logoutResponse = pages[0].waitForResponse((r) => r.url().endsWith('/auth/logout'));
  await pages[0].bringToFront();
  const started = Date.now();
  await pages[0].click('#logout');
  // "At once": the other tabs hear it on the BroadcastChannel, not at their next refresh.
  await Promise.all(pages.map((p) => waitForStatus(p, 'logged_out', 2000)));
  const elapsed = Date.now() - started;
  t.diagnostic(`every tab showed logged out ${elapsed} ms after the click`);
  for (const p of pages) assert.equal(await p.evaluate(() => window.authd.accessToken), null);

  assert.equal((await logoutResponse).status(), 204);
  assert.equal(await refreshCookie(context), undefined, 'the refresh cookie is gone from the jar');
  const me = await getMe(authd, accessToken);
  assert.equal(me.status, 401, 'the old access token is rejected by /me');
  assert.equal((await me.json()).error, 'invalid_token');
  // The server ended the session: its refresh token is dead too.
  const replay = await fetch(`${authd.url}/auth/refresh`, {
    method: 'POST',
    headers: { cookie: `${oldCookie.name}=${oldCookie.value}`, 'x-requested-with': 'test' },
  });
  assert.equal(replay.status, 401);
  // A reload stays logged out.
  await pages[1].reload();
  await waitForStatus(pages[1], 'logged_out');
  await screenshot(pages[0], 'logout-all-tabs-tab1');
  await screenshot(pages[1], 'logout-all-tabs-tab2');
});

// What a page on an origin authd does not allow can try with fetch. Same-site (another port of
// 127.0.0.1: the browser sends the SameSite=Strict cookie along) and cross-site (localhost).
async function foreignAttempts(page, authdUrl) {
  return page.evaluate(async (authdUrl) => {
    const attempt = async (label, path, init) => {
      try {
        const res = await fetch(authdUrl + path, { method: 'POST', credentials: 'include', ...init });
        window.report(`${label}: ${res.type} response ${res.status}`);
        return { label, readable: res.type !== 'opaque', type: res.type, status: res.status };
      } catch (e) {
        window.report(`${label}: blocked (${e.name})`);
        return { label, readable: false, type: 'error' };
      }
    };
    return [
      // What a script would do to obtain a fresh access token: the CORS preflight fails.
      await attempt('refresh with X-Requested-With', '/auth/refresh', { headers: { 'X-Requested-With': 'x' } }),
      // "Simple" requests skip the preflight; authd refuses them without X-Requested-With.
      await attempt('refresh, simple request', '/auth/refresh', {}),
      await attempt('refresh, no-cors', '/auth/refresh', { mode: 'no-cors' }),
      await attempt('logout with X-Requested-With', '/auth/logout', { headers: { 'X-Requested-With': 'x' } }),
    ];
  }, authdUrl);
}

test('a page on an origin authd does not allow can neither refresh nor log out', async (t) => {
  const { authd, context, demoUrl, third } = await setup(t, { name: 'foreign-origin', thirdParty: true });
  const user = newUser();
  await register(authd, user);
  const app = await openAndLogIn(context, demoUrl(), user);
  const before = await refreshCookie(context);
  const accessToken = await app.evaluate(() => window.authd.accessToken);

  const answered = [];
  context.on('response', (r) => {
    if (r.url().startsWith(authd.url) && r.request().frame()?.page() !== app) {
      answered.push(`${r.request().method()} ${new URL(r.url()).pathname} -> ${r.status()}`);
    }
  });
  for (const [site, origin] of [['same-site', third.url], ['cross-site', third.url.replace('127.0.0.1', 'localhost')]]) {
    const evil = await context.newPage();
    await evil.goto(`${origin}/`);
    const results = await foreignAttempts(evil, authd.url);
    for (const r of results) {
      assert.equal(r.readable, false, `${site} ${r.label}: the page cannot read authd's answer (${r.type})`);
    }
    await screenshot(evil, `foreign-origin-${site}`);
    await evil.close();
  }
  t.diagnostic(`authd's answers the foreign pages could have caused: ${JSON.stringify(answered)}`);
  assert.ok(answered.every((line) => !/-> 2\d\d$/.test(line)), `nothing succeeded: ${JSON.stringify(answered)}`);

  // The session survives: the cookie was neither rotated nor cleared, and it still refreshes.
  const after = await refreshCookie(context);
  assert.ok(after, 'the refresh cookie is still in the jar');
  assert.equal(after.value, before.value, 'the refresh cookie was not rotated by the foreign pages');
  assert.equal((await getMe(authd, accessToken)).status, 200, 'the access token still works');
  await app.bringToFront();
  assert.equal(await app.evaluate(() => window.authd.refresh()), true, 'the app can still refresh');
  assert.equal(await statusOf(app), 'logged_in');
  await screenshot(app, 'foreign-origin-app');
});

// A forged logout (a plain HTML form on any site, or a no-cors fetch from a same-site origin) is
// refused, and its answer must not carry the Set-Cookie that expires the refresh cookie either:
// Chromium applies a Set-Cookie even on such answers, so before authd stopped sending it to
// foreign pages (a deliberate exception to "a logout answer expires the cookie", see
// docs/api.md#logout), any site could drop the browser's session.
test('a forged logout (form POST, no-cors fetch) from a foreign origin leaves the refresh cookie alone',
  async (t) => {
    const { authd, context, demoUrl, third } = await setup(t, { name: 'foreign-origin-forged-logout', thirdParty: true });
    const user = newUser();
    await register(authd, user);
    const app = await openAndLogIn(context, demoUrl(), user);
    const accessToken = await app.evaluate(() => window.authd.accessToken);
    const lost = [];
    for (const [site, origin] of [['same-site', third.url], ['cross-site', third.url.replace('127.0.0.1', 'localhost')]]) {
      for (const how of ['no-cors fetch', 'form POST']) {
        if (!(await refreshCookie(context))) {
          await context.clearCookies();
          await app.reload();
          await openAndLogIn(context, demoUrl(), user, app);
        }
        const evil = await context.newPage();
        await evil.goto(`${origin}/`);
        const answer = evil.waitForResponse((r) => r.url().endsWith('/auth/logout')).catch(() => null);
        if (how === 'form POST') {
          await evil.evaluate((u) => {
            const f = Object.assign(document.createElement('form'), { method: 'POST', action: `${u}/auth/logout` });
            document.body.append(f);
            f.submit();
          }, authd.url);
        } else {
          await evil.evaluate((u) => fetch(`${u}/auth/logout`, { method: 'POST', mode: 'no-cors', credentials: 'include' }), authd.url);
        }
        const res = await Promise.race([answer, sleep(3000)]);
        await sleep(200);
        await screenshot(evil, `foreign-origin-forged-logout-${site}-${how.replace(/\W+/g, '-')}`);
        const line = `${site} ${how}: authd answered ${res ? res.status() : '?'}, cookie ${(await refreshCookie(context)) ? 'kept' : 'GONE'}`;
        t.diagnostic(line);
        if (!(await refreshCookie(context))) lost.push(line);
        await evil.close();
      }
    }
    assert.equal((await getMe(authd, accessToken)).status, 200, 'the server session was not ended');
    assert.deepEqual(lost, [], 'no forged logout dropped the refresh cookie');
  });

test('a stolen refresh token used outside the browser revokes the session at the next browser refresh', async (t) => {
  const grace = 2;
  const { authd, context, demoUrl } = await setup(t, {
    name: 'stolen-refresh-token',
    env: { AUTHD_REUSE_GRACE_SECS: String(grace) },
  });
  const user = newUser();
  await register(authd, user);
  const otherDevice = await loginBody(authd, user); // a second session of the same user
  const page = await openAndLogIn(context, demoUrl(), user);
  const browserSession = await page.evaluate(() => window.authd.state.sessionId);

  // The thief replays the cookie's value from a script outside the browser.
  const stolen = await refreshCookie(context);
  const theft = await fetch(`${authd.url}/auth/refresh`, {
    method: 'POST',
    headers: { cookie: `${stolen.name}=${stolen.value}`, 'x-requested-with': 'curl' },
  });
  assert.equal(theft.status, 200, 'the thief got tokens');
  const thief = await theft.json();
  const thiefCookie = theft.headers.getSetCookie().find((c) => c.startsWith(`${stolen.name}=`));
  assert.ok(thiefCookie, 'and a rotated refresh token');
  assert.equal((await getMe(authd, thief.access_token)).status, 200);

  // Past the grace window, the browser presents the token the thief already rotated.
  await sleep(grace * 1000 + 700);
  const refreshed = await page.evaluate(() => window.authd.refresh());
  assert.equal(refreshed, false, 'the browser refresh fails');
  await waitForStatus(page, 'logged_out');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'logged out');

  // The whole session is revoked: the thief's tokens die with it.
  assert.equal((await getMe(authd, thief.access_token)).status, 401, "the thief's access token is rejected");
  const thiefRetry = await fetch(`${authd.url}/auth/refresh`, {
    method: 'POST',
    headers: { cookie: thiefCookie.split(';')[0], 'x-requested-with': 'curl' },
  });
  assert.equal(thiefRetry.status, 401, "the thief's refresh token is dead");
  assert.equal((await thiefRetry.json()).error, 'invalid_refresh_token');
  assert.equal((await errorOf(page)).code, '', 'a revoked session is a plain logout, not a cookie problem');

  // The user's other session is untouched and sees the event.
  assert.equal((await getMe(authd, otherDevice.access_token)).status, 200);
  const reused = (await events(authd, otherDevice.access_token)).filter((e) => e.kind === 'refresh_token_reused');
  assert.equal(reused.length, 1, 'one refresh_token_reused event');
  assert.equal(reused[0].session_id, browserSession, 'about the browser session');
  assert.ok(reused[0].at);
  await screenshot(page, 'stolen-refresh-token');
});

// The set-up mistakes the demo page must name instead of hanging or lying: a page origin missing
// from AUTHD_ALLOWED_ORIGINS (the browser tells the page only "Failed to fetch"), and a page on
// another site than authd (the browser drops the SameSite=Strict refresh cookie).
const waitForErrorCode = (page, code, timeout = 10_000) =>
  page.waitForFunction((c) => document.getElementById('error').dataset.code === c, code, { timeout });

test("a page whose origin is not in AUTHD_ALLOWED_ORIGINS says so instead of 'checking session…', and authd's log names the origin",
  async (t) => {
    const { authd, demo, context, demoUrl } = await setup(t, {
      name: 'origin-not-allowed',
      allowedOrigins: () => ['https://app.example.com'],
    });
    const page = await context.newPage();
    await page.goto(demoUrl());
    await waitForStatus(page, 'logged_out');
    await waitForErrorCode(page, 'cors_refused');
    assert.equal(await page.textContent('#status'), 'logged out');
    const shown = (await errorOf(page)).text;
    assert.ok(shown.includes(`refused this page's origin ${demo.url} (CORS): add it to AUTHD_ALLOWED_ORIGINS`), shown);
    assert.ok(shown.includes(authd.url), `names authd's address: ${shown}`);
    await screenshot(page, 'origin-not-allowed');

    // A login attempt from this page meets the same diagnosis.
    const login = await page.evaluate(() => window.authd.login('a@example.com', 'whatever-password').then(
      () => null,
      (e) => ({ code: e.code, status: e.status })));
    assert.deepEqual(login, { code: 'cors_refused', status: 0 });

    // authd explains its refusal of the preflight (instead of a bare `OPTIONS unmatched 405`).
    const line = await waitForLogLine(authd, (l) => l.includes('CORS preflight refused'));
    assert.match(line, /\bWARN\b/, line);
    assert.ok(line.includes('not in AUTHD_ALLOWED_ORIGINS'), line);
    assert.ok(line.includes(`origin=${demo.url}`), `the line names the page's origin: ${line}`);

    // A failed fetch is not always CORS: with nothing listening at ?authd=, the page says that.
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const other = await context.newPage();
    await other.goto(`${demo.url}/?${new URLSearchParams({ authd: nowhere })}`);
    await waitForStatus(other, 'logged_out');
    await waitForErrorCode(other, 'unreachable');
    const unreachable = (await errorOf(other)).text;
    assert.ok(unreachable.includes(`authd at ${nowhere} is unreachable`), unreachable);
    assert.ok(!unreachable.includes('AUTHD_ALLOWED_ORIGINS'), unreachable);
    await screenshot(other, 'origin-not-allowed-unreachable');
  });

test("a page on localhost with authd on 127.0.0.1 refuses the login with a same-site message, not a 'logged in' that a reload loses",
  async (t) => {
    const { authd, demo, context, demoUrl } = await setup(t, { name: 'cross-site-cookie', demoHost: 'localhost' });
    assert.match(demo.url, /^http:\/\/localhost:/);
    const user = newUser();
    await register(authd, user);
    const page = await context.newPage();
    const logins = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/auth/login')) logins.push(r.url()); });
    await page.goto(demoUrl());
    await waitForStatus(page, 'logged_out'); // the origin is allowed: restore() ran (no cookie)
    assert.deepEqual(await errorOf(page), { text: '', code: '' }, 'nothing wrong before the login');

    await page.fill('#email', user.email);
    await page.fill('#password', user.password);
    await page.click('#login');
    await waitForErrorCode(page, 'cookie_not_same_site');
    const shown = (await errorOf(page)).text;
    assert.ok(shown.includes(`this page (${demo.url}) and authd (${authd.url}) are not on the same site`), shown);
    assert.ok(shown.includes('both on localhost or both on 127.0.0.1'), shown);
    assert.equal(await statusOf(page), 'logged_out');
    assert.equal(await page.textContent('#status'), 'logged out');
    assert.deepEqual(logins, [], 'the password was not sent for a session the browser could not keep');
    await screenshot(page, 'cross-site-cookie');

    // What the client spares the user: authd accepts the login, but the browser drops the cookie.
    const raw = await page.evaluate(async ({ url, user }) => {
      const res = await fetch(`${url}/auth/login`, {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'test' },
        body: JSON.stringify({ ...user, delivery: 'cookie' }),
      });
      return res.status;
    }, { url: authd.url, user });
    assert.equal(raw, 200, 'authd logs the user in');
    assert.equal(await refreshCookie(context), undefined, 'the browser did not keep the refresh cookie');
  });

test('a refresh cookie that did not stick is reported as such at the next refresh, not as a silent logout', async (t) => {
  const { authd, context, demoUrl } = await setup(t, { name: 'cookie-not-stored' });
  const user = newUser();
  await register(authd, user);
  const page = await openAndLogIn(context, demoUrl(), user);
  const other = await context.newPage(); // a second tab hears the logout and the reason
  await other.goto(demoUrl());
  await waitForStatus(other, 'logged_in');
  // As when the browser drops the cookie on its own (blocked cookies, a public-suffix site).
  await context.clearCookies();
  assert.equal(await page.evaluate(() => window.authd.refresh()), false, 'the refresh fails');
  for (const p of [page, other]) {
    await waitForStatus(p, 'logged_out');
    await waitForErrorCode(p, 'cookie_not_stored');
    assert.match((await errorOf(p)).text, /^the refresh cookie did not stick/);
  }
  await screenshot(page, 'cookie-not-stored');
});
