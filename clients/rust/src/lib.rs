#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod builder;
mod claims;
mod client;
mod clock;
mod error;
mod keys;
#[cfg(any(feature = "tower", feature = "poem"))]
mod middleware;
mod revoked;
mod state;
mod sync;
mod verifier;

pub use builder::VerifierBuilder;
pub use claims::Claims;
pub use clock::{Clock, SystemClock};
pub use error::{BuildError, FetchError, VerifyError};
#[cfg(feature = "poem")]
pub use middleware::poem::{AuthdEndpoint, AuthdMiddleware};
#[cfg(feature = "tower")]
pub use middleware::tower::{AuthdLayer, AuthdService, ResponseFuture};
pub use verifier::{MAX_TOKEN_LEN, Status, Verifier};
