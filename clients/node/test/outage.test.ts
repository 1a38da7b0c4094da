/**
 * Real faults: authd stopped and started again, a cursor authd no longer serves (410), a
 * service key revoked under a running kit, and a 503 with Retry-After.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { createVerifier, RevokedError, StaleError, type Verifier } from "@authd/verify";

import { Authd, sleep, type Tokens } from "./support/authd.js";
import { refusedWithin, refuses, waitFor, watchedFetch } from "./support/kit.js";

let authd: Authd;
let key: string;

before(async () => {
  authd = await Authd.start();
  key = await authd.serviceKey();
});

after(async () => {
  await authd?.dispose();
});

/** A live session and an ended one, both known to `verifiers`. */
async function liveAndEnded(...verifiers: Verifier[]): Promise<{ live: Tokens; ended: Tokens }> {
  const live = await authd.user();
  const ended = await authd.login(live.email);
  const since = performance.now();
  await authd.logout(ended.access_token);
  for (const v of verifiers) {
    await v.verify(live.access_token);
    await refusedWithin(v, ended.access_token, since, "before the outage");
  }
  return { live, ended };
}

test("with authd stopped the kit keeps its set, reports growing staleness, and with maxStalenessMs answers Stale; it recovers when authd is back", async () => {
  const lenient = await createVerifier({ baseUrl: authd.baseUrl, serviceKey: key, logger: null });
  const strict = await createVerifier({
    baseUrl: authd.baseUrl,
    serviceKey: key,
    maxStalenessMs: 2000,
    logger: null,
  });
  try {
    const { live, ended } = await liveAndEnded(lenient, strict);
    await authd.stop();
    const stopped = performance.now();

    // Live tokens verify, known-ended ones are refused: the last known set is enforced.
    await lenient.verify(live.access_token);
    await refuses(lenient, ended.access_token, RevokedError, "ended, authd down");
    await waitFor(() => lenient.status().lastError?.code === "unreachable", 3000, "lastError unreachable");
    const first = lenient.status().stalenessMs;
    await sleep(600);
    const status = lenient.status();
    assert.ok(status.stalenessMs >= first + 500, `staleness grows: ${first} then ${status.stalenessMs}`);
    assert.equal(status.ready, true, "no maxStalenessMs: still ready");
    assert.equal((await lenient.verify(live.access_token)).sid, live.session_id);

    // With maxStalenessMs: Stale (503) once it is exceeded; a known-ended session stays Revoked.
    const staleAfter = await waitFor(() => !strict.status().ready, 5000, "the strict verifier goes stale");
    console.log(
      `# maxStalenessMs 2000: stale ${(performance.now() - stopped).toFixed(0)} ms after authd stopped (waited ${staleAfter.toFixed(0)} ms)`,
    );
    await refuses(strict, live.access_token, StaleError, "live token, stale set");
    const stale = await strict.verify(live.access_token).catch((e: StaleError) => e);
    assert.equal((stale as StaleError).status, 503);
    assert.equal((stale as StaleError).error, "service_unavailable");
    await refuses(strict, ended.access_token, RevokedError, "ended token, stale set");
    await lenient.verify(live.access_token);

    // authd comes back (same port, same database): both follow the feed again.
    const requestsDown = strict.status().requests;
    await authd.serve();
    const back = await waitFor(
      () => strict.status().ready && lenient.status().lastError === null,
      10_000,
      "recovery",
    );
    console.log(`# recovered ${back.toFixed(0)} ms after authd answered again`);
    assert.ok(strict.status().requests > requestsDown);
    await strict.verify(live.access_token);
    const since = performance.now();
    await authd.logout(live.access_token);
    await refusedWithin(strict, live.access_token, since, "after the recovery");
    await refusedWithin(lenient, live.access_token, since, "after the recovery");
  } finally {
    lenient.close();
    strict.close();
    if (!authd.running) await authd.serve();
  }
});

test("on 410 cursor_expired the kit reloads the snapshot, keeping the old set until the new one is complete", async () => {
  const watch = watchedFetch();
  const kit = await createVerifier({
    baseUrl: authd.baseUrl,
    serviceKey: key,
    fetch: watch.fetch,
    pollWaitSecs: 1,
    logger: null,
  });
  try {
    const { live, ended } = await liveAndEnded(kit);
    const snapshots = () =>
      watch.seen.filter((r) => r.url.pathname === "/auth/revocations" && !r.url.searchParams.has("cursor"))
        .length;
    assert.equal(snapshots(), 1);
    // The next poll carries a cursor this database never made: authd answers 410 itself. The
    // reload's snapshot is held back 800 ms, during which the old set must still be enforced.
    watch.snapshotDelayMs = 800;
    watch.nextCursor = "eyJoaWdoIjo5OTk5OTksImdhcHMiOltdfQ.bm90LWEtc2lnbmF0dXJl";
    await waitFor(() => snapshots() === 2, 5000, "the reload started");
    for (let i = 0; i < 5; i += 1) {
      await refuses(kit, ended.access_token, RevokedError, "refused while the snapshot reloads");
      await kit.verify(live.access_token);
      await sleep(100);
    }
    const reloadAt = watch.seen.at(-1)?.at ?? 0;
    await waitFor(
      () => watch.seen.some((r) => r.at > reloadAt && r.url.searchParams.has("cursor")),
      5000,
      "following the new snapshot's cursor",
    );
    watch.snapshotDelayMs = 0;
    assert.equal(kit.status().lastError, null);
    assert.equal(kit.status().ready, true);
    await refuses(kit, ended.access_token, RevokedError, "still refused after the reload");
    await kit.verify(live.access_token);
    const since = performance.now();
    await authd.logout(live.access_token);
    const ms = await refusedWithin(kit, live.access_token, since, "after the reload");
    console.log(`# after a 410 reload: logout refused in ${ms.toFixed(0)} ms`);
  } finally {
    kit.close();
  }
});

test("a service key revoked under a running kit shows as lastError, and with maxStalenessMs the kit goes stale", async () => {
  const ownKey = await authd.serviceKey("short-lived");
  const kit = await createVerifier({
    baseUrl: authd.baseUrl,
    serviceKey: ownKey,
    maxStalenessMs: 2000,
    logger: null,
  });
  try {
    const user = await authd.user();
    await kit.verify(user.access_token);
    await authd.cli("service-keys", "revoke", "short-lived");
    await waitFor(
      () => kit.status().lastError?.code === "invalid_service_key",
      5000,
      "invalid_service_key reported",
    );
    await waitFor(() => !kit.status().ready, 5000, "stale");
    await refuses(kit, user.access_token, StaleError, "stale after the key was revoked");
  } finally {
    kit.close();
  }
});

test("a 503 with Retry-After is obeyed before the next poll", async () => {
  const watch = watchedFetch();
  const kit = await createVerifier({
    baseUrl: authd.baseUrl,
    serviceKey: key,
    fetch: watch.fetch,
    pollWaitSecs: 1,
    logger: null,
  });
  try {
    // Wait for a poll to be held, then answer the one after it with a 503 asking for 2 s.
    await waitFor(() => watch.seen.some((r) => r.url.searchParams.has("wait")), 3000, "a long-poll");
    watch.nextFeed = {
      status: 503,
      headers: { "retry-after": "2", "content-type": "application/json" },
      body: { error: "service_unavailable", message: "busy" },
    };
    await waitFor(() => watch.nextFeed === undefined, 3000, "the 503 answered");
    const refusedAt = watch.seen.at(-1)?.at ?? 0;
    await waitFor(() => kit.status().lastError?.code === "unavailable", 1000, "lastError unavailable");
    assert.equal(kit.status().lastError?.retryAfterMs, 2000);
    await waitFor(() => (watch.seen.at(-1)?.at ?? 0) > refusedAt, 5000, "the next poll");
    const gap = (watch.seen.at(-1)?.at ?? 0) - refusedAt;
    console.log(`# next poll ${gap.toFixed(0)} ms after a 503 with Retry-After: 2`);
    assert.ok(gap >= 1900, `waited ${gap} ms`);
    await waitFor(() => kit.status().lastError === null, 3000, "recovered");
  } finally {
    kit.close();
  }
});
