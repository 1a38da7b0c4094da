/**
 * The errors of the kit: why a token was refused ({@link VerifyError} and its subclasses), why
 * a verifier could not be created ({@link BuildError}), and why a request to authd failed
 * ({@link FetchError}). None of them ever carries a token or the service key.
 */

/** The `code` of each {@link VerifyError} subclass. */
export type VerifyErrorCode =
  | "malformed"
  | "forbidden_header"
  | "unknown_key"
  | "invalid"
  | "expired"
  | "not_yet_valid"
  | "revoked"
  | "stale";

/**
 * Why {@link Verifier.verify} refused a token. Every subclass answers 401 `invalid_token`
 * except {@link StaleError}, which answers 503 `service_unavailable`: the token may be fine,
 * the verifier just cannot vouch for its session right now.
 */
export abstract class VerifyError extends Error {
  /** Which refusal this is. */
  abstract readonly code: VerifyErrorCode;

  /** The HTTP status a resource server should answer: 503 for {@link StaleError}, else 401. */
  get status(): 401 | 503 {
    return this.code === "stale" ? 503 : 401;
  }

  /** The `error` of the answer's body: `service_unavailable` or `invalid_token`. */
  get error(): "invalid_token" | "service_unavailable" {
    return this.code === "stale" ? "service_unavailable" : "invalid_token";
  }

  protected constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Empty, longer than 4096 bytes, or not a compact JWS with a readable header and a signature. */
export class MalformedError extends VerifyError {
  readonly code = "malformed";
  constructor() {
    super("the token is malformed");
  }
}

/**
 * The header is not one authd writes: another `alg` (pinned to `EdDSA`) or `typ` (`at+jwt`),
 * or a parameter that fetches, embeds or changes the meaning of a key (`jku`, `jwk`, `x5u`,
 * `x5c`, `crit`, `enc`, `zip`, `b64`).
 */
export class ForbiddenHeaderError extends VerifyError {
  readonly code = "forbidden_header";
  constructor() {
    super("the token's header is not accepted");
  }
}

/**
 * The header has no `kid`, or one that names no key of authd's JWKS. An unknown `kid` also asks
 * for a JWKS refetch in the background (at most once per `jwksRefetchIntervalMs`).
 */
export class UnknownKeyError extends VerifyError {
  readonly code = "unknown_key";
  constructor() {
    super("the token names no known key");
  }
}

/**
 * The signature does not verify, a required claim is missing or mistyped, or `iss` or `aud`
 * is not the configured one.
 */
export class InvalidError extends VerifyError {
  readonly code = "invalid";
  constructor() {
    super("the token's signature or claims are invalid");
  }
}

/** The current time is past `exp` plus the leeway. */
export class ExpiredError extends VerifyError {
  readonly code = "expired";
  constructor() {
    super("the token has expired");
  }
}

/** `iat` (or `nbf`) is further in the future than the leeway. */
export class NotYetValidError extends VerifyError {
  readonly code = "not_yet_valid";
  constructor() {
    super("the token was issued in the future");
  }
}

/** The token's session (`sid`) has ended. */
export class RevokedError extends VerifyError {
  readonly code = "revoked";
  constructor() {
    super("the token's session has ended");
  }
}

/**
 * `maxStalenessMs` is set and authd has not confirmed the revoked-session set for longer than
 * that, or the verifier was closed. Answers 503, never 401.
 */
export class StaleError extends VerifyError {
  readonly code = "stale";
  constructor() {
    super("the revoked-session set is stale");
  }
}

/** The `code` of a {@link FetchError}. */
export type FetchErrorCode =
  /** No answer: connection refused or reset, DNS, TLS, or the request timed out. */
  | "unreachable"
  /** 401 `invalid_service_key`: the key is unknown or revoked. */
  | "invalid_service_key"
  /** 403 `insufficient_scope`: the key lacks the scope `revocations:read`. */
  | "insufficient_scope"
  /** 503 or 429, with the `Retry-After` authd asked for, if any. */
  | "unavailable"
  /** 410 `cursor_expired`: authd can no longer serve the cursor; the snapshot is reloaded. */
  | "cursor_expired"
  /** Any other status. */
  | "status"
  /** A 200 whose body is not what the contract says. */
  | "body"
  /** The JWKS holds no Ed25519 signing key. */
  | "no_keys";

/** Why one request to authd failed. `status().lastError` reports the latest one. */
export class FetchError extends Error {
  /** What went wrong. */
  readonly code: FetchErrorCode;
  /** The HTTP status, when authd answered. */
  readonly status: number | undefined;
  /** The `Retry-After` of a 503 or 429, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: FetchErrorCode,
    message: string,
    details: { status?: number; retryAfterMs?: number } = {},
  ) {
    super(message);
    this.name = "FetchError";
    this.code = code;
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }

  /** A plain object for logs and health endpoints (an `Error` serialises to `{}`). */
  toJSON(): { code: FetchErrorCode; message: string; status?: number } {
    return {
      code: this.code,
      message: this.message,
      ...(this.status === undefined ? {} : { status: this.status }),
    };
  }
}

/** The `code` of a {@link BuildError}. */
export type BuildErrorCode =
  /** No service key was given (it needs the scope `revocations:read`). */
  | "missing_service_key"
  /** The service key is empty or cannot travel in an HTTP header. */
  | "invalid_service_key"
  /** The base URL is not an `http` or `https` URL. */
  | "invalid_base_url"
  /** A setting is out of range; the message says which. */
  | "invalid_setting"
  /** The JWKS could not be loaded; `cause` is the {@link FetchError}. */
  | "jwks"
  /** The revocation snapshot could not be loaded; `cause` is the {@link FetchError}. */
  | "snapshot";

/**
 * Why {@link createVerifier} failed. A verifier exists only once it holds authd's keys and the
 * whole revocation snapshot.
 */
export class BuildError extends Error {
  /** What went wrong. */
  readonly code: BuildErrorCode;
  /** For `jwks` and `snapshot`: the failed request. */
  declare readonly cause: FetchError | undefined;

  constructor(code: BuildErrorCode, message: string, cause?: FetchError) {
    super(cause ? `${message}: ${cause.message}` : message, cause ? { cause } : undefined);
    this.name = "BuildError";
    this.code = code;
  }
}
