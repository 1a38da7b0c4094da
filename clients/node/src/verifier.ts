/**
 * The verifier: checks an access token against authd's keys and the revoked-session set, in
 * memory, with no request per call.
 */
import { inspect } from "node:util";

import { errors as jose, jwtVerify, type JWTPayload } from "jose";

import { AuthdClient } from "./client.js";
import {
  BuildError,
  ExpiredError,
  FetchError,
  ForbiddenHeaderError,
  InvalidError,
  MalformedError,
  NotYetValidError,
  RevokedError,
  StaleError,
  UnknownKeyError,
} from "./errors.js";
import { State, type Logger } from "./state.js";
import { feedLoop, startJwksLoop } from "./sync.js";
import { nodeTransport, type FetchLike, type Transport } from "./transport.js";

/** Tokens longer than this many bytes are refused before any parsing. */
export const MAX_TOKEN_BYTES = 4096;

/** The `typ` header of authd's access tokens. */
const TYP = "at+jwt";
/** Header parameters authd never writes: each fetches, embeds or reinterprets a key. */
const FORBIDDEN_HEADERS = ["jku", "jwk", "x5u", "x5c", "crit", "enc", "zip", "b64"] as const;
/** The claims every access token carries. */
const REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"];
/** The most seconds authd holds a long-poll. */
const MAX_POLL_WAIT_SECS = 30;
/** The least `maxStalenessMs`: a long-poll must be able to come back well within it. */
const MIN_MAX_STALENESS_MS = 2000;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** Only {@link createVerifier} makes verifiers: one holds loaded state or does not exist. */
const CREATE = Symbol("createVerifier");

/** The claims of a verified access token. */
export interface Claims {
  /** The issuer: authd's URL. */
  iss: string;
  /** The audience. */
  aud: string;
  /** The user id. */
  sub: string;
  /** The session id: the session's end refuses the token. */
  sid: string;
  /** The token id. */
  jti: string;
  /** Issued at, in seconds since the Unix epoch. */
  iat: number;
  /** Expires at, in seconds since the Unix epoch. */
  exp: number;
  /** Not before, when the token carries it (authd never writes it; one that is there is honoured). */
  nbf?: number;
  /** The user's email, when the token carries it. */
  email?: string;
  /** Every other claim (`email_verified`, `amr`, `app_metadata`, ...), as sent. */
  [claim: string]: unknown;
}

/** The settings of {@link createVerifier}. Every one but `baseUrl` and `serviceKey` has a default. */
export interface VerifierOptions {
  /** authd's base URL, e.g. `https://auth.example.com`. */
  baseUrl: string;
  /** A service key (`authd_sk_...`) with the scope `revocations:read`. */
  serviceKey: string;
  /** The `iss` tokens must carry. Default: `baseUrl` without a trailing slash. */
  issuer?: string;
  /** The `aud` tokens must carry. Default: `authd`. */
  audience?: string;
  /** The clock-skew allowance on `exp` and `iat`, also kept on each ended session's horizon. Default: 30. */
  leewaySecs?: number;
  /**
   * When set, `verify` throws {@link StaleError} (503) once the feed has not answered for longer
   * than this; the long-poll then waits at most half of it. At least 2000. Default: unset, so
   * that an unreachable authd leaves the last known set enforced.
   */
  maxStalenessMs?: number;
  /** How long authd may hold a long-poll with nothing new, 1 to 30 seconds (clamped). Default: 25. */
  pollWaitSecs?: number;
  /** The least time between two JWKS refetches asked for by unknown `kid`s. Default: 10,000. */
  jwksRefetchIntervalMs?: number;
  /** How often the JWKS is refetched anyway, so that retired keys leave. Default: 300,000. */
  jwksRefreshIntervalMs?: number;
  /** The time limit of a request to authd (a long-poll gets its wait on top). Default: 10,000. */
  requestTimeoutMs?: number;
  /**
   * The HTTP client, for a proxy or custom TLS; the global `fetch` fits. Default: Node's
   * `http`/`https` with sockets that do not keep the process alive (a `fetch` given here keeps
   * it alive while a long-poll is open, until `close()`).
   */
  fetch?: FetchLike;
  /** The current time in Unix milliseconds, for tokens, staleness and horizons. Default: `Date.now`. */
  now?: () => number;
  /** Where warnings go (never a token or the key). Default: `console`; `null` is silent. */
  logger?: Logger | null;
}

/** What a verifier knows, for health checks and metrics. */
export interface VerifierStatus {
  /** Whether `verify` answers from authd's state: not closed, and `maxStalenessMs`, if set, not exceeded. */
  ready: boolean;
  /** When the feed last answered successfully (a long-poll that ended empty counts). */
  lastSync: Date;
  /** The time since `lastSync`, in milliseconds. */
  stalenessMs: number;
  /** How many ended sessions are held. */
  revokedEntries: number;
  /** How many keys the JWKS gave. */
  keys: number;
  /** How many HTTP requests the verifier has sent to authd so far. */
  requests: number;
  /** The latest failure of the feed since its last success (`null` while it answers). */
  lastError: FetchError | null;
}

/**
 * Fetches authd's JWKS and the whole revocation snapshot, then starts following the feed.
 * Resolves only to a ready verifier; rejects with a {@link BuildError} if either cannot be
 * loaded, with no retry (a service that starts without authd should fail loudly).
 */
export async function createVerifier(options: VerifierOptions): Promise<Verifier> {
  const settings = checkOptions(options);
  const stop = new AbortController();
  const given = options.fetch;
  const transport = given
    ? { fetch: ((url, init) => given(url, init)) as Transport, close() {} }
    : nodeTransport();
  const client = new AuthdClient(
    settings.config.baseUrl,
    settings.serviceKey,
    transport.fetch,
    settings.requestTimeoutMs,
    stop.signal,
  );
  const now = options.now ?? Date.now;
  const [jwks, snapshot] = await Promise.allSettled([
    client.jwks(),
    client.snapshot(now, settings.config.leewaySecs * 1000),
  ]);
  if (jwks.status === "rejected" || snapshot.status === "rejected") {
    transport.close();
    if (jwks.status === "rejected") {
      throw new BuildError("jwks", "the JWKS could not be loaded", asFetchError(jwks.reason));
    }
    const reason = (snapshot as PromiseRejectedResult).reason;
    throw new BuildError("snapshot", "the revocation snapshot could not be loaded", asFetchError(reason));
  }
  const logger = options.logger === undefined ? consoleLogger : options.logger;
  const state = new State(settings.config, client, now, logger, jwks.value, snapshot.value.revoked);
  // The loops end with the state's stop signal; `stop` is what the client's requests listen to.
  state.stop.signal.addEventListener(
    "abort",
    () => {
      stop.abort();
      transport.close();
    },
    { once: true },
  );
  client.background = true;
  startJwksLoop(state);
  feedLoop(state, snapshot.value.cursor).catch((e: unknown) => {
    // Not expected: the loop handles every failure of authd itself. Never an unhandled rejection.
    state.failed(new FetchError("body", `the revocation feed loop stopped: ${(e as Error).message}`));
    logger?.warn(`the revocation feed loop stopped: ${(e as Error).message}`);
  });
  return new Verifier(state, CREATE);
}

/**
 * Verifies authd's access tokens locally. Made by {@link createVerifier}; holds no global state,
 * so several can live in one process. Its background loop (the feed's long-poll and the JWKS
 * refreshes) runs until {@link Verifier.close}, and never keeps the process alive by itself.
 */
export class Verifier {
  readonly #state: State;

  /** Use {@link createVerifier}. */
  constructor(state: State, token: symbol) {
    if (token !== CREATE) throw new TypeError("use createVerifier() to make a Verifier");
    this.#state = state;
  }

  /**
   * Verifies `token` (the compact JWS, without `Bearer `) and resolves to its claims; rejects
   * with a {@link VerifyError} subclass. Makes no request: the keys and the revoked set are in
   * memory. An unknown `kid` is refused and asks for a JWKS refetch in the background.
   */
  async verify(token: string): Promise<Claims> {
    const state = this.#state;
    if (typeof token !== "string" || token.length === 0 || Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
      throw new MalformedError();
    }
    const header = readHeader(token);
    checkHeader(header);
    const kid = header.kid;
    if (typeof kid !== "string" || kid === "") throw new UnknownKeyError();
    const key = state.keys.get(kid);
    if (key === undefined) {
      state.wantJwks();
      throw new UnknownKeyError();
    }
    const { config } = state;
    const nowMs = state.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: ["EdDSA"],
        issuer: config.issuer,
        audience: config.audience,
        requiredClaims: REQUIRED_CLAIMS,
        currentDate: new Date(nowMs),
        // jose refuses at `exp <= now - tolerance`; authd at `now > exp + leeway`. With whole
        // seconds, one more second of tolerance makes the two the same rule.
        clockTolerance: config.leewaySecs + 1,
      }));
    } catch (e) {
      if (e instanceof jose.JWTExpired) throw new ExpiredError();
      if (e instanceof jose.JWTClaimValidationFailed && e.claim === "nbf" && e.reason === "check_failed") {
        throw new NotYetValidError();
      }
      throw new InvalidError();
    }
    const claims = checkClaims(payload);
    // authd never writes `nbf`; one that is there is honoured (RFC 7519), by the same rule as `iat`.
    const notBefore = Math.max(claims.iat, claims.nbf ?? claims.iat);
    if (notBefore > Math.floor(nowMs / 1000) + config.leewaySecs) throw new NotYetValidError();
    // A session known to have ended is refused even when the set is stale.
    if (state.revoked.has(claims.sid)) throw new RevokedError();
    if (state.closed || state.isStale()) throw new StaleError();
    return claims;
  }

  /** What the verifier knows now. */
  status(): VerifierStatus {
    const state = this.#state;
    return {
      ready: !state.closed && !state.isStale(),
      lastSync: new Date(state.lastSyncMs),
      stalenessMs: state.stalenessMs(),
      revokedEntries: state.revoked.size,
      keys: state.keys.size,
      requests: state.client.requests,
      lastError: state.lastError,
    };
  }

  /**
   * Stops the background loop and aborts the request in flight. A closed verifier refuses
   * every token with {@link StaleError}: it can no longer vouch for any session.
   */
  close(): void {
    this.#state.stop.abort();
  }

  /** What `JSON.stringify` shows: the settings and the status, never the service key. */
  toJSON(): Record<string, unknown> {
    const { baseUrl, issuer, audience } = this.#state.config;
    return { baseUrl, issuer, audience, serviceKey: "<redacted>", status: this.status() };
  }

  /** What `console.log` and `util.inspect` show: the same as {@link Verifier.toJSON}. */
  [inspect.custom](_depth: number, options: object): string {
    return `Verifier ${inspect(this.toJSON(), options)}`;
  }
}

/** The header of a compact JWS, or {@link MalformedError}. */
function readHeader(token: string): Record<string, unknown> {
  const parts = token.split(".");
  if (parts.length !== 3) throw new MalformedError();
  const [header, payload, signature] = parts as [string, string, string];
  if (!header || !payload || !signature || !parts.every((part) => BASE64URL.test(part))) {
    throw new MalformedError();
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(header, "base64url").toString("utf8"));
  } catch {
    throw new MalformedError();
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new MalformedError();
  return value as Record<string, unknown>;
}

/** Refuses every header authd does not write. */
function checkHeader(header: Record<string, unknown>): void {
  if (header.alg !== "EdDSA" || header.typ !== TYP || FORBIDDEN_HEADERS.some((name) => name in header)) {
    throw new ForbiddenHeaderError();
  }
}

/** The claims, typed as authd writes them, or {@link InvalidError}. */
function checkClaims(payload: JWTPayload): Claims {
  const { aud, sub, sid, jti, iat, exp, nbf, email } = payload as Record<string, unknown>;
  const strings = [aud, sub, sid, jti].every((value) => typeof value === "string");
  const times =
    Number.isSafeInteger(iat) &&
    Number.isSafeInteger(exp) &&
    (exp as number) >= (iat as number) &&
    (nbf === undefined || Number.isSafeInteger(nbf));
  if (!strings || !times || (email !== undefined && typeof email !== "string")) {
    throw new InvalidError();
  }
  return payload as Claims;
}

/** The settings, checked, with the defaults filled in. */
function checkOptions(options: VerifierOptions): {
  config: State["config"];
  serviceKey: string;
  requestTimeoutMs: number;
} {
  const { serviceKey } = options ?? {};
  if (serviceKey === undefined || serviceKey === null) {
    throw new BuildError("missing_service_key", "a service key with the scope revocations:read is required");
  }
  // Visible ASCII only: it travels in a header.
  if (typeof serviceKey !== "string" || !/^[\x21-\x7e]+$/.test(serviceKey)) {
    throw new BuildError("invalid_service_key", "the service key is not a valid header value");
  }
  const base = String(options?.baseUrl ?? "").replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new BuildError("invalid_base_url", `the base URL is not an http(s) URL: ${base}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new BuildError("invalid_base_url", `the base URL is not an http(s) URL: ${base}`);
  }
  const leewaySecs = Math.floor(setting("leewaySecs", options.leewaySecs, 30, 0));
  const maxStalenessMs = options.maxStalenessMs;
  if (maxStalenessMs !== undefined) {
    setting("maxStalenessMs", maxStalenessMs, 0, MIN_MAX_STALENESS_MS);
  }
  let pollWaitSecs = setting("pollWaitSecs", options.pollWaitSecs, 25, 0);
  if (maxStalenessMs !== undefined) pollWaitSecs = Math.min(pollWaitSecs, maxStalenessMs / 2000);
  pollWaitSecs = Math.min(Math.max(Math.floor(pollWaitSecs), 1), MAX_POLL_WAIT_SECS);
  return {
    serviceKey,
    requestTimeoutMs: setting("requestTimeoutMs", options.requestTimeoutMs, 10_000, 1),
    config: {
      baseUrl: base,
      issuer: options.issuer ?? base,
      audience: options.audience ?? "authd",
      leewaySecs,
      maxStalenessMs,
      pollWaitSecs,
      jwksRefetchIntervalMs: setting("jwksRefetchIntervalMs", options.jwksRefetchIntervalMs, 10_000, 0),
      jwksRefreshIntervalMs: setting("jwksRefreshIntervalMs", options.jwksRefreshIntervalMs, 300_000, 1000),
    },
  };
}

/** A numeric setting: its value or default, refused below `min`. */
function setting(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new BuildError("invalid_setting", `${name} must be a number of at least ${min}`);
  }
  return value;
}

function asFetchError(reason: unknown): FetchError {
  return reason instanceof FetchError ? reason : new FetchError("body", String(reason));
}

const consoleLogger: Logger = {
  warn: (message) => console.warn(`[@authd/verify] ${message}`),
};
