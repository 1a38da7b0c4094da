//! The HTTP boundary's middlewares, each one job, composed in `app::routes` from the outside in:
//!
//! 1. [`log::requests`]: one log line, the request-id header and the metrics per request;
//! 2. [`hygiene::headers`]: `no-store`, `nosniff`, framing and referrer rules, the docs CSP, the
//!    JSON charset, `Allow` on a 405;
//! 3. [`cors::allow_listed`]: preflights and CORS headers for `AUTHD_ALLOWED_ORIGINS` only;
//! 4. [`bodies::checked`]: the body limit (413) and content-type rule (415) before any parsing,
//!    and the single JSON error body for every failure (poem's own included, whose text never
//!    reaches a client).
pub mod bodies;
pub mod cors;
pub mod hygiene;
pub mod log;
