//! Account recovery and verified email: mail through real SMTP (the test's own sink) and the
//! file outbox, one-time tokens, password reset, verification, email change.
use std::time::Duration;

use authd::tokens::Scope;
use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use sea_orm::EntityTrait;

use crate::helpers::*;
use crate::process::Authd;
use crate::smtp::{Received, Sink};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";
const APP: &str = "https://app.example.test/";

/// An app that mails through `sink`, with links to `APP`.
async fn app_with(sink: &Sink, tweak: impl FnOnce(&mut authd::config::ServeConfig)) -> TestApp {
    let url = sink.url();
    spawn_app_with(move |c| {
        c.mail.smtp_url = Some(url);
        c.mail.app_url = Some(APP.to_owned());
        c.mail.product_name = "Acme".to_owned();
        tweak(c);
    })
    .await
}

impl TestApp {
    async fn forgot(&self, email: &str) -> Response {
        self.post_json("/auth/password/forgot", json!({"email": email}))
            .await
    }

    async fn reset(&self, token: &str, password: &str) -> Response {
        self.post_json(
            "/auth/password/reset",
            json!({"token": token, "new_password": password}),
        )
        .await
    }

    async fn post_auth(&self, path: &str, access: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
            .expect("request")
    }
}

/// The one mail of `got` to `to` whose subject has `subject`.
fn mail_to<'a>(got: &'a [Received], to: &str, subject: &str) -> &'a Received {
    got.iter()
        .find(|m| m.to == [to] && m.data.contains(subject))
        .unwrap_or_else(|| panic!("no mail to {to} about {subject:?} in {got:#?}"))
}

async fn feed_reasons(app: &TestApp, user_id: &str) -> Vec<String> {
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let (entries, _) = app.feed_snapshot(&key).await;
    entries
        .iter()
        .filter(|e| e["user_id"] == user_id)
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn me(app: &TestApp, access: &str) -> Value {
    app.get_auth("/me", access).await.json().await.expect("me")
}

#[tokio::test]
async fn a_reset_link_goes_to_the_stored_address_and_resetting_ends_every_session() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let mail = email();
    let one = app.user(&mail).await;
    let two = app.login_body(&mail, PASSWORD).await;
    let user_id = me(&app, &one.access).await["user_id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Typed differently: the mail goes to the address stored for the account.
    let r = app.forgot(&format!("  {}", mail.to_uppercase())).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = sink.wait_for(1).await;
    let link_mail = mail_to(&got, &mail, "Reset your Acme password");
    assert!(
        link_mail
            .text()
            .contains(&format!("{APP}#action=reset-password&token="))
    );
    let token = link_mail.token().expect("token");

    // A weak password is refused and spends nothing.
    let r = app.reset(&token, "password123").await;
    assert_error(r, StatusCode::BAD_REQUEST, "weak_password").await;
    assert_eq!(app.me_status(&one.access).await, StatusCode::OK);

    let r = app.reset(&token, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // At once, without a sync: every session ended.
    assert_eq!(app.me_status(&one.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&two.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&two.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        feed_reasons(&app, &user_id).await,
        vec!["password_reset", "password_reset"]
    );
    let old = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "delivery": "body"}),
        )
        .await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let fresh = app.login_body(&mail, NEW_PASSWORD).await;
    let kinds = app.events(&fresh.access).await;
    for kind in [
        "password_reset_requested",
        "password_reset",
        "session_revoked",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    // And a notice that the password changed.
    let got = sink.wait_for(2).await;
    let notice = mail_to(&got, &mail, "Your Acme password was changed");
    assert!(notice.token().is_none(), "a notice carries no link");
    // The link works once.
    let again = app.reset(&token, "yet another passphrase").await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_email_token").await;
}

#[tokio::test]
async fn forgot_answers_the_same_for_a_known_an_unknown_a_disabled_and_a_malformed_address() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let known = email();
    let disabled = email();
    app.user(&known).await;
    app.user(&disabled).await;
    app.state()
        .sessions
        .set_disabled(&disabled, true)
        .await
        .expect("disable");
    let mut answers = Vec::new();
    for address in [
        known.as_str(),
        "nobody@example.com",
        disabled.as_str(),
        "not an email",
    ] {
        let r = app.forgot(address).await;
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        headers.sort();
        answers.push((r.status(), headers, r.bytes().await.expect("body")));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    assert_eq!(answers[0].0, StatusCode::ACCEPTED);
    assert!(answers[0].2.is_empty());
    // Only the live account gets mail.
    let got = sink.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_later = sink.received();
    assert_eq!(got_later.len(), 1, "{got:#?}");
    assert_eq!(got_later[0].to, [known]);
}

#[tokio::test]
async fn every_bad_token_gets_the_one_invalid_email_token_answer() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let mail = email();
    let t = app.user(&mail).await;

    app.forgot(&mail).await;
    let first = sink.wait_for(1).await[0].token().expect("token");
    app.forgot(&mail).await;
    let second = sink.wait_for(2).await[1].token().expect("token");
    assert_ne!(first, second);
    // Superseded by the second.
    let superseded = app.reset(&first, NEW_PASSWORD).await;
    // Of another purpose: a verification token at reset.
    let r = app
        .post_auth("/auth/email/verify/send", &t.access, json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let verification = sink.wait_for(3).await[2].token().expect("token");
    let wrong_purpose = app.reset(&verification, NEW_PASSWORD).await;
    let garbage = app.reset("not-a-token", NEW_PASSWORD).await;
    let unknown = app
        .reset(&"A".repeat(authd::tokens::email::LEN), NEW_PASSWORD)
        .await;
    // Expired: 30 minutes and a second.
    app.clock.advance(30 * 60 + 1);
    let expired = app.reset(&second, NEW_PASSWORD).await;
    let mut bodies = Vec::new();
    for r in [superseded, wrong_purpose, garbage, unknown, expired] {
        bodies.push(assert_error(r, StatusCode::BAD_REQUEST, "invalid_email_token").await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    // Nothing changed: the old password still works.
    app.login_body(&mail, PASSWORD).await;
    // And the verification token still verifies: the failed reset did not spend it.
    let r = app
        .post_json("/auth/email/verify", json!({"token": verification}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The expired reset token is pruned; nothing else was left.
    assert_eq!(app.prune().await.email_tokens, 1);
}

#[tokio::test]
async fn a_mail_queued_before_kill_9_goes_out_after_the_restart() {
    let (db, database) = fresh_database().await;
    // A port with nothing behind it yet: the mail cannot leave before the crash.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let smtp = format!("smtp://127.0.0.1:{port}?tls=none");
    let env = [("AUTHD_SMTP_URL", smtp.as_str())];
    let mut first = Authd::start(&db.database_url, &env).await;
    let mail = email();
    first.register(&mail, PASSWORD).await;
    assert_eq!(first.forgot(&mail).await.status(), StatusCode::ACCEPTED);
    let store = authd::store::Store::connect(&db).await.expect("store");
    // Queued, tried once (nothing listens) and released: a kill while a send is under way
    // would hold the mail for its lease (60 s) before another sender may take it.
    eventually("the mail is queued and its first try over", || async {
        let outbox = entity::outbox::Entity::find()
            .all(store.connection())
            .await
            .expect("outbox");
        outbox.len() == 1 && outbox[0].attempts >= 1 && outbox[0].locked_until.is_none()
    })
    .await;
    first.signal("KILL");
    assert!(first.wait_exit(Duration::from_secs(5)).await.is_some());
    drop(first);

    let sink = Sink::on(port).await;
    let _second = Authd::start(&db.database_url, &env).await.owning(database);
    // Its first try failed before the crash: the retry is due 5 s after it.
    let got = sink.wait_for_within(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].to, [mail]);
    assert!(got[0].token().is_some());
    eventually("the outbox is empty", || async {
        store.mail_waiting().await.expect("outbox") == 0
    })
    .await;
}

#[tokio::test]
async fn two_resets_with_one_token_at_once_have_one_winner() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let mail = email();
    app.user(&mail).await;
    app.forgot(&mail).await;
    let token = sink.wait_for(1).await[0].token().expect("token");
    let passwords = ["first new passphrase", "second new passphrase"];
    let answers = join_all(passwords.iter().map(|p| app.reset(&token, p))).await;
    let statuses: Vec<StatusCode> = answers.iter().map(Response::status).collect();
    let won: Vec<&str> = passwords
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| **s == StatusCode::NO_CONTENT)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert!(statuses.contains(&StatusCode::BAD_REQUEST));
    app.login_body(&mail, won[0]).await;
}

#[tokio::test]
async fn the_database_keeps_no_token_it_mailed() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let (mail, new) = (email(), email());
    let t = app.user(&mail).await;
    app.forgot(&mail).await;
    app.post_auth("/auth/email/verify/send", &t.access, json!({}))
        .await;
    let r = app
        .post_auth(
            "/auth/email/change",
            &t.access,
            json!({"new_email": new, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = sink.wait_for(4).await;
    let tokens: Vec<String> = got.iter().filter_map(Received::token).collect();
    assert_eq!(tokens.len(), 3, "three links, one notice");
    eventually("the outbox is empty", || async {
        app.state().store().mail_waiting().await.expect("outbox") == 0
    })
    .await;
    let db = app.state().store().connection();
    let mut dump = String::new();
    macro_rules! dump {
        ($($entity:path),*) => {$(
            for row in <$entity>::find().into_json().all(db).await.expect("scan") {
                dump.push_str(&row.to_string());
            }
        )*};
    }
    dump!(
        entity::users::Entity,
        entity::sessions::Entity,
        entity::refresh_tokens::Entity,
        entity::security_events::Entity,
        entity::email_tokens::Entity,
        entity::outbox::Entity,
        entity::revoked_sessions::Entity,
        entity::secrets::Entity,
        entity::service_keys::Entity
    );
    assert!(dump.contains(&mail), "the scan reads the tables");
    for token in &tokens {
        assert!(
            !dump.contains(token.as_str()),
            "a mailed token is in the database"
        );
    }
}

#[tokio::test]
async fn without_smtp_mail_is_written_as_eml_files() {
    let app = spawn_app_with(|c| c.mail.app_url = Some(APP.to_owned())).await;
    let mail = email();
    app.user(&mail).await;
    app.forgot(&mail).await;
    let dir = app.cfg.mail.mail_dir.clone();
    let eml = || {
        std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "eml"))
    };
    eventually("an .eml file appears", || async { eml().is_some() }).await;
    let found = eml();
    let text = std::fs::read_to_string(found.expect("file")).expect("read");
    let text = text.replace("=\r\n", "").replace("=3D", "=");
    assert!(text.contains(&format!("To: {mail}")), "{text}");
    assert!(text.contains(&format!("{APP}#action=reset-password&token=")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_refused_mail_is_tried_again_later_and_delivered() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let mail = email();
    app.user(&mail).await;
    sink.refuse_next(1);
    app.forgot(&mail).await;
    // Refused once; the retry waits for its backoff (5 s on the test clock).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.received().is_empty());
    assert_eq!(app.state().store().mail_waiting().await.expect("outbox"), 1);
    app.clock.advance(5);
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].to, [mail]);
    eventually("the outbox is empty", || async {
        app.state().store().mail_waiting().await.expect("outbox") == 0
    })
    .await;
}

#[tokio::test]
async fn two_instances_on_one_database_send_each_mail_once() {
    let sink = Sink::start().await;
    let a = app_with(&sink, |_| {}).await;
    let mut cfg = a.cfg.clone();
    cfg.mail.smtp_url = Some(sink.url());
    let b = start_on(a.db.clone(), cfg, a.database.clone(), a.clock.clone()).await;
    let mails: Vec<String> = (0..12).map(|_| email()).collect();
    for m in &mails {
        a.register(m, PASSWORD).await;
    }
    // Asked on both instances at once.
    let asks = mails.iter().enumerate().map(|(i, m)| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.forgot(m)
    });
    join_all(asks).await;
    let got = sink.wait_for(mails.len()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_later = sink.received();
    assert_eq!(got_later.len(), got.len());
    let mut to: Vec<String> = got_later.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    let mut want = mails.clone();
    want.sort();
    assert_eq!(to, want, "each mail exactly once");
}

#[tokio::test]
async fn verifying_the_email_shows_in_tokens_and_me_and_can_be_required_for_login() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |c| c.mail.require_verified_email = true).await;
    let mail = email();
    app.register(&mail, PASSWORD).await;
    // Required: the right password of an unverified account is 403; a wrong one stays 401.
    let login = |password: &'static str| {
        app.post_json(
            "/auth/login",
            json!({"email": mail, "password": password, "delivery": "body"}),
        )
    };
    assert_error(
        login(PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    assert_error(
        login("wrong password!").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // The link comes from a session, so verification is tried on an app that does not
    // require it, on the same database.
    let mut cfg = app.cfg.clone();
    cfg.mail.require_verified_email = false;
    let open = start_on(app.db.clone(), cfg, app.database.clone(), app.clock.clone()).await;
    let t = open.login_body(&mail, PASSWORD).await;
    assert_eq!(me(&open, &t.access).await["email_verified"], false);
    let r = open
        .post_auth("/auth/email/verify/send", &t.access, json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = sink.wait_for(1).await;
    let link = mail_to(&got, &mail, "Confirm your email for Acme");
    assert!(
        link.text()
            .contains(&format!("{APP}#action=verify-email&token="))
    );
    let token = link.token().expect("token");
    let r = open
        .post_json("/auth/email/verify", json!({"token": token}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let next = open.rotate(&t.refresh).await;
    assert_eq!(me(&open, &next.access).await["email_verified"], true);
    // Now the strict server lets the account in.
    assert_eq!(login(PASSWORD).await.status(), StatusCode::OK);
    // Verified: asking again sends nothing.
    open.post_auth("/auth/email/verify/send", &next.access, json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn an_email_change_is_confirmed_by_the_new_address_noticed_by_the_old_and_keeps_sessions() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let (old, taken, new) = (email(), email(), email());
    let t = app.user(&old).await;
    app.user(&taken).await;
    let change = |to: &str, password: &str| {
        app.post_auth(
            "/auth/email/change",
            &t.access,
            json!({"new_email": to, "current_password": password}),
        )
    };
    assert_error(
        change(&new, "not my password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_error(
        change(&taken, PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    assert_error(
        change("nope", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_email",
    )
    .await;
    let r = change(&new.to_uppercase(), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = sink.wait_for(2).await;
    let confirm = mail_to(&got, &new, "Confirm your new email for Acme");
    let notice = mail_to(&got, &old, "Your Acme email is being changed");
    assert!(notice.text().contains(&new));
    assert!(notice.token().is_none(), "the old address gets no link");
    let token = confirm.token().expect("token");
    // Nothing changed yet.
    app.login_body(&old, PASSWORD).await;

    let r = app
        .post_json("/auth/email/change/confirm", json!({"token": token}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&t.access).await,
        StatusCode::OK,
        "sessions stay"
    );
    let next = app.rotate(&t.refresh).await;
    let who = me(&app, &next.access).await;
    assert_eq!(
        (&who["email"], &who["email_verified"]),
        (&json!(new), &json!(true))
    );
    app.login_body(&new, PASSWORD).await;
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": old, "password": PASSWORD, "delivery": "body"}),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app
        .post_json("/auth/email/change/confirm", json!({"token": token}))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_email_token").await;
}

#[tokio::test]
async fn an_address_taken_before_the_confirmation_keeps_the_link_and_changes_nothing() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let (old, new) = (email(), email());
    let t = app.user(&old).await;
    let r = app
        .post_auth(
            "/auth/email/change",
            &t.access,
            json!({"new_email": new, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let token = mail_to(&sink.wait_for(2).await, &new, "Confirm")
        .token()
        .expect("token");
    app.register(&new, PASSWORD).await;
    let r = app
        .post_json("/auth/email/change/confirm", json!({"token": token}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "email_taken").await;
    app.login_body(&old, PASSWORD).await;
}

#[tokio::test]
async fn asking_for_mail_is_throttled_per_address_and_per_client() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |c| c.rate_limits = true).await;
    let mail = email();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.forgot(&mail).await.status());
    }
    assert_eq!(&statuses[..3], [StatusCode::ACCEPTED; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    // Other spellings of the address are the same inbox: the same allowance.
    for typed in [crate::helpers::full_width(&mail), mail.to_uppercase()] {
        assert_eq!(
            app.forgot(&typed).await.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{typed}"
        );
    }
    // Another address from the same client: the per-client bucket (10) still has room.
    assert_eq!(app.forgot(&email()).await.status(), StatusCode::ACCEPTED);
    // Eight asked so far (refused ones count: the client's bucket is checked first); two more
    // addresses spend it, and the client then waits whatever the address...
    for _ in 0..2 {
        assert_eq!(app.forgot(&email()).await.status(), StatusCode::ACCEPTED);
    }
    let r = app.forgot(&email()).await;
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // ...and whatever the mail: a verification asked from that client waits too.
    let t = app.user(&email()).await;
    let r = app
        .post_auth("/auth/email/verify/send", &t.access, json!({}))
        .await;
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn an_admin_mails_a_reset_link_or_gets_it_to_pass_on() {
    let sink = Sink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let key = app.service_key(&[Scope::Admin]).await;
    let mail = email();
    let t = app.user(&mail).await;
    let id = me(&app, &t.access).await["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ask = |body: Option<Value>| {
        let mut r = app
            .client
            .post(app.url(&format!("/admin/users/{id}/password-reset")))
            .bearer_auth(&key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let mailed = ask(None).await.expect("request");
    assert_eq!(mailed.status(), StatusCode::ACCEPTED);
    let first = sink.wait_for(1).await[0].token().expect("token");

    let r = ask(Some(json!({"send": false}))).await.expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    let link = v["link"].as_str().expect("link");
    assert!(link.starts_with(&format!("{APP}#action=reset-password&token=")));
    assert!(v["expires_at"].is_string());
    let token = link.rsplit("token=").next().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "send: false mails nothing");

    // The newer link supersedes the mailed one; it resets like any other.
    let old = app.reset(&first, NEW_PASSWORD).await;
    assert_error(old, StatusCode::BAD_REQUEST, "invalid_email_token").await;
    assert_eq!(
        app.reset(&token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
    let events: Value = app
        .client
        .get(app.url(&format!(
            "/admin/events?user_id={id}&kind=password_reset_requested"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let events = events["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| {
        e["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("service_key:"))
    }));
    let nobody = app
        .client
        .post(app.url("/admin/users/nobody/password-reset"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_error(nobody, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn smtp_without_tls_none_never_falls_back_to_plain_text() {
    // The sink offers no STARTTLS: a mail for `smtp://` (STARTTLS required) must not go out.
    let sink = Sink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let app = spawn_app_with(move |c| c.mail.smtp_url = Some(url)).await;
    let mail = email();
    app.user(&mail).await;
    assert_eq!(app.forgot(&mail).await.status(), StatusCode::ACCEPTED);
    eventually("the mail was tried and kept", || async {
        let outbox = entity::outbox::Entity::find()
            .all(app.state().store().connection())
            .await
            .expect("outbox");
        outbox.len() == 1 && outbox[0].attempts >= 1 && outbox[0].locked_until.is_none()
    })
    .await;
    assert!(sink.received().is_empty());
}
