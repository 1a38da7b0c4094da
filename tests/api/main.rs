//! authd's integration tests: one binary; every test starts the real server on port 0 with its
//! own database (SQLite, or Postgres with `TEST_DATABASE_URL`) and drives it over HTTP. Time
//! moves with a test clock, never by sleeping.

mod helpers;

mod access_tokens;
mod cli;
mod concurrency;
mod http;
mod lifecycle;
mod sessions;
mod storage;
