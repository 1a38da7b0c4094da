/**
 * The background loops: one long-poll loop on the revocation feed and the JWKS refreshes.
 * Both end when the verifier is closed; neither keeps the process alive (their timers are
 * unref'd, and so are the default transport's sockets).
 */
import { FetchError } from "./errors.js";
import type { State } from "./state.js";

/** The first retry delay after a failure. */
const BACKOFF_START_MS = 100;
/** The longest retry delay. */
const BACKOFF_MAX_MS = 5000;
/** The longest `Retry-After` obeyed. */
const RETRY_AFTER_MAX_MS = 60_000;
/** While failing, a warning at most this often. */
const WARN_EVERY_MS = 60_000;
/** The next JWKS attempt after a failed one. */
const JWKS_RETRY_MS = 30_000;

/**
 * Follows the feed from `cursor` until the verifier is closed: applies each answer's entries,
 * reloads the snapshot on 410, backs off while authd fails.
 */
export async function feedLoop(state: State, cursor: string): Promise<void> {
  // `undefined`: the cursor expired, the snapshot must be loaded again.
  let position: string | undefined = cursor;
  const backoff = new Backoff();
  const failing = new Failing(state);
  // Whether the cursor followed is a reload's: a 410 for it is not answered by a reload at once.
  let justReloaded = false;
  while (!state.closed) {
    state.purgeIfDue();
    // After a failure the next poll does not wait, so that a recovery shows at once.
    const wait = failing.since === undefined ? state.config.pollWaitSecs : 0;
    try {
      const next: string = position === undefined ? await reload(state) : await follow(state, position, wait);
      justReloaded = position === undefined;
      position = next;
      state.synced();
      backoff.reset();
      failing.recovered();
    } catch (e) {
      if (state.closed) return;
      const error = e instanceof FetchError ? e : new FetchError("body", String(e));
      if (error.code === "cursor_expired" && position !== undefined) {
        position = undefined;
        if (justReloaded) {
          await pause(state, failing, error, backoff.next());
        } else {
          state.logger?.info?.("authd can no longer serve the feed's cursor; reloading the snapshot");
        }
        continue;
      }
      const delay =
        error.code === "unavailable" && error.retryAfterMs !== undefined
          ? Math.min(error.retryAfterMs, RETRY_AFTER_MAX_MS)
          : backoff.next();
      await pause(state, failing, error, delay);
    }
  }
}

/** One poll, held up to `wait` seconds: applies its entries, returns the cursor to follow. */
async function follow(state: State, cursor: string, wait: number): Promise<string> {
  const page = await state.client.page(cursor, wait);
  state.revoked.insertAll(page.entries);
  return page.cursor;
}

/**
 * Loads the JWKS and the whole snapshot again and swaps them in only once both are complete,
 * so that the sessions already known stay refused meanwhile. The keys go with the snapshot:
 * after a 410 authd may be another database, whose predecessor's keys must not keep verifying
 * tokens whose ended sessions just left the set.
 */
async function reload(state: State): Promise<string> {
  const keys = await state.client.jwks();
  const { revoked, cursor } = await state.client.snapshot(state.now, state.leewayMs);
  state.logger?.info?.(`revocation snapshot reloaded (${revoked.size} entries)`);
  state.keys = keys;
  state.revoked = revoked;
  return cursor;
}

/** Reports a failure, then waits `delayMs` (or until the verifier is closed). */
async function pause(state: State, failing: Failing, error: FetchError, delayMs: number): Promise<void> {
  failing.report(error, delayMs);
  state.failed(error);
  await sleep(delayMs, state.stop.signal);
}

/**
 * Refetches the JWKS every `jwksRefreshIntervalMs`, and when an unknown `kid` asks for it
 * (`state.refetchJwks`, rate-limited by `state.wantJwks`). A failed or empty answer keeps the
 * keys held.
 */
export function startJwksLoop(state: State): void {
  let timer: NodeJS.Timeout | undefined;
  let inFlight = false;
  const schedule = (delayMs: number) => {
    clearTimeout(timer);
    if (state.closed) return;
    timer = setTimeout(refetch, delayMs);
    timer.unref();
  };
  const refetch = () => {
    if (inFlight || state.closed) return;
    inFlight = true;
    clearTimeout(timer);
    state.client.jwks().then(
      (keys) => {
        inFlight = false;
        if (state.closed) return;
        state.keys = keys;
        schedule(state.config.jwksRefreshIntervalMs);
      },
      (error: unknown) => {
        inFlight = false;
        if (state.closed) return;
        state.logger?.warn(
          `the JWKS could not be refetched; keeping the keys held (${(error as Error).message})`,
        );
        schedule(Math.min(JWKS_RETRY_MS, state.config.jwksRefreshIntervalMs));
      },
    );
  };
  state.refetchJwks = refetch;
  state.stop.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  schedule(state.config.jwksRefreshIntervalMs);
}

/** Capped exponential backoff with jitter (each delay between half and all of its step). */
export class Backoff {
  #failures = 0;

  next(): number {
    const step = Math.min(BACKOFF_START_MS * 2 ** Math.min(this.#failures, 16), BACKOFF_MAX_MS);
    this.#failures += 1;
    return step * (0.5 + Math.random() / 2);
  }

  reset(): void {
    this.#failures = 0;
  }
}

/** Keeps failure logs to one warning a minute while authd stays unreachable. */
class Failing {
  since: number | undefined;
  #lastWarned: number | undefined;

  constructor(private readonly state: State) {}

  report(error: FetchError, retryInMs: number): void {
    const now = Date.now();
    this.since ??= now;
    if (this.#lastWarned === undefined || now - this.#lastWarned >= WARN_EVERY_MS) {
      this.#lastWarned = now;
      this.state.logger?.warn(
        `the revocation feed failed (${error.message}); enforcing the last known set of ended sessions, retrying in ${Math.round(retryInMs)} ms`,
      );
    }
  }

  recovered(): void {
    if (this.since !== undefined) {
      this.state.logger?.info?.(`the revocation feed answers again after ${Date.now() - this.since} ms`);
    }
    this.since = undefined;
    this.#lastWarned = undefined;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts; never keeps the process alive. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener("abort", done, { once: true });
  });
}
