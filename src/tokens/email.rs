//! One-time email tokens (password reset, email verification, email change): 256 bits from the
//! OS CSPRNG in base64url, mailed in a link's fragment; only their SHA-256 is stored.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Length of a token: 43 base64url characters (32 bytes).
pub const LEN: usize = 43;

/// A new token as it is mailed, with its hash. `Debug` never shows the token.
pub struct Minted {
    pub token: String,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minted(..)")
    }
}

/// A new token.
pub fn mint() -> Result<Minted, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = hash(&token);
    Ok(Minted { token, hash })
}

/// The stored form of a presented token; `None` for anything that cannot be one (it is then
/// refused like every other bad token, without a database read).
pub fn parse(presented: &str) -> Option<Vec<u8>> {
    let ok = presented.len() == LEN
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| hash(presented))
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_to_its_hash_and_nothing_else_does() {
        let m = mint().unwrap();
        assert_eq!(m.token.len(), LEN);
        assert_eq!(parse(&m.token), Some(m.hash.clone()));
        assert_ne!(m.hash, m.token.as_bytes());
        for bad in [
            "",
            "short",
            &format!("{}=", &m.token[..42]),
            &format!("{}x", m.token),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(!format!("{m:?}").contains(&m.token));
    }
}
