// Account recovery in a real browser: the demo page's "Forgot password?" form, the mailed link
// (delivered by SMTP to a sink this test runs) opened in a tab, the new password set there; and
// the email-verification link. authd runs with AUTHD_SMTP_URL at the sink and AUTHD_APP_URL at
// the demo page, so its links open the page with `#action=...&token=...`.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import {
  errorOf, events, getMe, newUser, openAndLogIn, register, screenshot, setup, sleep, waitForStatus,
} from './harness.mjs';

/**
 * A plain SMTP sink on 127.0.0.1 (just enough SMTP for lettre): keeps every message, as
 * `{ to: [addresses], data }` with `data` decoded from quoted-printable.
 */
function startSmtpSink() {
  const received = [];
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setEncoding('latin1');
    let buffer = '';
    let to = [];
    let inData = false;
    socket.write('220 sink ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk;
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const raw = buffer.slice(0, end + 2).replace(/^\.\./gm, '.'); // undo dot-stuffing
          buffer = buffer.slice(end + 5);
          inData = false;
          received.push({ to, data: decodeQuotedPrintable(raw) });
          to = [];
          socket.write('250 queued\r\n');
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        const command = line.toUpperCase();
        if (command.startsWith('EHLO') || command.startsWith('HELO')) socket.write('250-sink\r\n250 8BITMIME\r\n');
        else if (command.startsWith('MAIL FROM')) { to = []; socket.write('250 OK\r\n'); }
        else if (command.startsWith('RCPT TO')) { to.push(line.replace(/^[^<]*<|>.*$/g, '')); socket.write('250 OK\r\n'); }
        else if (command === 'DATA') { inData = true; socket.write('354 go on\r\n'); }
        else if (command === 'QUIT') { socket.end('221 bye\r\n'); return; }
        else if (command.startsWith('RSET') || command.startsWith('NOOP')) socket.write('250 OK\r\n');
        else socket.write('502 not here\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      ok({
        received,
        url: `smtp://127.0.0.1:${port}?tls=none`,
        /** Resolves to the first message `match` accepts, waiting up to `timeout` ms. */
        async waitFor(match, timeout = 10_000) {
          const deadline = Date.now() + timeout;
          for (;;) {
            const found = received.find(match);
            if (found) return found;
            if (Date.now() > deadline) throw new Error(`no such mail within ${timeout} ms; got ${received.length}`);
            await sleep(50);
          }
        },
        close: () => new Promise((done) => { for (const s of sockets) s.destroy(); server.close(() => done()); }),
      });
    });
  });
}

// Soft line breaks and `=XX` escapes (the links are ASCII).
function decodeQuotedPrintable(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** The first link of `action` in a mail (its plain-text part comes first). */
function linkIn(mail, action) {
  const m = mail.data.match(new RegExp(`https?://[^\\s"<>]+#action=${action}&token=[A-Za-z0-9_-]+`));
  assert.ok(m, `a ${action} link in the mail:\n${mail.data}`);
  return m[0];
}

const urlOf = (page) => page.evaluate(() => location.href);
const noticeOf = (page) => page.textContent('#notice');

test('forgot password: the mailed link opens the demo page, which sets a new password and ends every session; the token leaves the address bar',
  async (t) => {
    const sink = await startSmtpSink();
    t.after(sink.close);
    const { authd, context, demoUrl } = await setup(t, {
      name: 'password-reset',
      env: ({ demoUrl: appUrl }) => ({ AUTHD_SMTP_URL: sink.url, AUTHD_APP_URL: appUrl() }),
    });
    const user = newUser();
    await register(authd, user);

    // Tab A: logged in. Tab B (same browser, so the same session through the shared cookie).
    const tabA = await openAndLogIn(context, demoUrl(), user);
    const oldAccess = await tabA.evaluate(() => window.authd.accessToken);
    const tabB = await context.newPage();
    await tabB.goto(demoUrl());
    await waitForStatus(tabB, 'logged_in');
    assert.equal((await getMe(authd, oldAccess)).status, 200, "tab A's access token works before the reset");

    // "Forgot password?" in tab B: the page says the same as authd, whatever the address.
    await tabB.click('#forgot-open');
    await tabB.fill('#forgot-email', user.email);
    const forgot = tabB.waitForResponse((r) => r.url().endsWith('/auth/password/forgot') && r.request().method() === 'POST');
    await tabB.click('#forgot-submit');
    assert.equal((await forgot).status(), 202);
    await tabB.waitForFunction(() => document.getElementById('notice').textContent.includes('If an account has this address, a link is on its way'));
    assert.equal(await tabB.isHidden('#forgot-form'), true);

    // The mail: to the account, with a link to the app (AUTHD_APP_URL) and the token in the fragment.
    const mail = await sink.waitFor((m) => m.to.includes(user.email) && m.data.includes('action=reset-password'));
    const link = linkIn(mail, 'reset-password');
    assert.ok(link.startsWith(`${demoUrl()}#action=reset-password&token=`), link);

    // Open it in tab B (already on the page: only the fragment changes). The page takes the
    // token and removes it from the address bar at once.
    await tabB.goto(link);
    await tabB.waitForSelector('#reset-form', { state: 'visible' });
    assert.equal(await urlOf(tabB), demoUrl(), 'the token is no longer in the address bar');
    assert.equal(tabB.url(), demoUrl());
    await screenshot(tabB, 'password-reset.form');

    const newPassword = 'a brand new passphrase, 2 cats';
    await tabB.fill('#new-password', newPassword);
    const reset = tabB.waitForResponse((r) => r.url().endsWith('/auth/password/reset') && r.request().method() === 'POST');
    await tabB.click('#reset-submit');
    assert.equal((await reset).status(), 204);
    await tabB.waitForFunction(() => document.getElementById('notice').textContent.includes('Your password is set'));
    assert.equal((await errorOf(tabB)).text, '');
    assert.equal(await tabB.isHidden('#reset-form'), true);

    // Every session ended: tab A's access token is refused, its refresh fails and it is logged out.
    assert.equal((await getMe(authd, oldAccess)).status, 401, "tab A's old access token after the reset");
    assert.equal(await tabA.evaluate(() => window.authd.refresh()), false, "tab A's refresh after the reset");
    await waitForStatus(tabA, 'logged_out');
    await waitForStatus(tabB, 'logged_out');

    // The old password no longer logs in; the new one does (through the page, in tab A).
    const oldLogin = await fetch(`${authd.url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...user, delivery: 'body' }),
    });
    assert.equal(oldLogin.status, 401, 'the old password');
    await openAndLogIn(context, demoUrl(), { email: user.email, password: newPassword }, tabA);
    const newAccess = await tabA.evaluate(() => window.authd.accessToken);
    const kinds = (await events(authd, newAccess)).map((e) => e.kind);
    assert.ok(kinds.includes('password_reset_requested') && kinds.includes('password_reset'), kinds.join(', '));
    // The account was told, at its address.
    await sink.waitFor((m) => m.to.includes(user.email) && /password was changed/i.test(m.data));

    // The link again, in a fresh tab: used, so the page says so (and offers a new one), and
    // the address bar holds no token here either.
    const tabC = await context.newPage();
    await tabC.goto(link);
    await tabC.waitForSelector('#reset-form', { state: 'visible' });
    assert.equal(await urlOf(tabC), demoUrl(), 'the token is no longer in the address bar (page load)');
    await tabC.fill('#new-password', 'yet another long passphrase');
    await tabC.click('#reset-submit');
    await tabC.waitForFunction(() => document.getElementById('error').dataset.code === 'invalid_email_token');
    const shown = await errorOf(tabC);
    assert.match(shown.text, /This link is invalid, used or expired/);
    assert.equal(await tabC.isVisible('#forgot-form'), true, 'a used link offers a new one');
    await screenshot(tabC, 'password-reset.used-link');
    await screenshot(tabA, 'password-reset');
  });

test('email verification: the logged-in page asks for a link, which verifies the address when opened', async (t) => {
  const sink = await startSmtpSink();
  t.after(sink.close);
  const { authd, context, demoUrl } = await setup(t, {
    name: 'verify-email',
    env: ({ demoUrl: appUrl }) => ({ AUTHD_SMTP_URL: sink.url, AUTHD_APP_URL: appUrl() }),
  });
  const user = newUser();
  await register(authd, user);
  const page = await openAndLogIn(context, demoUrl(), user);
  assert.equal(JSON.parse(await page.textContent('#me')).email_verified, false);

  const send = page.waitForResponse((r) => r.url().endsWith('/auth/email/verify/send') && r.request().method() === 'POST');
  await page.click('#send-verification');
  const sent = await send;
  assert.equal(sent.status(), 202);
  assert.match(await sent.request().headerValue('authorization'), /^Bearer /, 'sent with the access token');
  await page.waitForFunction(() => document.getElementById('notice').textContent.includes('verification link is on its way'));

  const mail = await sink.waitFor((m) => m.to.includes(user.email) && m.data.includes('action=verify-email'));
  const link = linkIn(mail, 'verify-email');
  const tab = await context.newPage();
  await tab.goto(link);
  await tab.waitForFunction(() => document.getElementById('notice').textContent.includes('Your email address is verified'));
  assert.equal(await urlOf(tab), demoUrl(), 'the token is no longer in the address bar');
  assert.equal((await errorOf(tab)).text, '');
  // The page refreshed after verifying: its /me (from the new access token) says so.
  await tab.waitForFunction(() => document.getElementById('me').textContent.includes('"email_verified": true'));

  // Used: the same link again says so nicely.
  await tab.goto(link);
  await tab.waitForFunction(() => document.getElementById('error').dataset.code === 'invalid_email_token');
  assert.match((await errorOf(tab)).text, /This link is invalid, used or expired/);
  assert.equal(await urlOf(tab), demoUrl());
  assert.equal(await noticeOf(tab), '');
  await screenshot(tab, 'verify-email');
});
