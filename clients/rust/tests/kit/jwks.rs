//! The key set: refetched on an unknown `kid` (rate-limited) and periodically, never per
//! request.
use std::time::Duration;

use authd_verify::VerifyError;

use crate::fake::Fake;
use crate::support::{Env, Key, SOON, eventually, refusal};

#[tokio::test]
async fn an_unknown_kid_is_refused_then_verifies_once_the_jwks_is_refetched() {
    let env = Env::start();
    let verifier = env.verifier().await;
    assert_eq!(Fake::count(&env.fake.state.jwks_fetches), 1);
    assert_eq!(verifier.status().keys, 1);

    let next = Key::generate("k2");
    env.fake.set_keys(vec![env.key.jwk(), next.jwk()]);
    let token = next.sign(&env.claims("s1"));
    assert_eq!(refusal(&verifier, &token), VerifyError::UnknownKey);
    eventually(SOON, "the new key verifies", || {
        verifier.verify(&token).is_ok()
    })
    .await;
    assert_eq!(Fake::count(&env.fake.state.jwks_fetches), 2);
    assert_eq!(verifier.status().keys, 2);
}

#[tokio::test]
async fn refetches_for_unknown_kids_are_rate_limited() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let stranger = Key::generate("never-published");
    let token = stranger.sign(&env.claims("s1"));

    assert_eq!(refusal(&verifier, &token), VerifyError::UnknownKey);
    eventually(SOON, "one refetch", || {
        Fake::count(&env.fake.state.jwks_fetches) == 2
    })
    .await;
    // Within the interval (10 s by the verifier's clock), unknown kids ask for nothing more,
    // however long the background task is given to act on them.
    for _ in 0..50 {
        assert_eq!(refusal(&verifier, &token), VerifyError::UnknownKey);
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    assert_eq!(Fake::count(&env.fake.state.jwks_fetches), 2);

    env.clock.advance(Duration::from_secs(11));
    assert_eq!(refusal(&verifier, &token), VerifyError::UnknownKey);
    eventually(SOON, "a second refetch after the interval", || {
        Fake::count(&env.fake.state.jwks_fetches) == 3
    })
    .await;
}

#[tokio::test]
async fn the_jwks_is_refreshed_periodically_so_that_retired_keys_leave() {
    let env = Env::start();
    let verifier = env
        .builder()
        .jwks_refresh_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let old = env.token("s1");
    let next = Key::generate("k2");
    let new = next.sign(&env.claims("s1"));
    env.fake.set_keys(vec![next.jwk()]);
    eventually(SOON, "the retired key is gone", || {
        verifier.verify(&old) == Err(VerifyError::UnknownKey)
    })
    .await;
    assert!(verifier.verify(&new).is_ok());
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_keys_held() {
    let env = Env::start();
    let verifier = env
        .builder()
        .jwks_refresh_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    env.fake.set_keys(vec![]);
    eventually(SOON, "an empty JWKS was served", || {
        Fake::count(&env.fake.state.jwks_fetches) >= 2
    })
    .await;
    env.fake.fail_jwks(500);
    let fetches = Fake::count(&env.fake.state.jwks_fetches);
    eventually(SOON, "a failed refresh", || {
        Fake::count(&env.fake.state.jwks_fetches) > fetches
    })
    .await;
    assert_eq!(verifier.status().keys, 1);
    assert!(verifier.verify(&env.token("s1")).is_ok());
}
