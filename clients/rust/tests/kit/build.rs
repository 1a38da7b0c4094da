//! A verifier exists only once the keys and the whole snapshot are loaded; `build` says why not.
use std::time::Duration;

use authd_verify::{BuildError, FetchError, Verifier};

use crate::support::{Env, SERVICE_KEY};

#[tokio::test]
async fn build_needs_a_service_key() {
    let env = Env::start();
    let error = Verifier::builder(env.fake.base())
        .build()
        .await
        .unwrap_err();
    assert_eq!(error, BuildError::MissingServiceKey);
    let error = env
        .builder()
        .service_key("authd_sk_\nx")
        .build()
        .await
        .unwrap_err();
    assert_eq!(error, BuildError::InvalidServiceKey);
}

#[tokio::test]
async fn build_fails_when_authd_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = Verifier::builder(base)
        .service_key(SERVICE_KEY)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(error, BuildError::Jwks(FetchError::Unreachable(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn build_fails_when_the_jwks_cannot_be_loaded() {
    let env = Env::start();
    env.fake.fail_jwks(500);
    let error = env.builder().build().await.unwrap_err();
    assert_eq!(
        error,
        BuildError::Jwks(FetchError::Status {
            status: 500,
            code: "internal_error".into()
        })
    );
    let env2 = Env::start();
    env2.fake.set_keys(vec![]);
    assert_eq!(
        env2.builder().build().await.unwrap_err(),
        BuildError::Jwks(FetchError::NoKeys)
    );
}

#[tokio::test]
async fn build_fails_when_the_snapshot_cannot_be_loaded() {
    let env = Env::start();
    let error = env
        .builder()
        .service_key("authd_sk_wrong")
        .build()
        .await
        .unwrap_err();
    assert_eq!(error, BuildError::Snapshot(FetchError::InvalidServiceKey));
    assert!(error.to_string().contains("invalid_service_key"), "{error}");

    env.fake.set_scope(false);
    let error = env.builder().build().await.unwrap_err();
    assert_eq!(error, BuildError::Snapshot(FetchError::InsufficientScope));
    assert!(error.to_string().contains("revocations:read"), "{error}");

    env.fake.heal();
    env.fake.fail_feed(503, Some(2), "service_unavailable");
    let error = env.builder().build().await.unwrap_err();
    assert!(matches!(
        error,
        BuildError::Snapshot(FetchError::Unavailable { status: 503, .. })
    ));
}

#[tokio::test]
async fn build_refuses_bad_settings() {
    let env = Env::start();
    for base in ["not a url", "ftp://127.0.0.1:21"] {
        let error = Verifier::builder(base)
            .service_key(SERVICE_KEY)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(error, BuildError::InvalidBaseUrl(_)), "{error:?}");
    }
    let error = env
        .builder()
        .max_staleness(Duration::from_secs(1))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, BuildError::InvalidSetting(_)));
}

#[tokio::test]
async fn the_issuer_defaults_to_the_base_url_without_its_trailing_slash() {
    let env = Env::start();
    let verifier = Verifier::builder(format!("{}/", env.fake.base()))
        .service_key(SERVICE_KEY)
        .clock(env.clock.clone())
        .build()
        .await
        .unwrap();
    assert!(verifier.verify(&env.token("s1")).is_ok());
}

#[tokio::test]
async fn debug_output_never_shows_the_service_key() {
    let env = Env::start();
    let builder = env.builder();
    assert!(!format!("{builder:?}").contains(SERVICE_KEY));
    let verifier = builder.build().await.unwrap();
    let shown = format!("{verifier:?}");
    assert!(shown.contains("Verifier"), "{shown}");
    assert!(!shown.contains(SERVICE_KEY), "{shown}");
    assert!(!shown.contains("authd_sk_"), "{shown}");
}
