//! authd: an auth server whose logout really logs JWTs out.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod feed;
pub mod ids;
pub mod keyring;
pub mod mail;
pub mod metrics;
pub mod passwords;
pub mod policy;
pub mod ratelimit;
pub mod sessions;
pub mod store;
pub mod tokens;
