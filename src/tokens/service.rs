//! Service keys: what resource servers and back offices present to read the revocation feed,
//! introspect tokens or use the admin API. A key is `authd_sk_` and 256 random bits in
//! base64url; only its SHA-256 hash is stored. Every instance holds the keys in force in memory
//! (kept in step with the database by the sync loop), so checking one costs no database read.
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What every service key starts with: an AT is never a service key, and a leaked key is easy
/// to spot in a scanner.
pub const PREFIX: &str = "authd_sk_";

/// Length of a service key: the prefix and 43 base64url characters (32 bytes).
pub const KEY_LEN: usize = PREFIX.len() + 43;

/// What a service key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `GET /auth/revocations`.
    RevocationsRead,
    /// `POST /auth/introspect`.
    Introspect,
    /// The admin API.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Self::RevocationsRead, Self::Introspect, Self::Admin];

    /// The scope's name, as the CLI takes it and the database stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RevocationsRead => "revocations:read",
            Self::Introspect => "introspect",
            Self::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Parses a comma-separated list (duplicates and blanks dropped); `Err` names the first
    /// unknown scope.
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let scope = Self::parse(name).ok_or_else(|| name.to_owned())?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(scopes)
    }

    /// The stored form of `scopes`.
    pub fn join(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A new key as it is shown once. `Debug` never shows it.
pub struct MintedKey {
    pub key: String,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MintedKey(..)")
    }
}

/// A new key from the OS CSPRNG.
pub fn mint() -> Result<MintedKey, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let key = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = hash(&key);
    Ok(MintedKey { key, hash })
}

/// The stored hash of `key`.
pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A key in force, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl ServiceKey {
    /// May this key do `scope`?
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// The keys in force, by hash, and when each was last used (written to the database by the
/// sync loop, at most once per key and pass).
#[derive(Debug, Default)]
pub struct ServiceKeys {
    by_hash: RwLock<KeySet>,
    used: Mutex<HashMap<String, i64>>,
    /// Reloads begun so far; each takes the next number before it reads.
    reloads: AtomicU64,
}

/// The keys in force and the number of the reload that read them.
#[derive(Debug, Default)]
struct KeySet {
    reload: u64,
    keys: HashMap<Vec<u8>, Arc<ServiceKey>>,
}

impl ServiceKeys {
    /// The key `presented` names, if it is one in force; records its use at `now`.
    pub fn check(&self, presented: &str, now: i64) -> Option<Arc<ServiceKey>> {
        if presented.len() != KEY_LEN || !presented.starts_with(PREFIX) {
            return None;
        }
        let key = self
            .by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .get(&hash(presented))
            .cloned()?;
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.id.clone(), now);
        Some(key)
    }

    /// Replaces the keys in force with what `read` (a read of the database) returns. Reloads
    /// may overlap (the sync loop, a test or a future admin call): one that began before
    /// another finished never puts back the older set it read, so a key created before a
    /// reload began is in force when that reload returns.
    pub async fn reload<E>(
        &self,
        read: impl Future<Output = Result<Vec<(Vec<u8>, ServiceKey)>, E>>,
    ) -> Result<(), E> {
        let number = self.reloads.fetch_add(1, Ordering::SeqCst) + 1;
        let keys = read.await?;
        self.put(number, keys);
        Ok(())
    }

    /// Replaces the keys in force with `keys` (hash, key), unconditionally.
    pub fn replace(&self, keys: impl IntoIterator<Item = (Vec<u8>, ServiceKey)>) {
        let number = self.reloads.fetch_add(1, Ordering::SeqCst) + 1;
        self.put(number, keys);
    }

    fn put(&self, number: u64, keys: impl IntoIterator<Item = (Vec<u8>, ServiceKey)>) {
        let mut set = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        if number > set.reload {
            set.reload = number;
            set.keys = keys.into_iter().map(|(h, k)| (h, Arc::new(k))).collect();
        }
    }

    /// The uses since the last call: key id -> last use.
    pub fn take_used(&self) -> Vec<(String, i64)> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    /// Number of keys in force.
    pub fn len(&self) -> usize {
        self.by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }

    /// No key in force?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_checks_until_it_leaves_the_set() {
        let keys = ServiceKeys::default();
        let minted = mint().unwrap();
        assert_eq!(minted.key.len(), KEY_LEN);
        assert!(!format!("{minted:?}").contains(&minted.key[PREFIX.len()..]));
        let key = ServiceKey {
            id: "k1".into(),
            name: "api".into(),
            scopes: vec![Scope::RevocationsRead],
        };
        keys.replace([(minted.hash.clone(), key.clone())]);
        assert_eq!(keys.check(&minted.key, 7).as_deref(), Some(&key));
        assert_eq!(keys.take_used(), [("k1".to_owned(), 7)]);
        assert!(keys.take_used().is_empty());
        // One character off, no prefix, or a different length: no key.
        let mut other = minted.key.clone();
        let last = other.pop().unwrap();
        other.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.check(&other, 8).is_none());
        assert!(keys.check(&minted.key[PREFIX.len()..], 8).is_none());
        assert!(keys.check(&format!("{}x", minted.key), 8).is_none());
        keys.replace([]);
        assert!(keys.check(&minted.key, 9).is_none());
    }

    #[tokio::test]
    async fn a_reload_that_began_first_never_puts_back_the_older_set() {
        let keys = ServiceKeys::default();
        let minted = mint().unwrap();
        let key = ServiceKey {
            id: "k1".into(),
            name: "api".into(),
            scopes: vec![Scope::Admin],
        };
        // The sync loop begins a reload and reads the database before the key exists ...
        let (send_stale, stale) = tokio::sync::oneshot::channel();
        let slow = keys.reload(async { stale.await.map_err(|_| ()) });
        let mut slow = std::pin::pin!(slow);
        assert!(poll_once(slow.as_mut()).is_none());
        // ... the key is created, and a second reload reads it and finishes first ...
        let fresh = vec![(minted.hash.clone(), key.clone())];
        keys.reload(async { Ok::<_, ()>(fresh) }).await.unwrap();
        assert!(keys.check(&minted.key, 1).is_some());
        // ... then the first one's older answer arrives: the key stays in force.
        send_stale.send(Vec::new()).unwrap();
        slow.await.unwrap();
        assert!(keys.check(&minted.key, 2).is_some());
        // A reload that begins after, reading the key gone, does take it away.
        keys.reload(async { Ok::<_, ()>(Vec::new()) })
            .await
            .unwrap();
        assert!(keys.check(&minted.key, 3).is_none());
    }

    /// Polls `f` once, with a waker that does nothing.
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn scopes_parse_from_a_list_and_name_the_first_unknown_one() {
        assert_eq!(
            Scope::parse_list("revocations:read, introspect,revocations:read"),
            Ok(vec![Scope::RevocationsRead, Scope::Introspect])
        );
        assert_eq!(Scope::parse_list("admin,root"), Err("root".into()));
        assert_eq!(
            Scope::join(&[Scope::Admin, Scope::Introspect]),
            "admin,introspect"
        );
    }
}
