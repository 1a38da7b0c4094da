/** Helpers around the kit: waiting for a refusal, forging tokens, watching the kit's requests. */
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, sign, type KeyObject } from "node:crypto";

import { RevokedError, type FetchLike, type Verifier, type VerifyError } from "@authd/verify";

import { sleep } from "./authd.js";

/** The promise of the contract, and the tests' deadline: an ended session refused within 1 s. */
export const DEADLINE_MS = 1000;

/**
 * Polls `verify(token)` until it is refused as revoked; returns the milliseconds since `since`.
 * Fails if the token is still accepted after `deadlineMs`, or refused for another reason.
 */
export async function refusedWithin(
  verifier: Verifier,
  token: string,
  since: number,
  what: string,
  deadlineMs = DEADLINE_MS,
): Promise<number> {
  for (;;) {
    try {
      await verifier.verify(token);
    } catch (e) {
      if (e instanceof RevokedError) return performance.now() - since;
      throw e;
    }
    const took = performance.now() - since;
    assert.ok(took < deadlineMs, `${what}: still accepted after ${Math.round(took)} ms`);
    await sleep(2);
  }
}

/** Polls `condition` every 20 ms until it holds, or fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await condition()) return performance.now() - start;
    assert.ok(performance.now() - start < timeoutMs, `${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Asserts that `verify` refuses with `kind` (a VerifyError subclass). */
export async function refuses(
  verifier: Verifier,
  token: string,
  kind: abstract new (...args: never[]) => VerifyError,
  what: string,
): Promise<void> {
  await assert.rejects(verifier.verify(token), (e: unknown) => {
    assert.ok(e instanceof kind, `${what}: expected ${kind.name}, got ${String(e)}`);
    return true;
  });
}

export const b64url = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** The claims of a token, unverified. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<
    string,
    unknown
  >;
}

/** A compact JWS signed with an Ed25519 key of ours, with any header we like. */
export function signEd25519(header: object, claims: object, key: KeyObject): string {
  const input = `${b64url(header)}.${b64url(claims)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
}

/** A compact JWS signed with HS256 and `secret`. */
export function signHs256(header: object, claims: object, secret: Buffer | string): string {
  const input = `${b64url(header)}.${b64url(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** An Ed25519 key pair of ours, its public half as a JWK named `kid`. */
export function ownKey(kid: string): { privateKey: KeyObject; jwk: Record<string, string> } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const { x } = publicKey.export({ format: "jwk" }) as { x: string };
  return { privateKey, jwk: { kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig" } };
}

/** One request the kit sent, seen by {@link watchedFetch}. */
export interface Seen {
  url: URL;
  at: number;
}

/**
 * A `fetch` for the kit that records each request, can add keys to authd's JWKS answer (so that
 * tokens we sign pass as authd's), and can replace the next feed answer.
 */
export function watchedFetch(): {
  fetch: FetchLike;
  seen: Seen[];
  extraKeys: Record<string, string>[];
  /** When set, answers the next feed request itself (and clears itself). */
  nextFeed: { status: number; headers: Record<string, string>; body: unknown } | undefined;
  /** When set, rewrites the next feed request's cursor (and clears itself). */
  nextCursor: string | undefined;
  /** Milliseconds to hold each snapshot request (a feed request without cursor) before sending it. */
  snapshotDelayMs: number;
} {
  const watcher = {
    seen: [] as Seen[],
    extraKeys: [] as Record<string, string>[],
    nextFeed: undefined as { status: number; headers: Record<string, string>; body: unknown } | undefined,
    nextCursor: undefined as string | undefined,
    snapshotDelayMs: 0,
    fetch: (async (url, init) => {
      const parsed = new URL(url);
      if (
        parsed.pathname === "/auth/revocations" &&
        watcher.nextCursor !== undefined &&
        parsed.searchParams.has("cursor")
      ) {
        parsed.searchParams.set("cursor", watcher.nextCursor);
        watcher.nextCursor = undefined;
      }
      watcher.seen.push({ url: parsed, at: performance.now() });
      if (
        parsed.pathname === "/auth/revocations" &&
        !parsed.searchParams.has("cursor") &&
        watcher.snapshotDelayMs > 0
      ) {
        await sleep(watcher.snapshotDelayMs);
      }
      if (parsed.pathname === "/auth/revocations" && watcher.nextFeed) {
        const { status, headers, body } = watcher.nextFeed;
        watcher.nextFeed = undefined;
        return new Response(JSON.stringify(body), { status, headers });
      }
      const answer = await fetch(parsed, init);
      if (parsed.pathname !== "/.well-known/jwks.json" || watcher.extraKeys.length === 0) return answer;
      const jwks = (await answer.json()) as { keys: unknown[] };
      jwks.keys.push(...watcher.extraKeys);
      return new Response(JSON.stringify(jwks), { status: answer.status });
    }) as FetchLike,
  };
  return watcher;
}
