/**
 * What the verifier and its background loops share: the key set, the revoked-session set, and
 * when authd last confirmed them.
 */
import type { AuthdClient } from "./client.js";
import type { FetchError } from "./errors.js";
import type { KeySet } from "./keys.js";
import type { RevokedSet } from "./revoked.js";

/** The longest the revoked set goes unpurged while the feed answers. */
const PURGE_EVERY_MS = 1000;

/** Where the kit's few messages go; never a token or the key. */
export interface Logger {
  warn(message: string): void;
  info?(message: string): void;
}

/** The settings fixed at creation. */
export interface Config {
  readonly baseUrl: string;
  readonly issuer: string;
  readonly audience: string;
  readonly leewaySecs: number;
  readonly maxStalenessMs: number | undefined;
  /** The long-poll's `wait`, in seconds (1..30). */
  readonly pollWaitSecs: number;
  /** The least time between two JWKS refetches asked for by unknown `kid`s. */
  readonly jwksRefetchIntervalMs: number;
  /** How often the JWKS is refetched anyway, so that retired keys leave. */
  readonly jwksRefreshIntervalMs: number;
}

/** The state behind one {@link Verifier} and its background loops. */
export class State {
  keys: KeySet;
  revoked: RevokedSet;
  /** When the feed last answered successfully (Unix milliseconds, by `now`). */
  lastSyncMs: number;
  /** The latest failure of the feed since its last success. */
  lastError: FetchError | null = null;
  /** Aborted by `close()`: ends the loops and any request in flight. */
  readonly stop = new AbortController();
  /** Asks the JWKS loop for a refetch; set by the loop. */
  refetchJwks: () => void = () => {};
  #lastPurgeMs: number;
  #lastRefetchMs = Number.NEGATIVE_INFINITY;

  constructor(
    readonly config: Config,
    readonly client: AuthdClient,
    readonly now: () => number,
    readonly logger: Logger | null,
    keys: KeySet,
    revoked: RevokedSet,
  ) {
    this.keys = keys;
    this.revoked = revoked;
    this.lastSyncMs = now();
    this.#lastPurgeMs = this.lastSyncMs;
  }

  get closed(): boolean {
    return this.stop.signal.aborted;
  }

  get leewayMs(): number {
    return this.config.leewaySecs * 1000;
  }

  /** Records a successful answer of the feed. */
  synced(): void {
    this.lastSyncMs = this.now();
    this.lastError = null;
  }

  /** Records a failed request to the feed. */
  failed(error: FetchError): void {
    this.lastError = error;
  }

  /** The time since the feed last answered successfully (zero if the clock went back). */
  stalenessMs(): number {
    return Math.max(0, this.now() - this.lastSyncMs);
  }

  /** Whether `maxStalenessMs` is set and exceeded. */
  isStale(): boolean {
    const max = this.config.maxStalenessMs;
    return max !== undefined && this.stalenessMs() > max;
  }

  /** Forgets the entries past their horizon plus the leeway, at most once a second. */
  purgeIfDue(): void {
    const now = this.now();
    const last = this.#lastPurgeMs;
    // A clock that went back purges at once rather than waiting for it to catch up.
    if (now >= last && now < last + PURGE_EVERY_MS) return;
    this.#lastPurgeMs = now;
    this.revoked.purge(now, this.leewayMs);
  }

  /**
   * Asks for a JWKS refetch, unless an unknown `kid` already did within the refetch interval.
   * Never waits.
   */
  wantJwks(): void {
    const now = this.now();
    const last = this.#lastRefetchMs;
    if (now >= last && now < last + this.config.jwksRefetchIntervalMs) return;
    this.#lastRefetchMs = now;
    this.refetchJwks();
  }
}
