// One Node server with two routes, for benches/kits/run.sh:
//   GET /bare  verifies the bearer token by hand in the handler: jose's jwtVerify with authd's
//              Ed25519 key (imported from the JWKS, as the kit imports it), EdDSA pinned,
//              typ at+jwt, iss, aud, the seven required claims, the kit's clock tolerance;
//   GET /kit   the kit's adapter for the framework (hapi scheme, Express middleware, Fastify
//              plugin hook), then the same handler.
// Both answer 200 {"sub": ...}, or 401.
//   AUTHD_URL=http://127.0.0.1:18080 AUTHD_SERVICE_KEY=authd_sk_... \
//     node benches/kits/node_server.mjs hapi|express|fastify PORT
// Prints one JSON line {"ready": true, ...} once listening.
import { dep, kit } from "./deps.mjs";

const [framework, portArg] = process.argv.slice(2);
const port = Number(portArg);
const baseUrl = process.env.AUTHD_URL;
const issuer = process.env.AUTHD_ISSUER ?? baseUrl;
const audience = "authd";

const jose = await dep("jose");
const { createVerifier } = await kit("index");
const verifier = await createVerifier({ baseUrl, serviceKey: process.env.AUTHD_SERVICE_KEY, issuer });

const jwks = await (await fetch(`${baseUrl}/.well-known/jwks.json`)).json();
const jwk = jwks.keys.find((k) => k.kty === "OKP" && k.crv === "Ed25519");
const key = await jose.importJWK({ kty: "OKP", crv: "Ed25519", x: jwk.x }, "EdDSA");
const bareOptions = {
  algorithms: ["EdDSA"],
  typ: "at+jwt",
  issuer,
  audience,
  requiredClaims: ["iss", "aud", "sub", "sid", "jti", "iat", "exp"],
  clockTolerance: 31,
};

/** The bare check: the claims, or undefined. */
async function bare(authorization) {
  if (typeof authorization !== "string" || !authorization.startsWith("Bearer ")) return undefined;
  try {
    const { payload } = await jose.jwtVerify(authorization.slice(7), key, bareOptions);
    return payload;
  } catch {
    return undefined;
  }
}

const UNAUTHORIZED = { error: "invalid_token" };

if (framework === "hapi") {
  const Hapi = (await dep("@hapi/hapi")).default;
  const { authdHapi } = await kit("hapi");
  const server = Hapi.server({ port, host: "127.0.0.1" });
  await server.register({ plugin: authdHapi });
  server.auth.strategy("authd", "authd", { verifier });
  server.route({
    method: "GET",
    path: "/bare",
    options: { auth: false },
    handler: async (request, h) => {
      const claims = await bare(request.headers.authorization);
      return claims ? { sub: claims.sub } : h.response(UNAUTHORIZED).code(401);
    },
  });
  server.route({
    method: "GET",
    path: "/kit",
    options: { auth: "authd" },
    handler: (request) => ({ sub: request.auth.credentials.sub }),
  });
  await server.start();
} else if (framework === "express") {
  const express = (await dep("express")).default;
  const { authdExpress } = await kit("express");
  const app = express();
  app.disable("x-powered-by");
  app.get("/bare", async (req, res) => {
    const claims = await bare(req.headers.authorization);
    if (claims) res.json({ sub: claims.sub });
    else res.status(401).json(UNAUTHORIZED);
  });
  app.get("/kit", authdExpress({ verifier }), (req, res) => {
    res.json({ sub: req.auth.sub });
  });
  await new Promise((resolve) => app.listen(port, "127.0.0.1", resolve));
} else if (framework === "fastify") {
  const Fastify = (await dep("fastify")).default;
  const { authdFastify } = await kit("fastify");
  const app = Fastify({ logger: false });
  await app.register(authdFastify, { verifier });
  app.get("/bare", async (request, reply) => {
    const claims = await bare(request.headers.authorization);
    if (claims) return { sub: claims.sub };
    return reply.code(401).send(UNAUTHORIZED);
  });
  app.get("/kit", { onRequest: app.authd }, async (request) => ({ sub: request.auth.sub }));
  await app.listen({ port, host: "127.0.0.1" });
} else {
  console.error("framework: hapi | express | fastify");
  process.exit(2);
}
console.log(JSON.stringify({ ready: true, framework, port, node: process.version, pid: process.pid }));
