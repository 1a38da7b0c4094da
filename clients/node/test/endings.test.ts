/**
 * Every way a session ends, against a live authd: the kit refuses that session's access token
 * within a second (the measured times are printed), and the sessions that did not end still
 * verify.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { createVerifier, type Verifier } from "@authd/verify";

import { Authd, PASSWORD, type Tokens } from "./support/authd.js";
import { refusedWithin } from "./support/kit.js";

let authd: Authd;
let verifier: Verifier;
const measured: [string, number][] = [];

before(async () => {
  authd = await Authd.start();
  verifier = await createVerifier({
    baseUrl: authd.baseUrl,
    serviceKey: await authd.serviceKey(),
    logger: null,
  });
});

after(async () => {
  verifier?.close();
  await authd?.dispose();
  console.log(`# refusal times: ${measured.map(([what, ms]) => `${what} ${ms.toFixed(0)} ms`).join(", ")}`);
});

/** A user with two sessions: `keeper` (which acts) and `victim` (which ends). */
async function twoSessions(): Promise<{ email: string; keeper: Tokens; victim: Tokens }> {
  const keeper = await authd.user();
  const victim = await authd.login(keeper.email);
  await verifier.verify(keeper.access_token);
  await verifier.verify(victim.access_token);
  return { email: keeper.email, keeper, victim };
}

/**
 * Runs `end`, then measures until every token of `ended` is refused, and checks that `kept`
 * still verify. The clock starts when the request is sent (for a command: when it has exited,
 * as its start-up is no part of the propagation).
 */
async function expectEnded(
  what: string,
  end: () => Promise<void>,
  ended: string[],
  kept: string[] = [],
  from: "sent" | "done" = "sent",
): Promise<void> {
  const sent = performance.now();
  await end();
  const done = performance.now();
  const since = from === "sent" ? sent : done;
  let slowest = 0;
  for (const token of ended) slowest = Math.max(slowest, await refusedWithin(verifier, token, since, what));
  for (const token of kept) await verifier.verify(token);
  measured.push([what, slowest]);
  console.log(
    `# ${what}: refused ${slowest.toFixed(0)} ms after the ${from === "sent" ? "request was sent" : "command exited"} ` +
      `(${from === "sent" ? "authd answered" : "the command ran"} in ${(done - sent).toFixed(0)} ms)`,
  );
}

test("logout (scope local) ends the session", async () => {
  const { keeper, victim } = await twoSessions();
  await expectEnded(
    "logout local",
    () => authd.logout(victim.access_token, "local"),
    [victim.access_token],
    [keeper.access_token],
  );
});

test("logout (scope others) ends every other session", async () => {
  const { keeper, victim } = await twoSessions();
  await expectEnded(
    "logout others",
    () => authd.logout(keeper.access_token, "others"),
    [victim.access_token],
    [keeper.access_token],
  );
});

test("logout (scope global) ends every session", async () => {
  const { keeper, victim } = await twoSessions();
  await expectEnded("logout global", () => authd.logout(keeper.access_token, "global"), [
    victim.access_token,
    keeper.access_token,
  ]);
});

test("DELETE /auth/sessions/{id} with another session's token ends that session", async () => {
  const { keeper, victim } = await twoSessions();
  await expectEnded(
    "DELETE /auth/sessions/{id}",
    () => authd.deleteSession(keeper.access_token, victim.session_id),
    [victim.access_token],
    [keeper.access_token],
  );
});

test("a password change ends every other session", async () => {
  const { keeper, victim } = await twoSessions();
  await expectEnded(
    "password change",
    () =>
      authd
        .post(
          "/auth/password",
          { current_password: PASSWORD, new_password: `${PASSWORD} 2` },
          keeper.access_token,
          204,
        )
        .then(() => {}),
    [victim.access_token],
    [keeper.access_token],
  );
});

test("presenting a rotated refresh token again (reuse, grace 0) ends the session", async () => {
  const { keeper, victim } = await twoSessions();
  const rotated = await authd.refresh(victim.refresh_token);
  assert.ok(rotated);
  assert.equal(rotated.session_id, victim.session_id, "a refresh keeps the session");
  await verifier.verify(rotated.access_token);
  await expectEnded(
    "refresh token reuse",
    () => authd.refresh(victim.refresh_token, 401).then(() => {}),
    [victim.access_token, rotated.access_token],
    [keeper.access_token],
  );
});

test("authd sessions revoke --user ends every session of the user", async () => {
  const { email, keeper, victim } = await twoSessions();
  const bystander = await authd.user();
  await expectEnded(
    "authd sessions revoke",
    () => authd.cli("sessions", "revoke", "--user", email).then(() => {}),
    [victim.access_token, keeper.access_token],
    [bystander.access_token],
    "done",
  );
});

test("authd users disable ends every session of the user", async () => {
  const { email, keeper, victim } = await twoSessions();
  await expectEnded(
    "authd users disable",
    () => authd.cli("users", "disable", email).then(() => {}),
    [victim.access_token, keeper.access_token],
    [],
    "done",
  );
});
