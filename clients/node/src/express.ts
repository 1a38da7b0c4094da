/**
 * The Express adapter: a middleware that puts the claims in `req.auth`.
 *
 * ```ts
 * app.use(authdExpress({ verifier }));
 * app.get("/me", (req, res) => res.json({ user: req.auth!.sub }));
 * ```
 *
 * It writes with Node's own response methods, so it also works with Express 4 and connect.
 */
import type { ServerResponse } from "node:http";

import type { NextFunction, Request, RequestHandler, Response } from "express";

import { isRefusal, readToken, refusal, type Refusal } from "./http.js";
import type { Claims, Verifier } from "./verifier.js";

declare global {
  namespace Express {
    interface Request {
      /** The claims of the access token, set by `authdExpress`. */
      auth?: Claims;
    }
  }
}

/** The options of {@link authdExpress}. */
export interface AuthdExpressOptions {
  /** The verifier made by `createVerifier`. */
  verifier: Verifier;
  /** A cookie to read the token from when there is no `Authorization: Bearer` header. */
  cookie?: string;
}

/**
 * A middleware that verifies `Authorization: Bearer <token>` (or the cookie), sets `req.auth`
 * and calls `next()`; otherwise it answers 401 `invalid_token` (with `WWW-Authenticate`), or
 * 503 `service_unavailable` (with `Retry-After: 1`) when the verifier is stale.
 */
export function authdExpress(options: AuthdExpressOptions): RequestHandler {
  const { verifier, cookie } = options ?? {};
  if (!verifier || typeof verifier.verify !== "function") {
    throw new TypeError("authdExpress needs { verifier } (from createVerifier)");
  }
  return (req: Request, res: Response, next: NextFunction) => {
    const token = readToken(req.headers.authorization, req.headers.cookie, cookie);
    if (token === undefined) {
      send(res, refusal(undefined));
      return;
    }
    verifier.verify(token).then(
      (claims) => {
        req.auth = claims;
        next();
      },
      (e: unknown) => {
        if (isRefusal(e)) send(res, refusal(e));
        else next(e);
      },
    );
  };
}

/** The claims `authdExpress` put on the request (throws if it did not run). */
export function authdClaims(req: Request): Claims {
  if (!req.auth) throw new Error("authdExpress did not authenticate this request");
  return req.auth;
}

function send(res: ServerResponse, answer: Refusal): void {
  res.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.end(JSON.stringify(answer.body));
}
