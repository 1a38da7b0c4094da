// A hapi API with its access tokens from authd, protected two ways side by side:
//
// - `/api/...` with the Node verifier kit's hapi scheme (`@authd/verify/hapi`): the signature
//   and claims checked in memory, and the session checked against the set of ended sessions that
//   the kit keeps by following authd's revocation feed. A logged-out token is refused within a
//   second.
// - `/plain/...` with a bare JWT check (`jose`'s `jwtVerify` against authd's JWKS), as most APIs
//   do it: the "before". It knows nothing of sessions, so a logged-out token verifies until `exp`.
//
// The single-page app that calls it runs on another origin: CORS allows ALLOWED_ORIGIN, for
// `Authorization: Bearer` (no cookies, so no credentials mode). Configuration, from the
// environment only:
//
//   AUTHD_URL           authd's URL (default http://127.0.0.1:8080)
//   AUTHD_SERVICE_KEY   required: `authd service-keys create --name hapi --scope revocations:read`
//   AUTHD_ISSUER        the `iss` tokens carry (default AUTHD_URL; set it when authd has AUTHD_ISSUER)
//   AUTHD_LEEWAY_SECS   clock-skew allowance on `exp` and `iat`, for both checks (default 30)
//   ALLOWED_ORIGIN      the SPA's origin, or several, comma-separated (default http://127.0.0.1:5173)
//   PORT                where to listen on 127.0.0.1 (default 3000; 0: any free port)
//
// Once the kit has loaded authd's keys and the whole revocation snapshot, it prints
// `hapi example listening on http://127.0.0.1:PORT` (the browser tests wait for that line).
import Boom from '@hapi/boom';
import Hapi from '@hapi/hapi';
import { createVerifier } from '@authd/verify';
import { authdCredentials, authdHapi } from '@authd/verify/hapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const env = process.env;
const authdUrl = (env.AUTHD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const issuer = env.AUTHD_ISSUER || authdUrl;
const leewaySecs = Number(env.AUTHD_LEEWAY_SECS ?? 30);
const allowedOrigins = (env.ALLOWED_ORIGIN || 'http://127.0.0.1:5173').split(',').map((o) => o.trim()).filter(Boolean);
const port = Number(env.PORT ?? 3000);

// Resolves only once the JWKS and the whole snapshot of ended sessions are loaded, so the API
// never serves a moment during which it would accept an ended session's token.
let verifier;
try {
  verifier = await createVerifier({ baseUrl: authdUrl, serviceKey: env.AUTHD_SERVICE_KEY ?? '', issuer, leewaySecs });
} catch (e) {
  console.error(`hapi example: cannot follow authd at ${authdUrl}: ${e.message}`);
  if (e.code === 'missing_service_key') {
    console.error('  create a key with `authd service-keys create --name hapi --scope revocations:read` and set AUTHD_SERVICE_KEY');
  }
  process.exit(1);
}

const server = Hapi.server({
  host: '127.0.0.1',
  port,
  // hapi's CORS answers the preflight and allows the `Authorization` header by default. Every
  // answer is one user's (or a refusal): no cache may keep it (hapi's default is `no-cache`,
  // which it also puts over the kit's `no-store` on a 401).
  routes: { cors: { origin: allowedOrigins }, cache: { otherwise: 'no-store' } },
});

// After: the kit's scheme.
await server.register({ plugin: authdHapi });
server.auth.strategy('authd', 'authd', { verifier });

// Before: what a hapi API typically does with a JWT. Everything here is right (the algorithm
// pinned, `typ`, `iss` and `aud` checked, keys from authd's JWKS only), and it still cannot
// see a logout.
const jwks = createRemoteJWKSet(new URL(`${authdUrl}/.well-known/jwks.json`));
server.auth.scheme('plain-jwt', () => ({
  async authenticate(request, h) {
    const bearer = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '');
    if (!bearer) return h.unauthenticated(Boom.unauthorized(null, 'Bearer'));
    try {
      const { payload } = await jwtVerify(bearer[1], jwks, {
        algorithms: ['EdDSA'],
        typ: 'at+jwt',
        issuer,
        audience: 'authd',
        clockTolerance: leewaySecs,
      });
      return h.authenticated({ credentials: payload });
    } catch (e) {
      const refusal = Boom.unauthorized(`invalid token (${e.code ?? e.message})`);
      refusal.output.headers['WWW-Authenticate'] = 'Bearer error="invalid_token"';
      return h.unauthenticated(refusal);
    }
  },
}));
server.auth.strategy('plain', 'plain-jwt');

const notesOf = (claims, checkedBy) => ({ checked_by: checkedBy, sub: claims.sub, email: claims.email ?? null });

server.route([
  {
    method: 'GET',
    path: '/api/notes',
    options: { auth: 'authd' },
    handler: (request) => notesOf(authdCredentials(request), '@authd/verify'),
  },
  {
    method: 'GET',
    path: '/plain/notes',
    options: { auth: 'plain' },
    handler: (request) => notesOf(request.auth.credentials, 'jose jwtVerify'),
  },
  {
    // For a readiness probe: whether the kit follows the feed, and how far behind it is.
    method: 'GET',
    path: '/healthz',
    options: { auth: false },
    handler: (_request, h) => {
      const { ready, stalenessMs, revokedEntries } = verifier.status();
      return h.response({ ready, staleness_ms: stalenessMs, revoked_entries: revokedEntries }).code(ready ? 200 : 503);
    },
  },
]);

await server.start();
console.log(`hapi example listening on ${server.info.uri} (authd ${authdUrl}, CORS for ${allowedOrigins.join(', ')})`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await server.stop({ timeout: 2000 });
    verifier.close();
    process.exit(0);
  });
}
