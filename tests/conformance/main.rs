//! The conformance fixtures (`fixtures.rs`) run by the Rust kit, `authd-verify`. The Node and
//! Python kits run the same fixtures through `cargo run --example conformance`.
// Tests state their expectations with unwrap, expect and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;

use std::path::Path;
use std::time::Duration;

use authd_verify::{Verifier, VerifyError};
use fixtures::Verdict;

fn verdict(result: &Result<authd_verify::Claims, VerifyError>) -> Verdict {
    match result {
        Ok(_) => Verdict::Accept,
        Err(VerifyError::Malformed) => Verdict::Malformed,
        Err(VerifyError::ForbiddenHeader) => Verdict::ForbiddenHeader,
        Err(VerifyError::UnknownKey) => Verdict::UnknownKey,
        Err(VerifyError::Invalid) => Verdict::Invalid,
        Err(VerifyError::Expired) => Verdict::Expired,
        Err(VerifyError::NotYetValid) => Verdict::NotYetValid,
        Err(VerifyError::Revoked) => Verdict::Revoked,
        Err(other) => panic!("a verdict no fixture expects: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_kit_gives_every_fixture_its_verdict() {
    let (running, fx) = fixtures::generate(Path::new(env!("CARGO_BIN_EXE_authd")))
        .await
        .unwrap_or_else(|e| panic!("the fixtures could not be made: {e}"));
    let verifier = Verifier::builder(&fx.authd_url)
        .service_key(&fx.service_key)
        .issuer(&fx.issuer)
        .audience(&fx.audience)
        .leeway(Duration::from_secs(fx.leeway_secs as u64))
        .build()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no verifier: {e}; authd's log: {}",
                running.log_path().display()
            )
        });
    let mut wrong = Vec::new();
    for case in &fx.cases {
        let result = verifier.verify(&case.token);
        let got = verdict(&result);
        let claims_ok = match &result {
            Ok(c) => Some(&c.sub) == case.sub.as_ref() && Some(&c.sid) == case.sid.as_ref(),
            Err(_) => true,
        };
        if got != case.verdict || !claims_ok {
            wrong.push(format!(
                "{}: expected {:?}, got {got:?} ({})",
                case.name, case.verdict, case.description
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        fx.cases.len(),
        wrong.join("\n")
    );
    assert!(
        fx.cases.len() >= 40,
        "the fixture set shrank to {}",
        fx.cases.len()
    );
}
