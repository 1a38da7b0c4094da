//! Signing keys between the database and the in-memory key set: the first key on a fresh
//! database, the key set kept in step with what other instances and the CLI did, rotation and
//! revocation. The store keeps [`StoredKey`]s and the tokens code uses [`KeyRecord`]s; this is
//! the one place that moves keys between them, so neither knows the other.
use crate::store::{Store, StoredKey};
use crate::tokens::keys::KeyError;
use crate::tokens::{KeyRecord, KeySet};

impl From<StoredKey> for KeyRecord {
    fn from(k: StoredKey) -> Self {
        Self {
            kid: k.kid,
            private_pkcs8: k.private_pkcs8,
            public_key: k.public_key,
            created_at: k.created_at,
            retired_at: k.retired_at,
        }
    }
}

impl From<KeyRecord> for StoredKey {
    fn from(k: KeyRecord) -> Self {
        Self {
            kid: k.kid,
            private_pkcs8: k.private_pkcs8,
            public_key: k.public_key,
            created_at: k.created_at,
            retired_at: k.retired_at,
        }
    }
}

/// Why keys could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

fn records(stored: Vec<StoredKey>) -> Vec<KeyRecord> {
    stored.into_iter().map(KeyRecord::from).collect()
}

/// Loads the keys that still verify at `now` into `keys`, generating the first key on a fresh
/// database.
pub async fn load(
    store: &Store,
    keys: &KeySet,
    now: i64,
    overlap: i64,
) -> Result<(), KeyringError> {
    let mut stored = store.live_keys(now, overlap).await?;
    if !stored.iter().any(|k| k.retired_at.is_none()) {
        if store.ensure_key(KeyRecord::generate(now)?.into()).await? {
            tracing::info!("generated the first signing key");
        }
        stored = store.live_keys(now, overlap).await?;
    }
    keys.load(&records(stored))?;
    Ok(())
}

/// Keeps a key set in step with the database: reloads it when the live keys changed.
#[derive(Default)]
pub struct KeySync {
    loaded: Vec<(String, Option<i64>)>,
}

impl KeySync {
    /// One pass at `now`, keeping retired keys for `overlap` seconds.
    pub async fn step(&mut self, store: &Store, keys: &KeySet, now: i64, overlap: i64) {
        match store.live_keys(now, overlap).await {
            Ok(stored) if stored.iter().any(|k| k.retired_at.is_none()) => {
                let mut seen: Vec<_> = stored
                    .iter()
                    .map(|k| (k.kid.clone(), k.retired_at))
                    .collect();
                seen.sort();
                if seen != self.loaded {
                    match keys.load(&records(stored)) {
                        Ok(()) => self.loaded = seen,
                        Err(e) => tracing::error!(error = %e, "key reload failed"),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "key sync failed"),
        }
    }
}

/// Publishes a new key at once (JWKS, every instance's verifying set at its next sync) and
/// makes it sign from `signs_from`, when the old one stops signing; the old one verifies until
/// its tokens have expired. Returns the new key's id.
pub async fn rotate(store: &Store, signs_from: i64) -> Result<String, KeyringError> {
    let key = KeyRecord::generate(signs_from)?;
    let kid = key.kid.clone();
    store.rotate_key(key.into()).await?;
    Ok(kid)
}

/// What `revoke` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoked {
    /// There is no such key.
    NoSuchKey,
    /// The key is gone; it was not the current one.
    Removed,
    /// The key is gone and was current: this new key signs now.
    Replaced { by: String },
}

/// Removes the key `kid` at once (a leaked key); a current one is replaced in the same
/// transaction.
pub async fn revoke(store: &Store, kid: &str, now: i64) -> Result<Revoked, KeyringError> {
    let replacement = KeyRecord::generate(now)?;
    let by = replacement.kid.clone();
    Ok(match store.revoke_key(kid, replacement.into()).await? {
        None => Revoked::NoSuchKey,
        Some(false) => Revoked::Removed,
        Some(true) => Revoked::Replaced { by },
    })
}
