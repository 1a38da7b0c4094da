//! authd's integration tests: one binary; every test starts the real server on port 0 with its
//! own database (SQLite, or Postgres with `TEST_DATABASE_URL`) and drives it over HTTP. Time
//! moves with a test clock, never by sleeping.
// Tests state their expectations with unwrap, expect and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;
mod process;
mod smtp;

mod access_tokens;
mod admin;
mod attacks;
mod cli;
mod concurrency;
mod containment;
mod fail_closed;
mod faults;
mod feed;
mod fuzz;
mod http;
mod instances;
mod lifecycle;
mod operations;
mod recovery;
mod sessions;
mod storage;
mod verifier;
