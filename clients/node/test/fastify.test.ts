/** The Fastify plugin in a real Fastify server, against a live authd. */
import assert from "node:assert/strict";
import { test } from "node:test";

import Fastify from "fastify";
import { authdClaims, authdFastify, authdFastifyHook } from "@authd/verify/fastify";

import { adapterSuite, assertUnauthorized, get, type App } from "./support/adapters.js";

let globalBase = "";

adapterSuite(
  "Fastify",
  async (verifier): Promise<App> => {
    const app = Fastify();
    await app.register(authdFastify, { verifier });
    const whoami = async (request: import("fastify").FastifyRequest) => {
      const { sub, sid, email } = authdClaims(request);
      return { sub, sid, email };
    };
    app.get("/whoami", { onRequest: app.authd }, whoami);
    app.get("/cookie", { onRequest: authdFastifyHook({ verifier, cookie: "at" }) }, whoami);
    app.get("/public", async (request) => ({ auth: request.auth }));
    await app.listen({ host: "127.0.0.1", port: 0 });

    // Another app with the hook on every route.
    const everywhere = Fastify();
    await everywhere.register(authdFastify, { verifier, global: true });
    everywhere.get("/anything", async (request) => ({ sid: request.auth?.sid }));
    await everywhere.listen({ host: "127.0.0.1", port: 0 });
    globalBase = `http://127.0.0.1:${(everywhere.server.address() as import("node:net").AddressInfo).port}`;

    const address = app.server.address() as import("node:net").AddressInfo;
    return {
      base: `http://127.0.0.1:${address.port}`,
      close: async () => {
        await app.close();
        await everywhere.close();
      },
    };
  },
  (context) => {
    test("Fastify: routes without the hook see request.auth null; global: true protects every route", async () => {
      const { app, user } = context;
      const open = await get(app.base, "/public");
      assert.equal(open.status, 200);
      assert.equal(open.body.auth, null);
      assertUnauthorized(await get(globalBase, "/anything"), "global, no token");
      const answer = await get(globalBase, "/anything", { bearer: user.access_token });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.sid, user.session_id);
    });
  },
);
