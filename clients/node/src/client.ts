/**
 * The two requests the verifier makes to authd: the JWKS and a page of the revocation feed.
 * Every request is counted, so that tests can prove verification itself makes none.
 */
import { FetchError } from "./errors.js";
import { parseJwks, type KeySet } from "./keys.js";
import { RevokedSet, type Entry } from "./revoked.js";
import type { HttpResponse, Transport } from "./transport.js";

/** Entries asked for per page. */
const PAGE_LIMIT = 1000;

/** One answer of the feed. */
export interface Page {
  entries: Entry[];
  cursor: string;
  more: boolean;
}

/** A client for one authd, holding the service key. */
export class AuthdClient {
  readonly #jwksUrl: string;
  readonly #feedUrl: string;
  /** `Bearer authd_sk_...`: never logged, never in an error. */
  readonly #authorization: string;
  readonly #fetch: Transport;
  readonly #timeoutMs: number;
  readonly #closed: AbortSignal;
  #requests = 0;
  /** Set once the verifier runs: from then on no request keeps the process alive. */
  background = false;

  /** A client for the authd at `base` (no trailing slash); `closed` aborts every request. */
  constructor(base: string, serviceKey: string, fetch: Transport, timeoutMs: number, closed: AbortSignal) {
    this.#jwksUrl = `${base}/.well-known/jwks.json`;
    this.#feedUrl = `${base}/auth/revocations`;
    this.#authorization = `Bearer ${serviceKey}`;
    this.#fetch = fetch;
    this.#timeoutMs = timeoutMs;
    this.#closed = closed;
  }

  /** How many requests were sent so far. */
  get requests(): number {
    return this.#requests;
  }

  /** `GET /.well-known/jwks.json`. */
  async jwks(): Promise<KeySet> {
    const answer = await this.#get(this.#jwksUrl, {}, this.#timeoutMs);
    return parseJwks(await ok(answer));
  }

  /**
   * `GET /auth/revocations`: the snapshot's first page without `cursor`, else the entries after
   * it, held up to `waitSecs` seconds while there are none.
   */
  async page(cursor: string | undefined, waitSecs: number): Promise<Page> {
    const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
    if (cursor !== undefined) query.set("cursor", cursor);
    if (waitSecs > 0) query.set("wait", String(waitSecs));
    const answer = await this.#get(
      `${this.#feedUrl}?${query}`,
      { authorization: this.#authorization },
      this.#timeoutMs + waitSecs * 1000,
    );
    return readPage(await ok(answer));
  }

  /**
   * The whole snapshot, page after page, purged of the entries already past `now` plus
   * `leewayMs`; with the cursor to follow next.
   */
  async snapshot(now: () => number, leewayMs: number): Promise<{ revoked: RevokedSet; cursor: string }> {
    const revoked = new RevokedSet();
    let cursor: string | undefined;
    for (;;) {
      const page = await this.page(cursor, 0);
      revoked.insertAll(page.entries);
      revoked.purge(now(), leewayMs);
      if (!page.more) return { revoked, cursor: page.cursor };
      cursor = page.cursor;
    }
  }

  async #get(url: string, headers: Record<string, string>, timeoutMs: number): Promise<HttpResponse> {
    this.#requests += 1;
    const signal = AbortSignal.any([this.#closed, AbortSignal.timeout(timeoutMs)]);
    try {
      return await this.#fetch(
        url,
        { method: "GET", headers: { accept: "application/json", ...headers }, signal },
        this.background,
      );
    } catch (e) {
      throw new FetchError("unreachable", `authd could not be reached: ${describe(e)}`);
    }
  }
}

/** The body of a success, else the contract's error for the status. */
async function ok(answer: HttpResponse): Promise<string> {
  let body: string;
  try {
    body = await answer.text();
  } catch (e) {
    throw new FetchError("unreachable", `authd's answer was cut short: ${describe(e)}`);
  }
  const status = answer.status;
  if (status >= 200 && status < 300) return body;
  const details = { status };
  switch (status) {
    case 401:
      throw new FetchError(
        "invalid_service_key",
        "authd refused the service key (invalid_service_key)",
        details,
      );
    case 403:
      throw new FetchError(
        "insufficient_scope",
        "the service key lacks the scope revocations:read (insufficient_scope)",
        details,
      );
    case 410:
      throw new FetchError(
        "cursor_expired",
        "authd can no longer serve the cursor (cursor_expired)",
        details,
      );
    case 429:
    case 503: {
      const retryAfterMs = parseRetryAfter(answer.headers.get("retry-after"));
      throw new FetchError("unavailable", `authd is unavailable (status ${status})`, {
        status,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
    }
    default:
      throw new FetchError("status", `authd answered status ${status} (${errorCode(body)})`, details);
  }
}

/** The `error` of a contract error body, or an empty string. */
function errorCode(body: string): string {
  try {
    const code = (JSON.parse(body) as { error?: unknown }).error;
    return typeof code === "string" ? code.slice(0, 64) : "";
  } catch {
    return "";
  }
}

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** A feed page, checked against the contract. */
function readPage(body: string): Page {
  let page: unknown;
  try {
    page = JSON.parse(body);
  } catch (e) {
    throw new FetchError("body", `the feed's answer is not JSON: ${(e as Error).message}`);
  }
  const { entries, cursor, more } = (page ?? {}) as Record<string, unknown>;
  if (!Array.isArray(entries) || typeof cursor !== "string" || typeof more !== "boolean") {
    throw new FetchError("body", "the feed's answer lacks entries, cursor or more");
  }
  for (const entry of entries as unknown[]) {
    const { session_id, expires_at } = (entry ?? {}) as Record<string, unknown>;
    if (typeof session_id !== "string" || typeof expires_at !== "string") {
      throw new FetchError("body", "a feed entry lacks session_id or expires_at");
    }
  }
  return { entries: entries as Entry[], cursor, more };
}

/** An error's message with its causes (`fetch failed` alone names no reason). */
function describe(e: unknown): string {
  const parts: string[] = [];
  let cause: unknown = e;
  for (let depth = 0; cause !== undefined && cause !== null && depth < 4; depth += 1) {
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      parts.push(
        typeof code === "string" && !cause.message.includes(code)
          ? `${cause.message} (${code})`
          : cause.message,
      );
      cause = cause.cause;
    } else {
      parts.push(String(cause));
      break;
    }
  }
  return parts.join(": ") || "unknown error";
}
