//! Device tokens ("Slow Down Online Guessing Attacks with Device Cookies", OWASP): a client that
//! has logged in to an account before shows a token signed by authd, and its wrong guesses count
//! against that token instead of against the account. An attacker guessing from many addresses
//! locks out only the devices authd does not know; the real user, on a device that logged in
//! before, keeps logging in.
//!
//! A token is `v1.` + base64url(expiry (8 bytes, big-endian unix seconds) || nonce (16 bytes) ||
//! HMAC-SHA256 over the context, the account, the expiry and the nonce), bound to the account
//! (the normalised email) it logged in to: no database read is needed to check one, and one
//! account's token says nothing about another.
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "v1.";
const CONTEXT: &[u8] = b"authd/device-token/v1\0";
const MAC_LEN: usize = 32;
const NONCE_LEN: usize = 16;

/// How long a device token lasts after the login that issued it (each login issues a new one).
pub const LIFETIME_SECS: i64 = 365 * 24 * 3600;

/// Issues and checks device tokens with one shared key.
#[derive(Clone)]
pub struct DeviceTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for DeviceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceTokens(..)")
    }
}

fn signed(account: &str, expires: i64, nonce: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + account.len() + 1 + 8 + NONCE_LEN);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(account.as_bytes());
    m.push(0);
    m.extend_from_slice(&expires.to_be_bytes());
    m.extend_from_slice(nonce);
    m
}

impl DeviceTokens {
    /// With the shared secret `key` (32 random bytes, from the database).
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A new token for `account`, valid for [`LIFETIME_SECS`] from `now`.
    pub fn issue(&self, account: &str, now: i64) -> Result<String, getrandom::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        let expires = now + LIFETIME_SECS;
        let mac = hmac::sign(&self.key, &signed(account, expires, &nonce));
        let mut raw = Vec::with_capacity(8 + NONCE_LEN + MAC_LEN);
        raw.extend_from_slice(&expires.to_be_bytes());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(mac.as_ref());
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// The device's id (its nonce) when `token` is a live token of `account`.
    pub fn verify(&self, token: &str, account: &str, now: i64) -> Option<String> {
        let raw = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(PREFIX)?.as_bytes())
            .ok()?;
        if raw.len() != 8 + NONCE_LEN + MAC_LEN {
            return None;
        }
        let (expires, rest) = raw.split_at(8);
        let (nonce, mac) = rest.split_at(NONCE_LEN);
        let expires = i64::from_be_bytes(expires.try_into().ok()?);
        hmac::verify(&self.key, &signed(account, expires, nonce), mac).ok()?;
        (now < expires).then(|| URL_SAFE_NO_PAD.encode(nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_account_its_key_and_its_lifetime() {
        let d = DeviceTokens::new(&[7; 32]);
        let t = d.issue("ada@example.com", 1000).unwrap();
        let id = d.verify(&t, "ada@example.com", 1001);
        assert!(id.is_some());
        assert_eq!(d.verify(&t, "bob@example.com", 1001), None);
        assert_eq!(
            DeviceTokens::new(&[8; 32]).verify(&t, "ada@example.com", 1001),
            None
        );
        assert_eq!(d.verify(&t, "ada@example.com", 1000 + LIFETIME_SECS), None);
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            d.verify(
                &String::from_utf8(flipped).unwrap(),
                "ada@example.com",
                1001
            ),
            None
        );
        assert_ne!(
            d.issue("ada@example.com", 1000).unwrap(),
            t,
            "each login gets its own"
        );
    }
}
