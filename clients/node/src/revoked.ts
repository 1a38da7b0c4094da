/**
 * The revoked-session set: session id -> the time after which no access token of that session
 * can verify. Entries are forgotten once that time plus the leeway has passed, so the set holds
 * at most the revocations of one access-token lifetime.
 */
import { FetchError } from "./errors.js";

/** One ended session, as the feed sends it; only the fields the verifier needs are read. */
export interface Entry {
  session_id: string;
  /** RFC 3339: after it no access token of the session can verify. */
  expires_at: string;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** `expires_at` in Unix milliseconds. */
export function horizonOf(entry: Entry): number {
  const millis = RFC3339.test(entry.expires_at) ? Date.parse(entry.expires_at) : NaN;
  if (!Number.isFinite(millis)) {
    throw new FetchError("body", `unreadable expires_at ${JSON.stringify(entry.expires_at)}`);
  }
  return millis;
}

/** Ended sessions, by id, with their horizon (`expires_at`, Unix milliseconds). */
export class RevokedSet {
  readonly #horizons = new Map<string, number>();

  /** How many sessions are held. */
  get size(): number {
    return this.#horizons.size;
  }

  /** Whether `sessionId` has ended. */
  has(sessionId: string): boolean {
    return this.#horizons.has(sessionId);
  }

  /**
   * Adds a page's entries, all or none: a page with an unreadable entry is refused whole (and
   * retried), as skipping the entry would let that session's tokens verify. Delivery is at
   * least once: an entry seen twice keeps the later horizon.
   */
  insertAll(entries: readonly Entry[]): void {
    const horizons = entries.map(horizonOf);
    entries.forEach((entry, i) => {
      const horizon = horizons[i] as number;
      const held = this.#horizons.get(entry.session_id);
      this.#horizons.set(entry.session_id, held === undefined ? horizon : Math.max(held, horizon));
    });
  }

  /** Forgets the sessions whose horizon plus `leewayMs` is before `nowMs`. */
  purge(nowMs: number, leewayMs: number): void {
    for (const [sessionId, horizon] of this.#horizons) {
      if (nowMs > horizon + leewayMs) this.#horizons.delete(sessionId);
    }
  }
}
