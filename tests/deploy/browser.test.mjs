// The reference SPA (examples/spa) in a real browser against the deployment: Debian's headless
// Chromium (driven by playwright-core from tests/browser/node_modules) opens the page on its own
// HTTPS origin (nginx, DEPLOY_SPA) and talks to authd through nginx's TLS (DEPLOY_BASE), which
// spreads the requests over three instances. Started by tests/deploy/run.sh (DEPLOY_* variables).
//
// TLS stays real: Chromium trusts the test CA's server key through
// --ignore-certificate-errors-spki-list (the key's SPKI hash, DEPLOY_SPKI), and only that key; a
// control run without the flag shows the certificate is refused otherwise.
//
// authd's access tokens live 300 s here (run.sh does not set AUTHD_ACCESS_TTL_SECS) and the
// client's refresh margin is capped at a fifth of that, so no `margin` makes a tab refresh within
// seconds: the tabs' clocks (Playwright's fake timers, context-wide) are moved forward to their
// refresh timers instead. The refreshes themselves are real requests through nginx.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = process.env;
for (const name of ['DEPLOY_BASE', 'DEPLOY_SPA', 'DEPLOY_SPKI', 'DEPLOY_WORK', 'DEPLOY_PORTS']) {
  if (!env[name]) throw new Error(`${name} is not set: run this file through tests/deploy/run.sh`);
}
const BASE = env.DEPLOY_BASE;
const SPA = env.DEPLOY_SPA;
const SPKI = env.DEPLOY_SPKI;
const PORTS = env.DEPLOY_PORTS.split(',').map(Number);
const ACCESS_LOG = join(env.DEPLOY_WORK, 'nginx', 'access.log');
const ARTIFACTS = env.DEPLOY_ARTIFACTS ?? join(env.DEPLOY_WORK, 'logs');
const CHROMIUM = env.CHROMIUM ?? '/usr/bin/chromium';
mkdirSync(ARTIFACTS, { recursive: true });

// playwright-core is installed for the browser tests (run.sh runs npm ci there): never a
// Playwright browser download, Debian's chromium instead.
const { chromium } = createRequire(new URL('../browser/package.json', import.meta.url))('playwright-core');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const TABS = 5;
const ROUNDS = 3;
const MARGIN_SECS = 60; // the most the client takes with 300 s tokens (a fifth of the lifetime)

// ---- nginx's access log ---------------------------------------------------------------------

const logSize = () => (existsSync(ACCESS_LOG) ? statSync(ACCESS_LOG).size : 0);
/** The upstream (last one tried) of each `POST /auth/refresh` answered 200 after byte `from`. */
function refreshUpstreams(from) {
  const text = readFileSync(ACCESS_LOG).subarray(from).toString('utf8');
  const out = [];
  for (const line of text.split('\n')) {
    const m = line.match(/"POST \/auth\/refresh[ ?][^"]*" 200 upstream=(\S+(?:, \S+)*)/);
    if (m) out.push(m[1].split(', ').at(-1));
  }
  return out;
}
const tally = (xs) => xs.reduce((acc, x) => ({ ...acc, [x]: (acc[x] ?? 0) + 1 }), {});

// ---- the page -------------------------------------------------------------------------------

const waitForStatus = (page, status, timeout = 10_000) =>
  page.waitForFunction((s) => document.body.dataset.status === s, status, { timeout });
const stateOf = (page) => page.evaluate(() => ({
  ...window.authd.state,
  token: window.authd.accessToken,
  error: document.getElementById('error').textContent,
}));
const refreshCookie = async (context) =>
  (await context.cookies()).find((c) => c.name === '__Host-refresh_token' && c.domain === '127.0.0.1');
/** A GET (or `init`), its body read: an unread body holds the connection, and the test process, open. */
async function get(url, init = {}) {
  const res = await fetch(url, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}
const meDirect = (port, token) => get(`http://127.0.0.1:${port}/me`, { headers: { authorization: `Bearer ${token}` } });

async function screenshots(context, prefix) {
  for (const [i, page] of context.pages().entries()) {
    if (page.url() === 'about:blank') continue;
    await page.screenshot({ path: join(ARTIFACTS, `${prefix}-tab${i + 1}.png`), fullPage: true }).catch(() => {});
  }
}

test('the SPA over HTTPS: login, five tabs refreshing across three instances, reload, logout everywhere', async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (tests/browser/run.sh installs Debian's chromium)`);
  const t0 = Date.now();
  const timings = {};
  const mark = (name) => { timings[name] = Date.now() - t0; };
  const logFrom = logSize();

  const profile = mkdtempSync(join(tmpdir(), 'authd-deploy-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 900, height: 640 },
    args: [...FLAGS, `--ignore-certificate-errors-spki-list=${SPKI}`],
  });
  const logs = [];
  context.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  context.on('weberror', (e) => logs.push(`[pageerror] ${e.error()}`));
  // Every refresh and login answer the browser got: status, and the access token it carried.
  const answers = [];
  context.on('response', async (r) => {
    const path = new URL(r.url()).pathname;
    if (r.request().method() !== 'POST' || !['/auth/refresh', '/auth/login', '/auth/logout'].includes(path)) return;
    const entry = { at: Date.now() - t0, path, status: r.status(), token: null };
    answers.push(entry);
    if (r.status() === 200) entry.token = (await r.json().catch(() => ({}))).access_token ?? null;
  });
  let failed = true;
  t.after(async () => {
    await screenshots(context, failed ? 'browser-failure' : 'browser-end');
    writeFileSync(join(ARTIFACTS, 'browser-console.log'), `${logs.join('\n')}\n`);
    writeFileSync(join(ARTIFACTS, 'browser-answers.json'), JSON.stringify(
      answers.map(({ token, ...a }) => ({ ...a, token: token && `${token.slice(0, 12)}…` })), null, 1));
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  });
  // The tabs' timers run on a clock the test can move forward (time flows normally otherwise).
  await context.clock.install();

  // 1. Register (node, through nginx), log in through the page's form.
  const user = { email: `browser-${process.pid}-${Date.now()}@example.com`, password: `deploy browser password ${Math.random()}` };
  const reg = await get(`${BASE}/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(user),
  });
  assert.equal(reg.status, 201, `register: ${reg.text}`);
  const url = `${SPA}/?${new URLSearchParams({ authd: BASE, margin: String(MARGIN_SECS) })}`;
  const pages = [context.pages()[0] ?? (await context.newPage())];
  // What Chromium itself makes of the connection (the lock icon's state).
  const security = [];
  const cdp = await context.newCDPSession(pages[0]);
  cdp.on('Security.visibleSecurityStateChanged', (e) => security.push(e.visibleSecurityState));
  await cdp.send('Security.enable');
  const nav = await pages[0].goto(url);
  // Real TLS with the test CA's certificate, not an error page or plain http.
  assert.equal(nav.status(), 200);
  const tls = await nav.securityDetails();
  assert.ok(tls, 'the page came over TLS');
  assert.equal(tls.issuer, 'authd deploy test CA', JSON.stringify(tls));
  assert.equal(tls.subjectName, '127.0.0.1', JSON.stringify(tls));
  assert.ok(nav.headers()['strict-transport-security'], 'the browser got HSTS with the page');
  assert.deepEqual(await pages[0].evaluate(() => ({ secure: window.isSecureContext, protocol: location.protocol })),
    { secure: true, protocol: 'https:' });
  // (A module script the server labels other than JavaScript is refused under nosniff.)
  await pages[0].waitForFunction(() => window.authd, null, { timeout: 5000 })
    .catch(() => { throw new Error(`the page's client script did not run: ${logs.join(' | ')}`); });
  await waitForStatus(pages[0], 'logged_out');
  for (let i = 0; i < 40 && !security.length; i++) await sleep(50);
  const shown = security.at(-1);
  assert.equal(shown?.securityState, 'secure', `Chromium's verdict on the page: ${JSON.stringify({ ...shown, certificateSecurityState: { ...shown?.certificateSecurityState, certificate: '…' } })}`);
  assert.equal(shown.certificateSecurityState.issuer, 'authd deploy test CA');
  await cdp.detach();
  await pages[0].fill('#email', user.email);
  await pages[0].fill('#password', user.password);
  await pages[0].click('#login');
  await waitForStatus(pages[0], 'logged_in');
  await pages[0].waitForFunction((e) => document.getElementById('me').textContent.includes(e), user.email);
  const cookie = await refreshCookie(context);
  assert.ok(cookie, `__Host-refresh_token is in the jar for 127.0.0.1: ${JSON.stringify((await context.cookies()).map((c) => [c.name, c.domain]))}`);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/');
  assert.ok(!(await pages[0].evaluate(() => document.cookie)).includes('refresh_token'), 'not visible to the page');
  const session = (await stateOf(pages[0])).sessionId;
  assert.ok(session);
  mark('1 logged in');

  // 2. Five tabs share the session; three refresh rounds fired by the tabs' own timers.
  for (let i = 1; i < TABS; i++) {
    const p = await context.newPage();
    await p.goto(url);
    await waitForStatus(p, 'logged_in');
    pages.push(p);
  }
  const states = () => Promise.all(pages.map(stateOf));
  const shared = async () => {
    const s = await states();
    return s.every((x) => x.status === 'logged_in' && x.token && x.token === s[0].token) ? s[0] : null;
  };
  let current = null;
  for (let i = 0; i < 50 && !(current = await shared()); i++) await sleep(100);
  assert.ok(current, `the five tabs share one access token: ${JSON.stringify((await states()).map((s) => [s.status, s.token?.slice(-8)]))}`);
  assert.equal(current.sessionId, session);
  mark('2a five tabs logged in');

  const roundsFrom = logSize();
  const answersBefore = answers.length;
  const perRound = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const before = current;
    const at = logSize();
    // To just past the refresh timer (margin before expiry), on every tab's clock at once.
    const due = await pages[0].evaluate((m) => window.authd.state.expiresAt - m * 1000 - Date.now(), MARGIN_SECS);
    await context.clock.fastForward(Math.max(0, due) + 1000);
    let after = null;
    for (let i = 0; i < 100; i++) {
      after = await shared();
      if (after && after.token !== before.token && after.expiresAt > before.expiresAt) break;
      after = null;
      await sleep(100);
    }
    const s = await states();
    assert.ok(after, `round ${round}: every tab took a new token: ${JSON.stringify(s.map((x) => [x.status, x.token?.slice(-8), x.error]))}`);
    for (const [i, x] of s.entries()) {
      assert.equal(x.status, 'logged_in', `round ${round}: tab ${i + 1} stays logged in`);
      assert.equal(x.sessionId, session, `round ${round}: tab ${i + 1} same session`);
      assert.equal(x.error, '', `round ${round}: tab ${i + 1} shows no error`);
    }
    await sleep(300); // nginx writes the log line when the answer is sent
    perRound.push(refreshUpstreams(at));
    current = after;
  }
  mark('2b refresh rounds');
  const roundAnswers = answers.slice(answersBefore);
  assert.ok(roundAnswers.length >= ROUNDS, `the tabs refreshed: ${JSON.stringify(roundAnswers)}`);
  assert.ok(roundAnswers.every((a) => a.path === '/auth/refresh' && a.status === 200), `every refresh answered 200: ${JSON.stringify(roundAnswers.map((a) => `${a.path} ${a.status}`))}`);
  const inRounds = refreshUpstreams(roundsFrom);
  assert.ok(inRounds.length >= ROUNDS, `nginx logged the rounds' refreshes: ${JSON.stringify(perRound)}`);
  // (nginx's round robin; each round's CORS preflight shifts it, so rounds in a row differ.)
  assert.ok(new Set(inRounds).size >= 2, `the rounds' refreshes were answered by at least two instances: ${JSON.stringify(perRound)}`);
  const sinceStart = refreshUpstreams(logFrom);
  const upstreams = new Set(sinceStart);
  t.diagnostic(`refresh 200s per upstream since the test started: ${JSON.stringify(tally(sinceStart))}; per round: ${JSON.stringify(perRound)}`);
  assert.ok(upstreams.size >= 2, `refreshes were answered by at least two instances: ${JSON.stringify(tally(sinceStart))}`);
  for (const [i, p] of pages.entries()) {
    const me = await p.evaluate(async () => {
      const res = await window.authd.fetch('/me');
      return { status: res.status, body: await res.json() };
    });
    assert.equal(me.status, 200, `tab ${i + 1}: /me with its token after the rounds`);
    assert.equal(me.body.session_id, session, `tab ${i + 1}: the same session`);
  }
  mark('2c /me from every tab');
  await screenshots(context, 'browser-logged-in');

  // 3. A reload restores the session from the cookie alone.
  const reloaded = pages[2];
  const restoreRefresh = reloaded.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/auth/refresh'));
  await reloaded.reload();
  assert.equal((await restoreRefresh).status(), 200, 'the reload refreshed from the cookie');
  await waitForStatus(reloaded, 'logged_in');
  await reloaded.waitForFunction((e) => document.getElementById('me').textContent.includes(e), user.email);
  assert.equal((await stateOf(reloaded)).sessionId, session, 'the reload restored the same session');
  mark('3 reload');

  // 4. Logout in one tab: every tab logs out, the cookie goes, and the tokens die everywhere.
  await sleep(200); // the restore's token message reaches the other tabs
  const held = new Set((await states()).map((s) => s.token).filter(Boolean));
  const lastAnswered = answers.filter((a) => a.token).at(-1)?.token;
  assert.ok(lastAnswered, 'a refresh answer carried an access token');
  assert.ok(held.has(lastAnswered), 'a tab holds the last access token authd handed out');
  for (const token of held) {
    for (const port of PORTS) assert.equal((await meDirect(port, token)).status, 200, `before the logout: /me on :${port}`);
  }
  const logoutAnswer = pages[0].waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/auth/logout'));
  await pages[0].bringToFront();
  const clicked = Date.now();
  await pages[0].click('#logout');
  await Promise.all(pages.map((p, i) => waitForStatus(p, 'logged_out', 3000)
    .catch((e) => { throw new Error(`tab ${i + 1} did not log out within 3 s: ${e.message}`); })));
  const allOut = Date.now() - clicked;
  assert.equal((await logoutAnswer).status(), 204, 'authd ended the session');
  for (const p of pages) assert.equal(await p.evaluate(() => window.authd.accessToken), null);
  let left = await refreshCookie(context);
  for (let i = 0; i < 20 && left; i++) { await sleep(50); left = await refreshCookie(context); }
  assert.equal(left, undefined, 'the refresh cookie is gone from the jar');
  const refusedAfter = {};
  for (const port of PORTS) {
    for (const token of held) {
      let res;
      const start = Date.now();
      for (let i = 0; i < 60; i++) {
        res = await meDirect(port, token);
        if (res.status === 401) break;
        await sleep(50);
      }
      assert.equal(res.status, 401, `the old access token is refused by the instance on :${port}`);
      assert.equal(res.json?.error, 'invalid_token');
      refusedAfter[port] = Math.max(refusedAfter[port] ?? 0, Date.now() - start);
    }
  }
  t.diagnostic(`every tab logged out ${allOut} ms after the click; tokens held: ${held.size}; ms until 401 per instance (after the tabs were out): ${JSON.stringify(refusedAfter)}`);
  await pages[1].reload();
  await waitForStatus(pages[1], 'logged_out');
  mark('4 logout');
  t.diagnostic(`timings (ms since start): ${JSON.stringify(timings)}`);
  failed = false;
});

test('security headers: the SPA origin and authd through nginx', async () => {
  const spa = await get(`${SPA}/`);
  assert.equal(spa.status, 200);
  const h = spa.headers;
  assert.match(h.get('strict-transport-security') ?? '', /max-age=\d+/, 'HSTS on the SPA');
  assert.equal(h.get('x-content-type-options'), 'nosniff');
  assert.equal(h.get('referrer-policy'), 'no-referrer');
  // Framing refused both ways (old browsers read X-Frame-Options, new ones the CSP).
  assert.equal(h.get('x-frame-options'), 'DENY');
  assert.match(h.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  // Under nosniff the browser runs a module script only when it is labelled JavaScript.
  const script = await get(`${SPA}/authd-client.js`);
  assert.equal(script.status, 200);
  assert.equal(script.headers.get('x-content-type-options'), 'nosniff');
  assert.match(script.headers.get('content-type') ?? '', /^(text|application)\/javascript\b/,
    `authd-client.js must be served as JavaScript (nosniff), got ${script.headers.get('content-type')}`);
  const healthz = await get(`${BASE}/healthz`);
  assert.equal(healthz.status, 200);
  assert.match(healthz.headers.get('strict-transport-security') ?? '', /max-age=\d+/, 'HSTS on authd');
  // Also on authd's error answers (nginx adds it `always`).
  const refused = await get(`${BASE}/me`);
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('strict-transport-security') ?? '', /max-age=\d+/, 'HSTS on a 401');
});

test('control: without the SPKI flag Chromium refuses the test certificate', async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  t.after(() => browser.close().catch(() => {}));
  const page = await browser.newPage();
  await assert.rejects(page.goto(`${SPA}/`), /ERR_CERT_AUTHORITY_INVALID/);
});
