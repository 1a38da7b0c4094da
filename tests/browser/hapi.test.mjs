// The question authd started from, in a real browser: "how do I really log a JWT out?", asked
// by someone whose hapi API takes the token as a bearer header. The SPA demo (examples/spa)
// logs in against authd and calls the hapi example (examples/hapi) on a third origin through
// `auth.fetch`; after the logout, the API's routes behind the verifier kit refuse the old
// access token within a second, while its plain JWT routes keep accepting it (the "before").
// And a 401 from the API makes `auth.fetch` refresh once and retry once, never more. Run with
// tests/browser/run.sh, which installs the example (examples/hapi/setup.sh).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  artifacts, createServiceKey, freePort, getMe, killOnExit, newUser, openAndLogIn, register, repoRoot,
  screenshot, setup, sleep, statusOf,
} from './harness.mjs';

const hapiDir = join(repoRoot, 'examples', 'hapi');

/**
 * Starts the hapi example (`node server.mjs`) on a free port with a service key of its own,
 * allowing CORS from the demo page; resolves once it listens, which the kit allows only after
 * loading authd's keys and revocation snapshot. Stopped by `t.after`; its output goes to
 * target/browser-artifacts/<name>.hapi.log.
 */
async function startHapi(t, { name, authd, demo, env = {} }) {
  const serviceKey = await createServiceKey(authd, { name, scope: 'revocations:read' });
  const child = spawn(process.execPath, ['server.mjs'], {
    cwd: hapiDir,
    env: {
      PATH: process.env.PATH,
      AUTHD_URL: authd.url,
      AUTHD_SERVICE_KEY: serviceKey,
      ALLOWED_ORIGIN: demo.url,
      PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  const log = createWriteStream(join(artifacts, `${name}.hapi.log`));
  child.stderr.pipe(log);
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      child.kill('SIGKILL');
    }
  });
  const url = await new Promise((ok, fail) => {
    let seen = '';
    const timer = setTimeout(() => fail(new Error(`the hapi example did not start: ${seen}`)), 20_000);
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`the hapi example exited (${code}), see ${name}.hapi.log`)); });
    child.stdout.on('data', (chunk) => {
      log.write(chunk);
      seen += chunk;
      const listening = /listening on (http:\/\/\S+)/.exec(seen);
      if (listening) { clearTimeout(timer); ok(listening[1]); }
    });
  });
  return { url };
}

/** `GET` on the hapi example from Node, outside the browser, with a bearer token. */
async function callApi(hapi, path, accessToken) {
  const res = await fetch(`${hapi.url}${path}`, { headers: { authorization: `Bearer ${accessToken}` } });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** `auth.fetch(url)` in the page; resolves to the status and the JSON body. */
const pageFetch = (page, url) => page.evaluate(async (u) => {
  const res = await window.authd.fetch(u);
  return { status: res.status, body: await res.json().catch(() => null) };
}, url);

/** What the page sent to the API and to authd's refresh (no preflights): "METHOD path status". */
function recordCalls(page, hapi) {
  const calls = [];
  page.on('response', (r) => {
    const { origin, pathname } = new URL(r.url());
    const method = r.request().method();
    if (method !== 'OPTIONS' && (origin === hapi.url || pathname === '/auth/refresh')) {
      calls.push(`${method} ${pathname} ${r.status()}`);
    }
  });
  return calls;
}

test('after a logout the hapi API refuses the old access token within a second with the kit; the plain JWT check still takes it', async (t) => {
  const name = 'hapi-logout';
  const { authd, demo, context, demoUrl } = await setup(t, { name });
  const hapi = await startHapi(t, { name, authd, demo });
  const user = newUser();
  await register(authd, user);
  const page = await context.newPage();
  // What the page sent to the API and what CORS answer came back (Chromium does not show the
  // preflight to playwright, but without it the page would get no answer to read).
  const sent = [];
  page.on('response', (r) => {
    if (r.url().startsWith(hapi.url)) {
      sent.push({ authorization: r.request().headers().authorization ?? null, allowOrigin: r.headers()['access-control-allow-origin'] });
    }
  });

  const rounds = [];
  for (let round = 1; round <= 3; round++) {
    await openAndLogIn(context, demoUrl({ api: hapi.url }), user, page);
    if (round === 1) {
      // The demo's own button: auth.fetch across origins, through hapi's CORS preflight.
      await page.click('#call-api');
      await page.waitForFunction(() => document.getElementById('api').textContent.includes('HTTP 200'));
      assert.ok((await page.textContent('#api')).includes(user.email));
      await page.click('#call-plain');
      await page.waitForFunction(() => document.getElementById('api').textContent.startsWith('/plain/notes: HTTP 200'));
      await screenshot(page, `${name}-logged-in`);
      assert.equal(sent.length, 2, JSON.stringify(sent));
      for (const r of sent) {
        assert.ok(r.authorization?.startsWith('Bearer '), 'the call to the API carried the access token');
        assert.equal(r.allowOrigin, demo.url, "hapi's CORS allows the demo page's origin");
      }
    }
    const kit = await pageFetch(page, `${hapi.url}/api/notes`);
    assert.equal(kit.status, 200);
    assert.deepEqual(kit.body, { checked_by: '@authd/verify', sub: kit.body.sub, email: user.email });
    const oldToken = await page.evaluate(() => window.authd.accessToken);
    assert.equal((await callApi(hapi, '/api/notes', oldToken)).status, 200, 'the token works from outside the browser too');

    // Log out in the page; meanwhile Node replays the old token against the API until refused.
    const logoutResponse = page.waitForResponse((r) => r.url().endsWith('/auth/logout'));
    const clicked = Date.now();
    await page.click('#logout');
    const polls = [];
    const refused = (async () => {
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const answer = await callApi(hapi, '/api/notes', oldToken);
        polls.push(answer.status);
        if (answer.status === 401) return { at: Date.now(), answer };
        await sleep(5);
      }
      return null;
    })();
    const logout = await logoutResponse;
    assert.equal(logout.status(), 204);
    // When the 204's head reached the browser (its clock is this machine's), else when we heard.
    const timing = logout.request().timing();
    const answeredAt = timing.responseStart >= 0 ? timing.startTime + timing.responseStart : Date.now();
    const first = await refused;
    assert.ok(first, `the kit still accepted the token 5 s after the logout: ${polls.join(' ')}`);
    assert.equal(first.answer.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    assert.equal(first.answer.body.error, 'invalid_token');
    const elapsed = Math.round(first.at - answeredAt);
    rounds.push({ logout_answer_to_401_ms: elapsed, click_to_401_ms: first.at - clicked, polls: polls.length });
    t.diagnostic(`round ${round}: the hapi kit refused the old token ${elapsed} ms after logout's 204 ` +
      `(${first.at - clicked} ms after the click, ${polls.length} polls)`);
    assert.ok(elapsed < 1000, `refused ${elapsed} ms after the logout's answer`);

    // The "before": the same API's plain JWT check still takes the logged-out token, until exp.
    const plain = await callApi(hapi, '/plain/notes', oldToken);
    assert.equal(plain.status, 200, 'plain verification cannot see the logout');
    assert.equal(plain.body.email, user.email);
    const { exp } = JSON.parse(Buffer.from(oldToken.split('.')[1], 'base64url'));
    assert.ok(exp * 1000 > Date.now() + 60_000, 'and will for minutes: the token is far from exp');
    assert.equal((await getMe(authd, oldToken)).status, 401, 'authd itself refuses it');

    // Logged out, the page has no token to send: the API's 401 goes back as it is.
    assert.equal(await statusOf(page), 'logged_out');
    assert.equal((await pageFetch(page, `${hapi.url}/api/notes`)).status, 401);
    if (round === 1) await screenshot(page, `${name}-logged-out`);
  }
  writeFileSync(join(artifacts, `${name}.times.json`), `${JSON.stringify({ rounds }, null, 2)}\n`);
});

test('a 401 from the hapi API makes auth.fetch refresh once and retry, and the retry succeeds', async (t) => {
  const name = 'hapi-refresh-on-401';
  const { authd, demo, context, demoUrl } = await setup(t, {
    name,
    env: { AUTHD_ACCESS_TTL_SECS: '4', AUTHD_LEEWAY_SECS: '0' },
  });
  const hapi = await startHapi(t, { name, authd, demo, env: { AUTHD_LEEWAY_SECS: '0' } });
  const user = newUser();
  await register(authd, user);
  const page = await context.newPage();
  await page.clock.install();
  await openAndLogIn(context, demoUrl({ api: hapi.url }), user, page);
  // As in spa.test.mjs: the page's clock stands still (before its refresh timer) while the
  // access token expires for real, so the client holds a token the API refuses.
  await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 1000);
  const before = await page.evaluate(() => window.authd.accessToken);
  for (let i = 0; i < 100 && (await callApi(hapi, '/api/notes', before)).status === 200; i++) await sleep(100);
  assert.equal((await callApi(hapi, '/api/notes', before)).status, 401, 'the API refuses the expired token');

  const calls = recordCalls(page, hapi);
  const res = await pageFetch(page, `${hapi.url}/api/notes`);
  assert.equal(res.status, 200);
  assert.equal(res.body.email, user.email);
  assert.deepEqual(calls, ['GET /api/notes 401', 'POST /auth/refresh 200', 'GET /api/notes 200']);
  assert.notEqual(await page.evaluate(() => window.authd.accessToken), before, 'a new access token');
  assert.equal(await statusOf(page), 'logged_in');
  await screenshot(page, name);
});

test('a second 401 from the API goes back to the caller: one refresh, one retry, no loop', async (t) => {
  const name = 'hapi-second-401';
  const { authd, demo, context, demoUrl } = await setup(t, { name });
  // A misconfigured API (it expects another issuer) refuses every token, fresh ones too.
  const hapi = await startHapi(t, { name, authd, demo, env: { AUTHD_ISSUER: 'https://issuer.invalid' } });
  const user = newUser();
  await register(authd, user);
  const page = await openAndLogIn(context, demoUrl({ api: hapi.url }), user);
  const before = await page.evaluate(() => window.authd.accessToken);

  const calls = recordCalls(page, hapi);
  const res = await pageFetch(page, `${hapi.url}/api/notes`);
  assert.equal(res.status, 401);
  assert.equal(res.body.error, 'invalid_token');
  await sleep(1000); // time enough for a loop to show
  assert.deepEqual(calls, ['GET /api/notes 401', 'POST /auth/refresh 200', 'GET /api/notes 401']);
  // The session is fine (authd takes the new token): the client stays logged in.
  const after = await page.evaluate(() => window.authd.accessToken);
  assert.notEqual(after, before);
  assert.equal((await getMe(authd, after)).status, 200);
  assert.equal(await statusOf(page), 'logged_in');

  // An origin that is not in resourceOrigins gets neither the token nor a request.
  const stranger = `http://127.0.0.1:${await freePort()}`;
  const sentToStranger = [];
  page.on('request', (r) => { if (r.url().startsWith(stranger)) sentToStranger.push(r.url()); });
  const refused = await page.evaluate((u) => window.authd.fetch(`${u}/steal`).then(
    () => null,
    (e) => ({ name: e.name, code: e.code, status: e.status, message: e.message })), stranger);
  assert.equal(refused?.code, 'origin_not_allowed', JSON.stringify(refused));
  assert.equal(refused.status, 0);
  assert.ok(refused.message.includes(stranger), refused.message);
  assert.deepEqual(sentToStranger, []);
  await screenshot(page, name);
});
