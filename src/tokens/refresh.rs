//! Refresh tokens: 256 random bits from the OS, base64url. The server keeps only the SHA-256
//! hash, plus, for the grace window, the successor sealed under a key derived from its parent
//! (so a copy of the database alone never yields a usable token). What a rotated token's return
//! means is the rotation policy's to say (`crate::policy::decide`).
use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Length of a refresh token on the wire: 32 bytes in base64url without padding.
pub const ENCODED_LEN: usize = 43;

const SEAL_CONTEXT: &[u8] = b"authd/refresh-successor-seal/v1\0";

/// Sealing a successor failed (the AEAD refused): the rotation must not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealing the successor refresh token failed")]
pub struct SealError;

/// A refresh token as the client holds it. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

impl RefreshToken {
    /// A new random token from the OS CSPRNG.
    pub fn mint() -> Result<Self, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Accepts only what [`mint`](Self::mint) produces: 43 base64url characters encoding 32
    /// bytes. Anything else is rejected before any hashing or database work.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != ENCODED_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.as_bytes()).ok()?;
        (bytes.len() == 32 && URL_SAFE_NO_PAD.encode(&bytes) == raw).then(|| Self(raw.to_owned()))
    }

    /// The token for the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token: the only form the database stores.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }

    fn seal_key(&self) -> Result<LessSafeKey, SealError> {
        let mut h = Sha256::new();
        h.update(SEAL_CONTEXT);
        h.update(self.0.as_bytes());
        let key = h.finalize();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &key).map_err(|_| SealError)?;
        Ok(LessSafeKey::new(key))
    }

    /// Seals `successor` under a key derived from this (parent) token. Each parent seals
    /// exactly one successor, once, so the fixed nonce never repeats under a key. Fails closed:
    /// on any error there is no sealed value at all, never the successor in the clear.
    pub fn seal(&self, successor: &RefreshToken) -> Result<Vec<u8>, SealError> {
        let mut buf = successor.0.as_bytes().to_vec();
        match self.seal_key()?.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(self.hash()),
            &mut buf,
        ) {
            Ok(()) => Ok(buf),
            Err(_) => Err(SealError),
        }
    }

    /// Opens what [`seal`](Self::seal) produced with this parent; `None` if it was not.
    pub fn open(&self, sealed: &[u8]) -> Option<RefreshToken> {
        let mut buf = sealed.to_vec();
        let plain = self
            .seal_key()
            .ok()?
            .open_in_place(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(self.hash()),
                &mut buf,
            )
            .ok()?;
        RefreshToken::parse(std::str::from_utf8(plain).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_garbage_does_not() {
        let t = RefreshToken::mint().unwrap_or_else(|_| unreachable!());
        assert_eq!(t.expose().len(), ENCODED_LEN);
        assert_eq!(RefreshToken::parse(t.expose()), Some(t.clone()));
        assert_eq!(RefreshToken::parse(&t.expose()[1..]), None);
        assert_eq!(RefreshToken::parse(&"!".repeat(ENCODED_LEN)), None);
    }

    #[test]
    fn only_the_parent_opens_the_sealed_successor() {
        let parent = RefreshToken::mint().unwrap_or_else(|_| unreachable!());
        let other = RefreshToken::mint().unwrap_or_else(|_| unreachable!());
        let child = RefreshToken::mint().unwrap_or_else(|_| unreachable!());
        let sealed = parent.seal(&child).unwrap_or_else(|_| unreachable!());
        assert!(
            !sealed
                .windows(10)
                .any(|w| child.expose().as_bytes().windows(10).any(|c| c == w))
        );
        assert_eq!(parent.open(&sealed), Some(child));
        assert_eq!(other.open(&sealed), None);
    }
}
