//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) on a bounded
//! blocking pool, so a login storm can neither starve the async runtime nor queue unbounded
//! threads. Unknown users are checked against a dummy hash so that the work, and so the timing,
//! is the same as for a wrong password.
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Memory cost in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters (bounds the hashing input; never truncated).
pub const MAX_LEN: usize = 1024;

/// A password-hashing failure; only a bug or a corrupt stored hash gets here.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("hashing task failed: {0}")]
    Join(String),
}

/// Is this password acceptable? Length in Unicode scalar values; any character is allowed and
/// the password is used exactly as given (no trimming, no case folding, no normalisation).
pub fn is_acceptable(password: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&password.chars().count())
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants inside argon2's documented ranges.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Argon2(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Argon2(e.to_string()))?;
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Argon2(e.to_string()))
}

fn verify_blocking(password: &[u8], phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::Argon2(e.to_string()))?;
    match argon2().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::Argon2(e.to_string())),
    }
}

/// Hashes and verifies passwords, at most `permits` at a time, off the async runtime.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher running at most `concurrency` hashes at once; computes the dummy hash.
    pub async fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let mut dummy_password = [0u8; 32];
        getrandom::fill(&mut dummy_password).map_err(|e| PasswordError::Argon2(e.to_string()))?;
        let dummy = tokio::task::spawn_blocking(move || hash_blocking(&dummy_password))
            .await
            .map_err(|e| PasswordError::Join(e.to_string()))??;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Join(e.to_string()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| PasswordError::Join(e.to_string()))?
    }

    /// A new PHC-format argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(password.as_bytes())).await
    }

    /// Does `password` match `phc`? With `None` (unknown user) it checks against the dummy hash
    /// and answers `false`, doing the same work as a real check.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        let ok = self
            .run(move || verify_blocking(password.as_bytes(), &phc))
            .await?;
        Ok(ok && known)
    }
}
