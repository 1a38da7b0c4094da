// authd-client.js: a small, dependency-free browser client for authd (an ES module).
//
// - Logs in with cookie delivery: the refresh token lives only in authd's HttpOnly
//   `__Host-refresh_token` cookie; the access token lives only in this module's memory (and is
//   handed to this origin's other tabs over a BroadcastChannel, never stored).
// - `auth.fetch()` attaches `Authorization: Bearer`, refreshes first when the token is about to
//   expire, and on a 401 refreshes once and retries once: the answer to the retry, 401 or not,
//   goes to the caller. It does so for authd's own URLs and for your APIs on other origins, once
//   they are listed in `resourceOrigins` (see "Which URLs get the access token" below).
// - Refreshes shortly before `expires_in`. Refresh is single-flight inside a tab (one promise)
//   and across tabs (the Web Locks API, or a BroadcastChannel claim protocol where Web Locks are
//   missing): one tab refreshes, the others take the token it broadcasts.
// - Logout tells the other tabs, which drop their tokens at once.
// - `restore()` on page load recovers the session from the refresh cookie alone.
// - Keeps the `device_token` of each login in `localStorage` (one per account and authd) and
//   sends it with the next login to that account: authd then counts this browser's wrong
//   passwords against the device, so an attacker guessing the account from elsewhere cannot
//   lock this browser out. It is no credential (it cannot log anyone in), only a "seen before".
// - Says what is wrong when the set-up is (see "Errors the client diagnoses" below).
//
//   const auth = createAuthClient({ baseUrl: 'https://auth.example.com' });
//   auth.subscribe((s) => render(s));         // { status: 'unknown'|'logged_in'|'logged_out',
//                                             //   sessionId, expiresAt, error: {code, message}|null }
//   await auth.restore();                     // page load: session from the cookie, if any
//   await auth.login(email, password);
//   const res = await auth.fetch('/me');      // relative to baseUrl; absolute URLs work too,
//                                             // on authd's origin or one of resourceOrigins
//   await auth.logout();
//
// Account recovery and verified email (see "Links from mail" below):
//
//   await auth.forgotPassword(email);         // 202 whatever the address: "a link is on its way"
//   const link = linkFromLocation();          // page load: { action, token } from the fragment,
//                                             // which it clears from the address bar; or null
//   if (link?.action === 'reset-password') await auth.resetPassword(link.token, newPassword);
//   if (link?.action === 'verify-email') await auth.verifyEmail(link.token);
//   await auth.sendEmailVerification();       // logged in: mails a link to the account's address
//
// Which URLs get the access token. `auth.fetch` attaches it only to authd's origin and to the
// origins in `resourceOrigins` (your APIs: `createAuthClient({ baseUrl, resourceOrigins:
// ['https://api.example.com'] })`), and rejects any other URL with an `AuthError` whose `.code`
// is `origin_not_allowed` (`.status` 0, `state.error` untouched), before sending anything. Why a
// list rather than "any URL the caller passed": the token is a bearer credential for the whole
// session (it logs the user out of authd, lists their sessions), and URLs in an app are often
// built from data (a link in a profile, a redirect target, an image URL); one such URL would
// hand it to a stranger. A list written once at start-up cannot be steered by data, and a
// missing entry fails loudly instead of sending the request without the token. A listed API
// must allow the page's origin in its CORS answers (`Authorization` header, no credentials
// mode needed), and should answer 401 only for a token it refuses (403 for a valid token
// without permission): every 401 costs one refresh and one retry.
//
// Errors the client diagnoses itself. Each is an `AuthError` with one of these `.code`s, and
// the last one is `state.error` ({ code, message }) until a token arrives, so the page can show
// it. The first four are `.status` 0 and reject the call that met them (`login`, `refresh`,
// `fetch`, `logout`; `restore` resolves false):
// - `cors_refused`: a call to authd failed in the network layer (the browser tells the page
//   only "Failed to fetch"), yet authd answers a no-cors probe of `/healthz` and not a CORS one:
//   it refused this page's origin (and logs "CORS preflight refused"). Message: "authd at
//   <baseUrl> refused this page's origin <origin> (CORS): add it to AUTHD_ALLOWED_ORIGINS".
// - `unreachable`: the call failed and authd answers no probe either (down, wrong `baseUrl`).
// - `network_error`: the call failed although authd answers this origin (a transient failure).
// - `cookie_not_same_site`: `login()` refuses, before sending the password, when this page and
//   authd are not on the same site (IPs compare exactly, names by their last two labels:
//   `localhost` and `127.0.0.1` are two sites). The browser would not keep authd's
//   SameSite=Strict refresh cookie: the page would show "logged in" until a reload or the next
//   refresh silently logged the user out. Login fails rather than half-succeeds, so no session
//   is opened whose refresh token nobody holds.
// - `cookie_not_stored` (`.status` 401): the safety net for what that check cannot see (a public
//   suffix such as github.io, blocked cookies, a Secure cookie over plain http): a refresh got a
//   401 while the access token in hand still works on `/me`, so the session is alive and authd
//   got no valid cookie; typically the first refresh after the login. Every tab logs out as for
//   any 401 and `refresh()` resolves false as then, but with this error instead of silently. (A
//   session ended elsewhere, or revoked for a stolen token's reuse, fails `/me` too: that stays
//   a plain logout.)
// A `restore()` that fails (any of the above, or an authd error) leaves the state `logged_out`
// with the error, never `unknown` ("checking session…") for good, and tells no other tab.
//
// Links from mail. authd mails links to the app (`AUTHD_APP_URL`) with the one-time token in
// the fragment, `#action=reset-password&token=...` (also `verify-email`,
// `confirm-email-change`): no server sees a fragment, so nothing but the app's POST spends the
// token (not a mail scanner that follows links, not a proxy's log). `linkFromLocation()` reads
// it and replaces the URL with one without the fragment (`history.replaceState`), so the token
// stays neither in the address bar nor in the history. Any bad token (unknown, used, expired,
// superseded by a newer link) rejects with the one code `invalid_email_token` (`.status` 400);
// a new password that is too short or too common with `weak_password` (the token stays good).
// `resetPassword` ends every session of the account, this browser's too if it is logged in to
// it: its next refresh logs every tab out.

/**
 * Thrown by `login` (and `fetch` with no session): `.status` and `.code` from authd, or the
 * client's own diagnosis (see "Errors the client diagnoses" above).
 */
export class AuthError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.name = 'AuthError';
    this.status = status;
    this.code = code;
  }
}

/**
 * @param {object} options
 * @param {string} options.baseUrl              authd's origin, e.g. `https://auth.example.com`.
 * @param {number} [options.refreshMarginSecs]  refresh this long before the access token
 *                                              expires (capped at a fifth of its lifetime); 30.
 * @param {boolean} [options.singleFlight]      coordinate refreshes inside the tab and across
 *                                              tabs (default true). `false` lets every caller
 *                                              and every tab refresh on its own: authd's reuse
 *                                              grace window must then absorb the races.
 * @param {boolean} [options.webLocks]          use the Web Locks API when present (default
 *                                              true); `false` forces the BroadcastChannel
 *                                              fallback.
 * @param {string} [options.channelName]        BroadcastChannel and lock name; one per authd.
 * @param {string[]} [options.resourceOrigins]  the origins of your APIs that `auth.fetch` may send
 *                                              the access token to, besides authd's own
 *                                              (`https://api.example.com`); none by default.
 */
export function createAuthClient(options) {
  const baseUrl = String(options.baseUrl).replace(/\/+$/, '');
  const marginSecs = options.refreshMarginSecs ?? 30;
  const singleFlight = options.singleFlight ?? true;
  const name = options.channelName ?? `authd:${baseUrl}`;
  const locks = (options.webLocks ?? true) && globalThis.navigator?.locks ? navigator.locks : null;
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(name) : null;
  const tokenOrigins = new Set([baseUrl, ...(options.resourceOrigins ?? [])].map((o) => new URL(o).origin));

  let token = null; // { accessToken, issuedAt, expiresAt (ms since epoch), sessionId }
  let status = 'unknown';
  let version = 0; // bumps whenever `token` changes (here or from another tab)
  let epoch = 0; // bumps at every logout / session end: late refresh answers are discarded
  let inflight = null;
  let timer = null;
  let problem = null; // { code, message }: the last failure the page should show
  const listeners = new Set();

  // ---- state ---------------------------------------------------------------------------------

  function state() {
    return {
      status,
      sessionId: token?.sessionId ?? null,
      expiresAt: token?.expiresAt ?? null,
      error: problem,
    };
  }

  /** Records `err` as `state.error`, tells the subscribers, and returns it. */
  function report(err) {
    problem = { code: err.code ?? null, message: err.message };
    emit();
    return err;
  }

  function emit() {
    const s = state();
    for (const fn of listeners) {
      try { fn(s); } catch (e) { console.error(e); }
    }
  }

  function bump() {
    version++;
    for (const done of versionWaiters) done();
  }

  function setToken(t, { broadcast }) {
    token = t;
    problem = null;
    bump();
    status = 'logged_in';
    schedule();
    if (broadcast) post({ type: 'token', token: t });
    emit();
  }

  function dropToken(reason, { broadcast }) {
    const changed = status !== 'logged_out' || token !== null;
    token = null;
    epoch++;
    bump();
    status = 'logged_out';
    clearTimeout(timer);
    if (broadcast) post({ type: 'logout', reason });
    if (changed) emit();
  }

  // When a token is due for refresh: `refreshMarginSecs` before it expires, at most a fifth of
  // its lifetime before.
  function refreshAt(t) {
    return t.expiresAt - Math.min(marginSecs * 1000, (t.expiresAt - t.issuedAt) / 5);
  }

  function schedule() {
    clearTimeout(timer);
    if (!token) return;
    const delay = Math.max(0, refreshAt(token) - Date.now());
    timer = setTimeout(function tick() {
      // A network failure is not a logout: try again a little later.
      refresh().catch((e) => {
        if (status !== 'logged_in') return;
        report(e);
        timer = setTimeout(tick, 5000);
      });
    }, delay);
  }

  function fromResponse(body) {
    const now = Date.now();
    return {
      accessToken: body.access_token,
      issuedAt: now,
      expiresAt: now + body.expires_in * 1000,
      sessionId: body.session_id,
    };
  }

  // ---- other tabs ----------------------------------------------------------------------------

  function post(msg) {
    try { channel?.postMessage(msg); } catch { /* closed */ }
  }

  channel?.addEventListener('message', ({ data }) => {
    if (!data || typeof data !== 'object') return;
    if (data.type === 'token') {
      // Another tab logged in or refreshed: same cookie jar, same session. Take the newer token.
      if (!token || data.token.expiresAt > token.expiresAt || data.token.sessionId !== token.sessionId) {
        setToken(data.token, { broadcast: false });
      }
    } else if (data.type === 'logout') {
      dropToken(data.reason, { broadcast: false });
      if (data.reason === 'cookie_not_stored') report(cookieNotStored());
    } else if (data.type === 'claim') {
      peerClaims.set(data.id, Date.now());
    } else if (data.type === 'release') {
      peerClaims.delete(data.id);
    }
  });

  // ---- single flight across tabs ------------------------------------------------------------

  // Fallback when Web Locks are missing: a tab claims the refresh on the channel, waits a moment
  // for competing claims, and the smallest id wins; the others wait for its release (which
  // arrives after its `token` message: a channel delivers one sender's messages in order).
  // Two tabs that still overlap are harmless: authd's grace window returns both the same token.
  const peerClaims = new Map(); // id -> when seen
  const CLAIM_SETTLE_MS = 50;
  const CLAIM_STALE_MS = 10_000;

  function freshPeerClaims() {
    const now = Date.now();
    for (const [id, at] of peerClaims) if (now - at > CLAIM_STALE_MS) peerClaims.delete(id);
    return [...peerClaims.keys()];
  }

  async function withChannelLock(fn) {
    for (;;) {
      while (freshPeerClaims().length) await sleep(20);
      const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
      post({ type: 'claim', id });
      await sleep(CLAIM_SETTLE_MS);
      if (freshPeerClaims().some((other) => other < id)) {
        post({ type: 'release', id });
        continue;
      }
      const release = () => post({ type: 'release', id });
      addEventListener('pagehide', release);
      try {
        return await fn();
      } finally {
        removeEventListener('pagehide', release);
        release();
      }
    }
  }

  // With Web Locks, `fn(contended)` learns whether another tab held the lock first: that tab
  // broadcast its token before releasing, but the lock grant may overtake the message.
  async function withLock(fn) {
    if (!singleFlight) return fn(false);
    if (locks) {
      const lockName = `${name}:refresh`;
      const first = await locks.request(lockName, { ifAvailable: true }, async (lock) =>
        lock ? { value: await fn(false) } : null);
      return first ? first.value : locks.request(lockName, () => fn(true));
    }
    if (channel) return withChannelLock(() => fn(false));
    return fn(false);
  }

  // Resolves when `version` moves past `seen`, or after `ms`.
  const versionWaiters = new Set();
  function versionChange(seen, ms) {
    if (version !== seen) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); versionWaiters.delete(done); resolve(); };
      const t = setTimeout(done, ms);
      versionWaiters.add(done);
    });
  }

  // ---- authd calls ---------------------------------------------------------------------------

  async function call(path, init = {}) {
    try {
      return await fetch(baseUrl + path, {
        method: 'POST',
        credentials: 'include',
        cache: 'no-store',
        ...init,
        headers: { 'X-Requested-With': 'authd-client', ...init.headers },
      });
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
      throw report(await diagnose(e));
    }
  }

  // A fetch rejected: the browser does not say why (a CORS refusal and a closed port look the
  // same to a page). Two probes of `/healthz` tell: a CORS GET (no preflight, no cookie) answers
  // when authd allows this origin; a no-cors GET resolves (opaque) whenever authd answers at all.
  async function diagnose(cause) {
    const probe = (mode) =>
      fetch(`${baseUrl}/healthz`, { mode, credentials: 'omit', cache: 'no-store' }).then(() => true, () => false);
    const origin = globalThis.location?.origin ?? '(unknown)';
    let err;
    if (await probe('cors')) {
      err = new AuthError(0, 'network_error', `a request to authd at ${baseUrl} failed (${cause.message}), though authd answers this page: try again`);
    } else if (await probe('no-cors')) {
      err = new AuthError(0, 'cors_refused', `authd at ${baseUrl} refused this page's origin ${origin} (CORS): add it to AUTHD_ALLOWED_ORIGINS`);
    } else {
      err = new AuthError(0, 'unreachable', `authd at ${baseUrl} is unreachable (${cause.message}): is it running, and is ${baseUrl} its address?`);
    }
    err.cause = cause;
    return err;
  }

  // Whether authd still accepts the access token `t` (so its session has not ended).
  async function sessionAlive(t) {
    const res = await fetch(`${baseUrl}/me`, { headers: { Authorization: `Bearer ${t.accessToken}` }, cache: 'no-store' })
      .catch(() => null);
    return res?.ok === true;
  }

  function cookieNotStored() {
    return new AuthError(401, 'cookie_not_stored',
      `the refresh cookie did not stick: authd (${baseUrl}) got no valid refresh cookie although ` +
      'the session is alive, so the browser did not store or did not send it. Serve the page and ' +
      'authd from one site, over https (or both on localhost), with cookies allowed');
  }

  async function errorOf(res) {
    const body = await res.json().catch(() => ({}));
    return new AuthError(res.status, body.error, body.message);
  }

  /**
   * Logs in (cookie delivery). Resolves to the new state; rejects with an AuthError.
   * `{ remember: false }` is for a shared computer: a short session whose cookie the browser
   * drops when it closes.
   */
  async function login(email, password, { remember = true } = {}) {
    const page = globalThis.location;
    if (page?.hostname && !sameSite(page.hostname, new URL(baseUrl).hostname)) {
      throw report(new AuthError(0, 'cookie_not_same_site',
        `this page (${page.origin}) and authd (${baseUrl}) are not on the same site, so the browser ` +
        'would not keep the refresh cookie and a reload would log you out: serve both from one site ' +
        '(both on localhost or both on 127.0.0.1, or subdomains of one domain)'));
    }
    const deviceKey = `authd:device:${baseUrl}:${String(email).trim().toLowerCase()}`;
    const store = globalThis.localStorage;
    const device = store?.getItem(deviceKey) ?? undefined;
    const res = await call('/auth/login', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        email, password, delivery: 'cookie', device_token: device,
        ...(remember === false ? { remember: false } : {}),
      }),
    });
    if (!res.ok) throw await errorOf(res);
    const body = await res.json();
    if (body.device_token) store?.setItem(deviceKey, body.device_token);
    setToken(fromResponse(body), { broadcast: true });
    return state();
  }

  /**
   * Gets a new access token from the refresh cookie. Resolves to true when logged in after it,
   * false when the session is gone (then every tab is logged out). Network errors reject.
   */
  function refresh() {
    if (singleFlight && inflight) return inflight;
    const p = doRefresh().finally(() => { if (inflight === p) inflight = null; });
    if (singleFlight) inflight = p;
    return p;
  }

  async function doRefresh() {
    const seenVersion = version;
    const seenEpoch = epoch;
    return withLock(async (contended) => {
      // Another tab held the lock: give its token message a moment to arrive.
      if (contended) await versionChange(seenVersion, 250);
      if (epoch !== seenEpoch) return false; // logged out meanwhile
      if (singleFlight && version !== seenVersion && token) return true; // another tab refreshed
      const res = await call('/auth/refresh');
      if (epoch !== seenEpoch) return false;
      if (res.ok) {
        setToken(fromResponse(await res.json()), { broadcast: true });
        return true;
      }
      if (res.status === 401) {
        // No cookie, or the session ended (logout elsewhere, expiry, reuse detected): every tab
        // shares the cookie jar, so every tab is logged out.
        // Unless the session is alive (the access token still works): then authd got no cookie.
        const cookieLost = token !== null && Date.now() < token.expiresAt && (await sessionAlive(token));
        if (epoch !== seenEpoch) return false;
        dropToken(cookieLost ? 'cookie_not_stored' : 'session_ended', { broadcast: status === 'logged_in' });
        if (cookieLost) report(cookieNotStored());
        return false;
      }
      throw await errorOf(res);
    });
  }

  /** Page load: recover the session from the refresh cookie alone. Resolves to true/false. */
  function restore() {
    return refresh().catch((e) => {
      // Whatever failed (authd refused this origin, is unreachable, answered an error), the
      // page must not say "checking session…" for good: logged out here, with the reason. The
      // other tabs are not told: their sessions may well be fine.
      console.warn('authd: could not restore the session', e);
      if (status === 'unknown') {
        problem = { code: e.code ?? null, message: e.message };
        dropToken('restore_failed', { broadcast: false });
      } else if (status === 'logged_out') {
        report(e);
      }
      return false;
    });
  }

  /** Ends this session on authd, expires the cookie, and logs out every tab at once. */
  async function logout() {
    dropToken('logout', { broadcast: true });
    // The refresh cookie names the session, whatever the access token's age. Serialised with
    // refreshes so that no tab rotates the cookie under our feet.
    const res = await withLock(() => call('/auth/logout'));
    return res.status === 204;
  }

  /**
   * `fetch` with the access token attached. Relative URLs resolve against `baseUrl`; absolute
   * ones must be on authd's origin or one of `resourceOrigins`. Refreshes first when the token
   * expires within the margin, and once more (then retries once) on a 401.
   */
  async function authFetch(input, init) {
    const url = typeof input === 'string' && input.startsWith('/') ? baseUrl + input : input;
    const base = new Request(url, init);
    const origin = new URL(base.url).origin;
    if (!tokenOrigins.has(origin)) {
      throw new AuthError(0, 'origin_not_allowed',
        `auth.fetch sends the access token only to authd (${baseUrl}) and the resourceOrigins; ` +
        `${origin} is neither: add it to resourceOrigins if it is your API, or use fetch()`);
    }
    const send = (t) => {
      const req = base.clone();
      if (t) req.headers.set('Authorization', `Bearer ${t.accessToken}`);
      return fetch(req);
    };
    if (status === 'unknown' || (token && Date.now() >= refreshAt(token))) await refresh();
    const used = token;
    let res = await send(used);
    if (res.status === 401 && status === 'logged_in') {
      if (token === used && !(await refresh())) return res;
      if (token && token !== used) res = await send(token);
    }
    return res;
  }

  // ---- account recovery and verified email ----------------------------------------------------

  // POSTs `body` as JSON to authd (no token); resolves when the answer is `expected`, else
  // rejects with authd's error.
  async function postJson(path, body, expected) {
    const res = await call(path, {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== expected) throw await errorOf(res);
  }

  /**
   * Asks for a password-reset link for `email`. Resolves (authd answered 202) whether or not an
   * account has the address: say "if an account has this address, a link is on its way".
   */
  function forgotPassword(email) {
    return postJson('/auth/password/forgot', { email }, 202);
  }

  /**
   * Sets a new password with the token of a `reset-password` link. Every session of the account
   * ends at once. Rejects with `invalid_email_token` (the link is bad: ask for a new one) or
   * `weak_password` (the token stays good: try another password).
   */
  function resetPassword(token, newPassword) {
    return postJson('/auth/password/reset', { token, new_password: newPassword }, 204);
  }

  /** Verifies the account's address with the token of a `verify-email` link. */
  function verifyEmail(token) {
    return postJson('/auth/email/verify', { token }, 204);
  }

  /** Moves the account to its new address with the token of a `confirm-email-change` link. */
  function confirmEmailChange(token) {
    return postJson('/auth/email/change/confirm', { token }, 204);
  }

  /**
   * Logged in: mails a verification link to the account's address (nothing when it is verified
   * already). Uses the access token like `auth.fetch`; rejects with authd's error.
   */
  async function sendEmailVerification() {
    const res = await authFetch('/auth/email/verify/send', { method: 'POST' });
    if (res.status !== 202) throw await errorOf(res);
  }

  function subscribe(fn) {
    listeners.add(fn);
    fn(state());
    return () => listeners.delete(fn);
  }

  return {
    login,
    logout,
    refresh,
    restore,
    fetch: authFetch,
    forgotPassword,
    resetPassword,
    verifyEmail,
    confirmEmailChange,
    sendEmailVerification,
    subscribe,
    get state() { return state(); },
    /** The current access token, for handing to another library; keep it in memory only. */
    get accessToken() { return token?.accessToken ?? null; },
  };
}

/**
 * The link from mail this page was opened with: `{ action, token }` from a fragment such as
 * `#action=reset-password&token=...`, or null when the fragment is not one. It replaces the
 * address with one without the fragment (`history.replaceState`: no reload, no `hashchange`),
 * so that the token stays neither in the address bar nor in the history; keep it in memory
 * only. Call it on load and on `hashchange` (a link opened in a tab already on the app's page
 * changes only the fragment).
 */
export function linkFromLocation() {
  const loc = globalThis.location;
  if (!loc?.hash || loc.hash.length < 2) return null;
  const params = new URLSearchParams(loc.hash.slice(1));
  const action = params.get('action');
  const token = params.get('token');
  if (!action || !token) return null;
  const hist = globalThis.history;
  hist?.replaceState(hist.state, '', loc.pathname + loc.search);
  return { action, token };
}

// Whether two hostnames are one site as far as a SameSite cookie goes. IPs must be equal; names
// compare by their last two labels (no public suffix list: `a.github.io` and `b.github.io` pass
// here although they are two sites; the `cookie_not_stored` check catches those).
function sameSite(a, b) {
  const norm = (h) => h.toLowerCase().replace(/\.$/, '');
  [a, b] = [norm(a), norm(b)];
  const isIp = (h) => h.includes(':') || /^\d+(\.\d+){3}$/.test(h);
  if (isIp(a) || isIp(b)) return a === b;
  const site = (h) => h.split('.').slice(-2).join('.');
  return site(a) === site(b);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
