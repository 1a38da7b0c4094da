/** The hapi auth scheme in a real hapi server, against a live authd. */
import assert from "node:assert/strict";
import { test } from "node:test";

import Hapi from "@hapi/hapi";
import { authdCredentials, authdHapi } from "@authd/verify/hapi";

import { adapterSuite, assertUnauthorized, get, type App } from "./support/adapters.js";

adapterSuite(
  "hapi",
  async (verifier): Promise<App> => {
    const server = Hapi.server({ host: "127.0.0.1", port: 0 });
    await server.register({ plugin: authdHapi });
    server.auth.strategy("authd", "authd", { verifier });
    server.auth.strategy("authd-cookie", "authd", { verifier, cookie: "at" });
    const whoami = (request: Hapi.Request) => {
      const { sub, sid, email } = authdCredentials(request);
      return { sub, sid, email };
    };
    server.route({ method: "GET", path: "/whoami", options: { auth: "authd" }, handler: whoami });
    server.route({ method: "GET", path: "/cookie", options: { auth: "authd-cookie" }, handler: whoami });
    server.route({
      method: "GET",
      path: "/optional",
      options: { auth: { strategy: "authd", mode: "optional" } },
      handler: (request) => ({ authenticated: request.auth.isAuthenticated }),
    });
    await server.start();
    return { base: server.info.uri, close: () => server.stop() };
  },
  (context) => {
    test("hapi: request.auth.credentials holds every claim", async () => {
      const { app, user } = context;
      const answer = await get(app.base, "/whoami", { bearer: user.access_token });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.sid, user.session_id);
    });

    test("hapi: mode optional lets a request without a token through, but not a bad token", async () => {
      const { app, user } = context;
      const none = await get(app.base, "/optional");
      assert.equal(none.status, 200);
      assert.equal(none.body.authenticated, false);
      const good = await get(app.base, "/optional", { bearer: user.access_token });
      assert.equal(good.body.authenticated, true);
      assertUnauthorized(await get(app.base, "/optional", { bearer: "garbage" }), "optional, bad token");
    });
  },
);
