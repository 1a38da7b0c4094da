/** The Express middleware in a real Express server, against a live authd. */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import express from "express";
import { authdClaims, authdExpress } from "@authd/verify/express";

import { adapterSuite, get, type App } from "./support/adapters.js";

adapterSuite(
  "Express",
  async (verifier): Promise<App> => {
    const app = express();
    const whoami: express.RequestHandler = (req, res) => {
      const { sub, sid, email } = authdClaims(req);
      res.json({ sub, sid, email, typed: req.auth?.sid === sid });
    };
    app.get("/whoami", authdExpress({ verifier }), whoami);
    app.get("/cookie", authdExpress({ verifier, cookie: "at" }), whoami);
    app.get("/public", (_req, res) => {
      res.json({ ok: true });
    });
    const server = await new Promise<import("node:http").Server>((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    const { port } = server.address() as AddressInfo;
    return {
      base: `http://127.0.0.1:${port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },
  (context) => {
    test("Express: req.auth is typed and set; routes without the middleware are untouched", async () => {
      const { app, user } = context;
      const answer = await get(app.base, "/whoami", { bearer: user.access_token });
      assert.equal(answer.body.typed, true);
      assert.equal((await get(app.base, "/public")).status, 200);
    });
  },
);
