//! The kit's integration tests, one binary: each test starts its own fake authd on 127.0.0.1:0.
//! Time moves with a test clock; waits poll for a condition with a deadline.
// Tests state their expectations with unwrap, expect and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod build;
mod fake;
mod feed;
mod jwks;
mod middleware;
mod support;
mod tokens;
