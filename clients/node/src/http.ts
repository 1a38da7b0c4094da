/**
 * What the framework adapters share: where the token is read from, and the answer to a
 * refused request.
 */
import { VerifyError } from "./errors.js";

/** A header as Node's `IncomingHttpHeaders` holds it. */
type HeaderValue = string | string[] | undefined;

/**
 * The token of `Authorization: Bearer <token>`, or else (when `cookie` is given) of the cookie
 * of that name; `undefined` when there is neither.
 */
export function readToken(
  authorization: HeaderValue,
  cookieHeader: HeaderValue,
  cookie?: string,
): string | undefined {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  if (value !== undefined) {
    const trimmed = value.trim();
    const space = trimmed.indexOf(" ");
    if (space > 0 && trimmed.slice(0, space).toLowerCase() === "bearer") {
      const token = trimmed.slice(space + 1).trim();
      if (token !== "") return token;
    }
  }
  if (cookie === undefined || cookieHeader === undefined) return undefined;
  const lines = Array.isArray(cookieHeader) ? cookieHeader : [cookieHeader];
  for (const line of lines) {
    for (const pair of line.split(";")) {
      const equals = pair.indexOf("=");
      if (equals < 0 || pair.slice(0, equals).trim() !== cookie) continue;
      const token = pair
        .slice(equals + 1)
        .trim()
        .replace(/^"(.*)"$/, "$1");
      return token === "" ? undefined : token;
    }
  }
  return undefined;
}

/** The answer to a refused request. */
export interface Refusal {
  status: 401 | 503;
  headers: Record<string, string>;
  body: { error: "invalid_token" | "service_unavailable"; message: string };
}

/**
 * 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"` for a missing
 * (`undefined`) or refused token; 503 `service_unavailable` with `Retry-After: 1` for a stale
 * verifier.
 */
export function refusal(error: VerifyError | undefined): Refusal {
  if (error?.code === "stale") {
    return {
      status: 503,
      headers: { "Retry-After": "1", "Cache-Control": "no-store" },
      body: {
        error: "service_unavailable",
        message: "The service is temporarily unavailable; retry shortly.",
      },
    };
  }
  return {
    status: 401,
    headers: { "WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store" },
    body: { error: "invalid_token", message: "The access token is missing, invalid or expired." },
  };
}

/** Whether `e` is one of the verifier's refusals (anything else is a bug to pass on). */
export function isRefusal(e: unknown): e is VerifyError {
  return e instanceof VerifyError;
}
