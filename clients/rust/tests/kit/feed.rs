//! The revocation feed: the snapshot, the long-poll, reloads, outages and forgetting.
use std::time::{Duration, Instant};

use authd_verify::{FetchError, VerifyError};

use crate::fake::Fake;
use crate::support::{Env, SOON, eventually, refusal, until_poll_held};

#[tokio::test]
async fn a_session_ended_while_a_poll_is_held_is_refused_within_one_second() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let token = env.token("s1");
    assert!(verifier.verify(&token).is_ok());
    until_poll_held(&env).await;

    let published = Instant::now();
    env.fake.revoke("s1", env.clock.now_secs() + 300);
    eventually(Duration::from_secs(1), "the session is refused", || {
        verifier.verify(&token) == Err(VerifyError::Revoked)
    })
    .await;
    assert!(published.elapsed() < Duration::from_secs(1));
    assert_eq!(verifier.status().revoked_entries, 1);
}

#[tokio::test]
async fn the_snapshot_is_read_page_by_page_before_build_returns() {
    let env = Env::start();
    env.fake.set_page_size(2);
    let horizon = env.clock.now_secs() + 300;
    for i in 0..5 {
        env.fake.revoke(&format!("s{i}"), horizon);
    }
    let verifier = env.verifier().await;
    for i in 0..5 {
        assert_eq!(
            refusal(&verifier, &env.token(&format!("s{i}"))),
            VerifyError::Revoked
        );
    }
    let status = verifier.status();
    assert!(status.ready);
    assert_eq!(status.revoked_entries, 5);
    assert_eq!(Fake::count(&env.fake.state.snapshot_requests), 1);
    // One JWKS request and three pages (2 + 2 + 1), then at most the long-poll.
    assert!(
        (4..=5).contains(&status.requests),
        "{} requests",
        status.requests
    );
}

#[tokio::test]
async fn entries_delivered_twice_are_held_once() {
    let env = Env::start();
    let now = env.clock.now_secs();
    env.fake.revoke("s1", now + 300);
    let verifier = env.verifier().await;
    until_poll_held(&env).await;
    env.fake.revoke("s1", now + 100);
    env.fake.revoke("s2", now + 300);
    eventually(SOON, "s2 arrives", || {
        verifier.verify(&env.token("s2")) == Err(VerifyError::Revoked)
    })
    .await;
    assert_eq!(verifier.status().revoked_entries, 2);
}

#[tokio::test]
async fn a_410_reloads_the_snapshot_and_keeps_the_old_set_until_it_is_complete() {
    let env = Env::start();
    let horizon = env.clock.now_secs() + 300;
    env.fake.revoke("old", horizon);
    let verifier = env.verifier().await;
    until_poll_held(&env).await;

    // The fake forgets every cursor and, so that the swap shows, its log then holds only `new`.
    env.fake.hold_snapshots();
    env.fake.expire_cursors(&[]);
    env.fake.revoke("new", horizon);
    eventually(SOON, "the reload has started", || {
        Fake::count(&env.fake.state.snapshot_requests) == 2
    })
    .await;
    assert_eq!(refusal(&verifier, &env.token("old")), VerifyError::Revoked);
    assert!(verifier.verify(&env.token("new")).is_ok());
    assert!(verifier.status().ready);

    env.fake.open_snapshots();
    eventually(SOON, "the new snapshot is swapped in", || {
        verifier.verify(&env.token("new")) == Err(VerifyError::Revoked)
    })
    .await;
    assert!(verifier.verify(&env.token("old")).is_ok());
    assert_eq!(verifier.status().revoked_entries, 1);

    // And the feed is followed from the new snapshot's cursor.
    until_poll_held(&env).await;
    env.fake.revoke("after", horizon);
    eventually(SOON, "an entry after the reload arrives", || {
        verifier.verify(&env.token("after")) == Err(VerifyError::Revoked)
    })
    .await;
}

#[tokio::test]
async fn a_cursor_refused_right_after_a_reload_is_reported_and_retried_with_backoff() {
    let env = Env::start();
    env.fake.revoke("ended", env.clock.now_secs() + 300);
    let verifier = env.verifier().await;
    until_poll_held(&env).await;
    env.fake.refuse_cursors(true);
    eventually(SOON, "the repeated 410 is reported", || {
        verifier.status().last_error == Some(FetchError::CursorExpired)
    })
    .await;
    assert_eq!(
        refusal(&verifier, &env.token("ended")),
        VerifyError::Revoked
    );
    env.fake.refuse_cursors(false);
    eventually(
        Duration::from_secs(10),
        "the feed is followed again",
        || verifier.status().last_error.is_none(),
    )
    .await;
}

#[tokio::test]
async fn entries_are_forgotten_once_past_their_horizon_plus_the_leeway() {
    let env = Env::start();
    let now = env.clock.now_secs();
    env.fake.revoke("short", now + 60);
    env.fake.revoke("long", now + 600);
    let verifier = env
        .builder()
        .poll_wait(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    assert_eq!(verifier.status().revoked_entries, 2);

    // Just before the horizon plus the leeway (30 s): kept through several polls.
    env.clock.advance(Duration::from_secs(60 + 28));
    let polls = Fake::count(&env.fake.state.feed_requests);
    eventually(SOON, "two more polls", || {
        Fake::count(&env.fake.state.feed_requests) >= polls + 2
    })
    .await;
    assert_eq!(verifier.status().revoked_entries, 2);

    env.clock.advance(Duration::from_secs(4));
    eventually(SOON, "the short entry is forgotten", || {
        verifier.status().revoked_entries == 1
    })
    .await;
}

#[tokio::test]
async fn with_authd_stopped_the_last_known_set_is_enforced_and_staleness_grows() {
    let mut env = Env::start();
    env.fake.revoke("ended", env.clock.now_secs() + 300);
    let verifier = env.verifier().await;
    let strict = env
        .builder()
        .max_staleness(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let live = env.token("live");
    let ended = env.token("ended");
    eventually(SOON, "both long-polls are held", || {
        Fake::count(&env.fake.state.held) == 2
    })
    .await;

    env.fake.stop();
    eventually(SOON, "the failure is reported", || {
        matches!(
            verifier.status().last_error,
            Some(FetchError::Unreachable(_))
        )
    })
    .await;
    assert!(verifier.verify(&live).is_ok());
    assert_eq!(refusal(&verifier, &ended), VerifyError::Revoked);
    assert!(strict.verify(&live).is_ok(), "not yet past max_staleness");

    env.clock.advance(Duration::from_secs(60));
    let status = verifier.status();
    assert!(status.staleness.unwrap() >= Duration::from_secs(60));
    assert!(status.ready, "without max_staleness the set stays enforced");
    assert!(verifier.verify(&live).is_ok());
    assert_eq!(refusal(&verifier, &ended), VerifyError::Revoked);

    assert!(!strict.status().ready);
    assert_eq!(refusal(&strict, &live), VerifyError::Stale);
    assert_eq!(
        refusal(&strict, &ended),
        VerifyError::Revoked,
        "a known end stays a 401"
    );

    env.fake.restart();
    eventually(
        Duration::from_secs(15),
        "the strict verifier is fresh again",
        || strict.verify(&live).is_ok(),
    )
    .await;
    eventually(SOON, "the failure is cleared", || {
        verifier.status().last_error.is_none()
    })
    .await;
    assert!(verifier.status().staleness.unwrap() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_503_is_reported_with_its_retry_after_and_the_feed_recovers() {
    let env = Env::start();
    let verifier = env.verifier().await;
    until_poll_held(&env).await;
    env.fake.fail_feed(503, Some(1), "service_unavailable");
    eventually(SOON, "the 503 is reported", || {
        verifier.status().last_error
            == Some(FetchError::Unavailable {
                status: 503,
                retry_after: Some(Duration::from_secs(1)),
            })
    })
    .await;
    env.fake.heal();
    eventually(SOON, "the feed answers again", || {
        verifier.status().last_error.is_none()
    })
    .await;
    env.fake.revoke("s1", env.clock.now_secs() + 300);
    eventually(SOON, "entries arrive again", || {
        verifier.verify(&env.token("s1")) == Err(VerifyError::Revoked)
    })
    .await;
}

#[tokio::test]
async fn a_refused_service_key_is_reported_and_the_verifier_goes_stale() {
    let env = Env::start();
    let verifier = env
        .builder()
        .max_staleness(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    until_poll_held(&env).await;
    env.fake.set_scope(false);
    eventually(SOON, "the 403 is reported", || {
        verifier.status().last_error == Some(FetchError::InsufficientScope)
    })
    .await;
    env.clock.advance(Duration::from_secs(11));
    assert_eq!(refusal(&verifier, &env.token("s1")), VerifyError::Stale);

    env.fake.set_scope(true);
    env.fake.fail_feed(401, None, "invalid_service_key");
    eventually(SOON, "the 401 is reported", || {
        verifier.status().last_error == Some(FetchError::InvalidServiceKey)
    })
    .await;
    env.fake.heal();
    eventually(SOON, "the verifier is fresh again", || {
        verifier.verify(&env.token("s1")).is_ok()
    })
    .await;
}

#[tokio::test]
async fn the_background_task_ends_with_the_last_clone() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let clone = verifier.clone();
    drop(verifier);
    until_poll_held(&env).await;
    assert!(clone.verify(&env.token("s1")).is_ok());
    drop(clone);
    eventually(SOON, "the held poll is hung up", || {
        Fake::count(&env.fake.state.held) == 0
    })
    .await;
}
