//! Property-based fuzzing of the three parsers that face raw attacker input: the access-token
//! verifier, the refresh-token parser and the cookie/CSRF gate. Bounded case counts keep it to
//! seconds in CI; the property is "never panics, and rejects what it must".
use std::sync::Arc;

use authd::api::{CookiePolicy, OriginPolicy};
use authd::clock::TestClock;
use authd::tokens::{AccessTokens, KeyRecord, KeySet, RefreshToken, RevokedSet};
use proptest::prelude::*;

fn verifier() -> (AccessTokens, String) {
    let keys = Arc::new(KeySet::default());
    keys.load(&[KeyRecord::generate(0).expect("key")])
        .expect("load");
    let clock = TestClock::new();
    let at = AccessTokens::new(
        keys,
        Arc::new(RevokedSet::default()),
        Arc::new(clock),
        "http://iss".into(),
        "authd".into(),
        300,
        30,
    );
    let (token, _) = at
        .sign(&authd::tokens::access::Subject {
            user_id: "u",
            email: "e@example.com",
            email_verified: false,
            app_metadata: None,
            session_id: "s",
            session_expires_at: i64::MAX,
        })
        .expect("sign");
    (at, token)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn the_verifier_never_panics_on_arbitrary_input(s in "\\PC{0,600}") {
        let (at, _) = verifier();
        prop_assert!(at.verify(&s).is_err());
    }

    #[test]
    fn the_verifier_rejects_every_mutation_of_a_valid_token(pos in 0usize..400, byte in any::<u8>()) {
        let (at, token) = verifier();
        let mut b = token.clone().into_bytes();
        let i = pos % b.len();
        prop_assume!(b[i] != byte);
        b[i] = byte;
        if let Ok(s) = String::from_utf8(b) {
            // Base64url has a few non-canonical spellings of the last character; those decode to
            // the same bytes and are the same token.
            if at.verify(&s).is_ok() {
                prop_assert_eq!(i, token.len() - 1);
            }
        }
    }

    #[test]
    fn jwt_shaped_garbage_is_rejected(h in "[A-Za-z0-9_-]{0,80}", c in "[A-Za-z0-9_-]{0,200}", s in "[A-Za-z0-9_-]{0,100}") {
        let (at, _) = verifier();
        let token = format!("{}.{}.{}", h, c, s);
        prop_assert!(at.verify(&token).is_err());
    }

    #[test]
    fn the_refresh_token_parser_accepts_only_canonical_tokens(
        s in prop_oneof!["[A-Za-z0-9_-]{42,44}", "[A-Za-z0-9_+/=-]{43}", "\\PC{0,100}"],
    ) {
        // Mostly token-shaped input, so that the accepting branch really runs: a 43-character
        // base64url string parses exactly when it is the canonical encoding of 32 bytes.
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let canonical = s.len() == 43
            && URL_SAFE_NO_PAD
                .decode(s.as_bytes())
                .is_ok_and(|b| b.len() == 32 && URL_SAFE_NO_PAD.encode(&b) == s);
        match RefreshToken::parse(&s) {
            Some(t) => {
                prop_assert!(canonical, "accepted a non-canonical {s:?}");
                prop_assert_eq!(t.expose(), s.as_str());
            }
            None => prop_assert!(!canonical, "refused the canonical {s:?}"),
        }
    }

    #[test]
    fn a_minted_token_with_one_character_changed_parses_only_if_still_canonical(
        at in 0usize..43,
        c in "[A-Za-z0-9_-]",
    ) {
        let t = RefreshToken::mint().unwrap();
        let mut s = t.expose().to_owned();
        s.replace_range(at..=at, &c);
        if let Some(p) = RefreshToken::parse(&s) {
            prop_assert_eq!(p.expose(), s.as_str());
        }
        // The last character carries 2 padding bits: only 16 of its 64 values are canonical.
        if at == 42 && !"AEIMQUYcgkosw048".contains(c.as_str()) {
            prop_assert!(RefreshToken::parse(&s).is_none());
        }
    }

    #[test]
    fn the_csrf_gate_never_panics_and_refuses_foreign_origins(
        origin in "\\PC{0,80}",
        site in prop::option::of("(same-origin|same-site|cross-site|none|\\PC{0,10})"),
        xrw in any::<bool>(),
        cookie in "\\PC{0,200}",
    ) {
        let policy = OriginPolicy::new("https://auth.example".into(), vec!["https://app.example".into()]);
        let mut req = poem::Request::builder().uri_str("/auth/refresh").header("host", "auth.example");
        if let Ok(v) = poem::http::HeaderValue::from_str(&origin) {
            req = req.header("origin", v);
        }
        if let Some(site) = &site
            && let Ok(v) = poem::http::HeaderValue::from_str(site)
        {
            req = req.header("sec-fetch-site", v);
        }
        if xrw {
            req = req.header("x-requested-with", "x");
        }
        if let Ok(v) = poem::http::HeaderValue::from_str(&cookie) {
            req = req.header("cookie", v);
        }
        let req = req.finish();
        let _ = CookiePolicy::new(false).read(&req);
        let verdict = policy.check_cookie_request(&req);
        let own = ["https://auth.example", "http://auth.example", "https://app.example"];
        if !xrw || (!origin.is_empty() && poem::http::HeaderValue::from_str(&origin).is_ok() && !own.iter().any(|o| o.eq_ignore_ascii_case(&origin))) {
            prop_assert!(verdict.is_err());
        }
    }
}
