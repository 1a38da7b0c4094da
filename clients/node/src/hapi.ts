/**
 * The hapi adapter: a plugin that registers the auth scheme `authd`.
 *
 * ```ts
 * await server.register({ plugin: authdHapi });
 * server.auth.strategy("authd", "authd", { verifier, cookie: "access_token" });
 * server.auth.default("authd");
 * ```
 *
 * The claims are `request.auth.credentials` (typed: {@link authdCredentials}). `@hapi/jwt`
 * drops Ed25519 keys and `hapi-auth-jwt2` cannot verify EdDSA, which is why this exists.
 */
import type { AuthCredentials, Plugin, Request, ResponseObject, ServerAuthScheme } from "@hapi/hapi";

import { isRefusal, readToken, refusal } from "./http.js";
import type { VerifyError } from "./errors.js";
import type { Claims, Verifier } from "./verifier.js";

/** The options of `server.auth.strategy(name, "authd", options)`. */
export interface AuthdHapiOptions {
  /** The verifier made by `createVerifier`. */
  verifier: Verifier;
  /** A cookie to read the token from when there is no `Authorization: Bearer` header. */
  cookie?: string;
}

const NAME = "@authd/verify";

/** What hapi reads of an error (`@hapi/boom`'s shape, without depending on it). */
interface BoomLike extends Error {
  isBoom: true;
  isServer: boolean;
  isMissing: boolean;
  data: null;
  output: { statusCode: number; payload: object; headers: Record<string, string> };
}

/** The scheme `authd`: `Authorization: Bearer` (or the cookie), verified in memory. */
const scheme: ServerAuthScheme = (_server, options) => {
  const { verifier, cookie } = checkOptions(options);
  return {
    async authenticate(request, h) {
      const headers = request.headers as Record<string, string | undefined>;
      const token = readToken(headers.authorization, headers.cookie, cookie);
      if (token === undefined) {
        // "Missing", so that hapi tries the next strategy and `mode: "optional"` lets it pass.
        (request.plugins as Record<string, unknown>)[NAME] = { missing: true };
        return h.unauthenticated(boom(undefined));
      }
      try {
        const claims = await verifier.verify(token);
        return h.authenticated({ credentials: claims as unknown as AuthCredentials });
      } catch (e) {
        if (isRefusal(e)) return h.unauthenticated(boom(e));
        throw e;
      }
    },
  };
};

/**
 * The hapi plugin. Registers the scheme `authd`, and gives hapi's own "Missing
 * authentication" 401 (no token at all) the contract's JSON body.
 */
export const authdHapi: Plugin<void> = {
  name: NAME,
  version: "0.1.0",
  register(server) {
    server.auth.scheme("authd", scheme);
    server.ext("onPreResponse", (request, h) => {
      const response = request.response as ResponseObject | BoomLike;
      const ours = (request.plugins as Record<string, { missing?: boolean } | undefined>)[NAME];
      if (ours?.missing && "isBoom" in response && response.isBoom && response.output.statusCode === 401) {
        response.output.payload = refusal(undefined).body;
        response.output.headers["cache-control"] = "no-store";
      }
      return h.continue;
    });
  },
};

/** The claims of an authenticated request (throws if the request is not authenticated by authd). */
export function authdCredentials(request: Request): Claims {
  const credentials = request.auth.credentials as unknown as Claims | null;
  if (!request.auth.isAuthenticated || !credentials || typeof credentials.sid !== "string") {
    throw new Error("the request was not authenticated by the authd scheme");
  }
  return credentials;
}

/** An error hapi answers as the contract's 401 or 503. */
function boom(error: VerifyError | undefined): BoomLike {
  const answer = refusal(error);
  const err = new Error(answer.body.message) as BoomLike;
  err.isBoom = true;
  err.isServer = answer.status >= 500;
  err.isMissing = error === undefined;
  err.data = null;
  // hapi adds its own `cache-control: no-cache` unless it finds that lower-case key (and it
  // reads `WWW-Authenticate` with that spelling, so the rest stay as they are).
  const { "Cache-Control": cacheControl, ...rest } = answer.headers as Record<string, string>;
  const headers: Record<string, string> = { ...rest };
  if (cacheControl !== undefined) headers["cache-control"] = cacheControl;
  err.output = { statusCode: answer.status, payload: { ...answer.body }, headers };
  Object.defineProperty(err, "reformat", { value: () => err.output, configurable: true });
  return err;
}

function checkOptions(options: object | undefined): AuthdHapiOptions {
  const { verifier, cookie } = (options ?? {}) as Partial<AuthdHapiOptions>;
  if (!verifier || typeof verifier.verify !== "function") {
    throw new TypeError("the authd scheme needs { verifier } (from createVerifier)");
  }
  if (cookie !== undefined && (typeof cookie !== "string" || cookie === "")) {
    throw new TypeError("the authd scheme's cookie must be a cookie name");
  }
  return cookie === undefined ? { verifier } : { verifier, cookie };
}
