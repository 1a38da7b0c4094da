// What every browser test needs: authd (the release binary, a temp SQLite database, a free
// port), the demo page on another origin, Debian's Chromium in a fresh profile, and a few
// helpers that talk to authd from outside the browser.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, existsSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { startStaticServer } from './serve.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const artifacts = join(repoRoot, 'target', 'browser-artifacts');
const authdBin = process.env.AUTHD_BIN ?? join(repoRoot, 'target', 'release', 'authd');
const chromiumBin = process.env.CHROMIUM ?? '/usr/bin/chromium';

mkdirSync(artifacts, { recursive: true });

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port on 127.0.0.1 that nothing listens on (just now). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

// Child processes still running (authd, the hapi example): killed if this test process ends
// without its teardown.
const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

/** Kills `child` if this test process ends before it does. */
export function killOnExit(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/**
 * Starts authd on a free port with a fresh SQLite database; resolves once /readyz is 200.
 * `env` is extra environment, or a function of authd's URL that returns it.
 */
export async function startAuthd({ name, allowedOrigins, env = {} }) {
  if (!existsSync(authdBin)) throw new Error(`${authdBin} is missing: run cargo build --release`);
  const dir = mkdtempSync(join(tmpdir(), 'authd-browser-'));
  const databaseUrl = `sqlite://${join(dir, 'authd.db')}?mode=rwc`;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const logPath = join(artifacts, `${name}.authd.log`);
    const log = openSync(logPath, 'w');
    const child = spawn(authdBin, ['serve'], {
      env: {
        PATH: process.env.PATH,
        RUST_LOG: 'info',
        DATABASE_URL: databaseUrl,
        AUTHD_LISTEN: `127.0.0.1:${port}`,
        AUTHD_ALLOWED_ORIGINS: allowedOrigins.join(','),
        AUTHD_RATE_LIMITS: 'off',
        // Mail (when no AUTHD_SMTP_URL) as files in the temp dir, not in the work tree.
        AUTHD_MAIL_DIR: join(dir, 'mail'),
        ...(typeof env === 'function' ? env(url) : env),
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    killOnExit(child);
    let exited = null;
    child.once('exit', (code, signal) => { exited = { code, signal }; });
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/readyz`);
        if (res.ok) {
          return {
            url,
            port,
            logPath,
            databaseUrl,
            async stop() {
              if (!exited) {
                child.kill('SIGTERM');
                await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
                if (!exited) child.kill('SIGKILL');
              }
              rmSync(dir, { recursive: true, force: true });
            },
          };
        }
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    if (!exited) child.kill('SIGKILL');
    if (attempt >= 3) throw new Error(`authd did not become ready (see ${logPath})`);
  }
}

/**
 * One test's world: authd, the demo page (allowed origin), optionally a third-party page on an
 * origin authd does not allow, and a Chromium profile of its own. Torn down by `t.after`.
 * `demoHost: 'localhost'` serves the demo page on http://localhost:<port> (authd stays on
 * 127.0.0.1); `allowedOrigins(demoOrigin)` gives AUTHD_ALLOWED_ORIGINS (default: the demo's).
 * `env` is extra environment for authd, or a function `({ demoUrl }) => env` given the demo page
 * URL builder (for AUTHD_APP_URL: the builder needs authd's URL, known only once it starts).
 */
export async function setup(t, {
  name, env = {}, thirdParty = false, demoHost = '127.0.0.1', allowedOrigins = (demoOrigin) => [demoOrigin],
} = {}) {
  const cleanups = [];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn().catch((e) => console.error(e));
  });
  const served = await startStaticServer({ root: join(repoRoot, 'examples', 'spa') });
  cleanups.push(served.close);
  // Chromium resolves localhost to the loopback address the server listens on.
  const demo = { ...served, url: served.url.replace('127.0.0.1', demoHost) };
  let third = null;
  if (thirdParty) {
    third = await startStaticServer({ root: join(here, 'fixtures') });
    cleanups.push(third.close);
  }
  /** The demo page URL (query: singleFlight, webLocks, margin) talking to authd at `authdUrl`. */
  const demoUrlOf = (authdUrl) => (query = {}) =>
    `${demo.url}/?${new URLSearchParams({ authd: authdUrl, ...query })}`;
  const authdEnv = typeof env === 'function' ? (url) => env({ demoUrl: demoUrlOf(url) }) : env;
  const authd = await startAuthd({ name, allowedOrigins: allowedOrigins(demo.url), env: authdEnv });
  cleanups.push(authd.stop);

  const profile = mkdtempSync(join(tmpdir(), 'authd-chromium-'));
  cleanups.push(async () => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumBin,
    headless: true,
    viewport: { width: 900, height: 640 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  cleanups.push(() => context.close());
  // Whatever the outcome, a picture of every tab as the test left it.
  cleanups.push(async () => {
    for (const [i, page] of context.pages().entries()) {
      if (page.url() !== 'about:blank') await screenshot(page, `${name}.end-tab${i + 1}`).catch(() => {});
    }
  });
  const logs = [];
  context.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  context.on('weberror', (e) => logs.push(`[pageerror] ${e.error()}`));
  t.after(() => { if (logs.length) console.log(`${name} browser console:\n  ${logs.join('\n  ')}`); });

  /** The demo page URL (query: singleFlight, webLocks, margin). */
  const demoUrl = demoUrlOf(authd.url);

  return { authd, demo, third, context, demoUrl };
}

// ---- the demo page ------------------------------------------------------------------------------

export const statusOf = (page) => page.evaluate(() => document.body.dataset.status);

export async function waitForStatus(page, status, timeout = 10_000) {
  await page.waitForFunction((s) => document.body.dataset.status === s, status, { timeout });
}

/** Opens the demo page and logs in through its form. */
export async function openAndLogIn(context, url, { email, password }, page = null) {
  page ??= context.pages().find((p) => p.url() === 'about:blank') ?? (await context.newPage());
  await page.goto(url);
  await waitForStatus(page, 'logged_out');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#login');
  await waitForStatus(page, 'logged_in');
  await page.waitForFunction((e) => document.getElementById('me').textContent.includes(e), email);
  return page;
}

/** The demo page's #error: its text and data-code. */
export const errorOf = (page) =>
  page.evaluate(() => ({ text: document.getElementById('error').textContent, code: document.getElementById('error').dataset.code ?? '' }));

export async function screenshot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** The refresh cookie in the browser's jar, or undefined. */
export async function refreshCookie(context) {
  return (await context.cookies()).find((c) => c.name === '__Host-refresh_token');
}

// ---- authd from outside the browser -------------------------------------------------------------

/** authd's log so far, without the terminal colour codes. */
export function authdLog(authd) {
  return readFileSync(authd.logPath, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
}

/** Resolves to the first line of authd's log that `match` accepts, polling for up to `timeout` ms. */
export async function waitForLogLine(authd, match, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const line = authdLog(authd).split('\n').find(match);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no such line in ${authd.logPath} after ${timeout} ms`);
    await sleep(50);
  }
}

/**
 * Creates a service key with `authd service-keys create` (as an operator would); resolves to the
 * key once the running authd takes it, which is at its next sync (within 500 ms).
 */
export async function createServiceKey(authd, { name, scope }) {
  const { stdout } = await promisify(execFile)(authdBin, ['service-keys', 'create', '--name', name, '--scope', scope], {
    env: { PATH: process.env.PATH, DATABASE_URL: authd.databaseUrl },
  });
  const key = stdout.trim();
  if (!key.startsWith('authd_sk_')) throw new Error(`service-keys create printed no key: ${JSON.stringify(stdout)}`);
  const deadline = Date.now() + 5000;
  for (;;) {
    const res = await fetch(`${authd.url}/auth/revocations?limit=1`, { headers: { authorization: `Bearer ${key}` } });
    if (res.status !== 401) return key;
    if (Date.now() > deadline) throw new Error(`authd did not take the new service key ${name} within 5 s`);
    await sleep(50);
  }
}

let seq = 0;
export function newUser() {
  seq += 1;
  return { email: `user${Date.now()}${seq}@example.com`, password: 'correct horse battery staple' };
}

export async function register(authd, user) {
  const res = await fetch(`${authd.url}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(user),
  });
  if (res.status !== 201) throw new Error(`register: HTTP ${res.status} ${await res.text()}`);
}

/** A second session of the same user, as an SDK or another device would open it. */
export async function loginBody(authd, user) {
  const res = await fetch(`${authd.url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...user, delivery: 'body' }),
  });
  if (res.status !== 200) throw new Error(`login: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/** Rotates a body-delivery refresh token; resolves to the TokenResponse. */
export async function refreshBody(authd, refreshToken) {
  const res = await fetch(`${authd.url}/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  if (res.status !== 200) throw new Error(`refresh: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

export async function getMe(authd, accessToken) {
  return fetch(`${authd.url}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
}

export async function events(authd, accessToken) {
  const res = await fetch(`${authd.url}/auth/events`, { headers: { authorization: `Bearer ${accessToken}` } });
  if (res.status !== 200) throw new Error(`events: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}
