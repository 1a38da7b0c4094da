/**
 * The Fastify adapter: a plugin (not encapsulated, like `fastify-plugin` makes them, without
 * depending on it) that decorates the instance with the hook `fastify.authd` and the request
 * with `request.auth`.
 *
 * ```ts
 * await app.register(authdFastify, { verifier });
 * app.get("/me", { onRequest: app.authd }, async (request) => ({ user: request.auth!.sub }));
 * ```
 *
 * With `{ global: true }` the hook runs for every route.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";

import { isRefusal, readToken, refusal, type Refusal } from "./http.js";
import type { Claims, Verifier } from "./verifier.js";

/** The hook that verifies a request's token: use it as a route's `onRequest` or `preHandler`. */
export type AuthdFastifyHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

declare module "fastify" {
  interface FastifyRequest {
    /** The claims of the access token, set by the `authd` hook (`null` on unprotected routes). */
    auth: Claims | null;
  }
  interface FastifyInstance {
    /** Verifies the request's token; answers 401 or 503 itself when it is refused. */
    authd: AuthdFastifyHook;
  }
}

/** The options of {@link authdFastify}. */
export interface AuthdFastifyOptions {
  /** The verifier made by `createVerifier`. */
  verifier: Verifier;
  /** A cookie to read the token from when there is no `Authorization: Bearer` header. */
  cookie?: string;
  /** Run the hook (as `onRequest`) for every route. Default: false (use `fastify.authd` per route). */
  global?: boolean;
}

/**
 * The hook alone, for a route that needs other settings (another cookie) than the plugin's:
 * `app.get("/x", { onRequest: authdFastifyHook({ verifier, cookie: "at" }) }, handler)`.
 */
export function authdFastifyHook(options: Omit<AuthdFastifyOptions, "global">): AuthdFastifyHook {
  const { verifier, cookie } = options ?? {};
  if (!verifier || typeof verifier.verify !== "function") {
    throw new TypeError("authdFastify needs { verifier } (from createVerifier)");
  }
  return async (request, reply) => {
    const token = readToken(request.headers.authorization, request.headers.cookie, cookie);
    if (token === undefined) return send(reply, refusal(undefined));
    try {
      request.auth = await verifier.verify(token);
    } catch (e) {
      if (isRefusal(e)) return send(reply, refusal(e));
      throw e;
    }
    return undefined;
  };
}

const plugin: FastifyPluginAsync<AuthdFastifyOptions> = async (fastify, options) => {
  const hook = authdFastifyHook(options);
  fastify.decorateRequest("auth", null);
  fastify.decorate("authd", hook);
  if (options.global) fastify.addHook("onRequest", hook);
};

/** The Fastify plugin: `await app.register(authdFastify, { verifier })`. */
export const authdFastify: FastifyPluginAsync<AuthdFastifyOptions> = Object.assign(plugin, {
  // What fastify-plugin sets: the decorators and hooks reach the registering context.
  [Symbol.for("skip-override")]: true,
  [Symbol.for("fastify.display-name")]: "@authd/verify",
  [Symbol.for("plugin-meta")]: { name: "@authd/verify" },
});

/** The claims the `authd` hook put on the request (throws if it did not run). */
export function authdClaims(request: FastifyRequest): Claims {
  if (!request.auth) throw new Error("the authd hook did not authenticate this request");
  return request.auth;
}

/** Answers the refusal and tells Fastify the reply is sent. */
function send(reply: FastifyReply, answer: Refusal): FastifyReply {
  return reply
    .code(answer.status)
    .headers(answer.headers)
    .type("application/json; charset=utf-8")
    .send(JSON.stringify(answer.body));
}
