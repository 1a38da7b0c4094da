//! Mail: what authd writes (templates), how it leaves (SMTP through lettre, or `.eml` files),
//! and the background sender that takes it from the outbox. A request never waits for a mail
//! server: it writes the mail into the outbox in its own transaction, rings the sender and
//! answers.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailConfig;
use crate::store::outbox::{Leased, Mail};

mod sender;
mod templates;

pub use sender::run as sender;
pub use templates::{Kind, Templates};

/// Why mail could not be set up (at start) or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Send(String),
}

/// Where mail goes.
enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// `host:port`, for the logs (never the credentials).
        server: String,
    },
    Files(PathBuf),
}

/// Composes mail and delivers what the sender hands it. Cheap to share.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    templates: Templates,
    app_url: String,
    product: String,
    /// Rung when a mail is queued, so that the sender does not wait for its next poll.
    pub bell: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

/// Longest a mail server may take to answer before the mail is tried again later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Mailer {
    /// The mailer `cfg` asks for; links open `cfg.app_url`, or else `issuer`.
    pub fn new(cfg: &MailConfig, issuer: &str) -> Result<Self, MailError> {
        let from: Mailbox = cfg.mail_from.parse().map_err(|_| {
            MailError::Config(format!(
                "AUTHD_MAIL_FROM must be an address such as `authd <no-reply@example.com>`, got {:?}",
                cfg.mail_from
            ))
        })?;
        let app_url = cfg.app_url.clone().unwrap_or_else(|| issuer.to_owned());
        match url::Url::parse(&app_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => {}
            _ => {
                return Err(MailError::Config(format!(
                    "AUTHD_APP_URL must be an http(s) URL without a fragment, got {app_url:?}"
                )));
            }
        }
        let transport = match &cfg.smtp_url {
            Some(raw) => smtp(raw)?,
            None => {
                std::fs::create_dir_all(&cfg.mail_dir).map_err(|e| {
                    MailError::Config(format!("AUTHD_MAIL_DIR {}: {e}", cfg.mail_dir.display()))
                })?;
                Transport::Files(cfg.mail_dir.clone())
            }
        };
        let templates = Templates::load(cfg.mail_templates.as_deref())?;
        Ok(Self {
            transport,
            from,
            templates,
            app_url,
            product: cfg.product_name.clone(),
            bell: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Says at start where mail goes; mail written to files is a warning (nobody receives it).
    pub fn announce(&self) {
        match &self.transport {
            Transport::Smtp { server, .. } => tracing::info!(%server, "mail: SMTP"),
            Transport::Files(dir) => tracing::warn!(
                dir = %dir.display(),
                "mail: AUTHD_SMTP_URL is not set, so mail is written as .eml files and nobody \
                 receives it (set AUTHD_SMTP_URL in production)"
            ),
        }
    }

    /// The link a mail of `kind` carries: the app's URL with the token in the fragment.
    pub fn link(&self, kind: Kind, token: &str) -> String {
        format!("{}#action={}&token={token}", self.app_url, kind.action())
    }

    /// A mail of `kind` to `to`; `link` and `new_email` fill the templates where they ask.
    pub fn compose(
        &self,
        kind: Kind,
        to: &str,
        link: Option<&str>,
        new_email: Option<&str>,
    ) -> Mail {
        let vars = templates::Vars {
            product: &self.product,
            email: to,
            new_email: new_email.unwrap_or(""),
            link: link.unwrap_or(""),
        };
        let (subject, text, html) = self.templates.render(kind, &vars);
        Mail {
            to: to.to_owned(),
            subject,
            text,
            html,
        }
    }

    /// Hands one leased mail to the mail server (or writes its file).
    async fn deliver(&self, mail: &Leased) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to_address
            .parse()
            .map_err(|e| MailError::Send(format!("the address cannot be mailed: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text_body.clone(),
                mail.html_body.clone(),
            ))
            .map_err(|e| MailError::Send(format!("the message cannot be built: {e}")))?;
        match &self.transport {
            Transport::Smtp { transport, .. } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Files(dir) => {
                let name = format!("{}-{}.eml", mail.created_at, mail.id);
                let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(name));
                let bytes = message.formatted();
                // Written whole, then renamed: a reader never sees half a mail.
                tokio::fs::write(&tmp, bytes)
                    .await
                    .and(tokio::fs::rename(&tmp, &path).await)
                    .map_err(|e| MailError::Send(format!("{}: {e}", path.display())))
            }
        }
    }
}

/// The SMTP transport for `raw`: `smtp://` requires STARTTLS unless `?tls=none` says plain,
/// `smtps://` is TLS from the first byte. Errors never repeat the URL (it may hold a password).
fn smtp(raw: &str) -> Result<Transport, MailError> {
    let bad = |why: &str| {
        MailError::Config(format!(
            "AUTHD_SMTP_URL {why}: use smtp://[USER:PASSWORD@]HOST[:PORT], \
             smtps://[USER:PASSWORD@]HOST[:PORT] or smtp://HOST:PORT?tls=none"
        ))
    };
    let mut url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    let host = url.host_str().ok_or_else(|| bad("has no host"))?.to_owned();
    let tls: Option<String> = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let default_port = match (url.scheme(), tls.as_deref()) {
        ("smtp", None) => {
            url.query_pairs_mut().clear().append_pair("tls", "required");
            587
        }
        ("smtp", Some("none")) => {
            url.set_query(None);
            25
        }
        ("smtp", Some("required")) => 587,
        ("smtps", None) => 465,
        _ => return Err(bad("has an unknown scheme or tls setting")),
    };
    let port = url.port().unwrap_or(default_port);
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
        .map_err(|_| bad("cannot be used"))?
        .timeout(Some(SMTP_TIMEOUT))
        .build();
    Ok(Transport::Smtp {
        transport,
        server: format!("{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_pick_their_port_and_never_repeat_the_password() {
        let server = |raw: &str| match smtp(raw) {
            Ok(Transport::Smtp { server, .. }) => server,
            Ok(Transport::Files(_)) => panic!("files"),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            server("smtp://user:s3cret@mail.example.com"),
            "mail.example.com:587"
        );
        assert_eq!(
            server("smtps://user:s3cret@mail.example.com"),
            "mail.example.com:465"
        );
        assert_eq!(server("smtp://127.0.0.1:2525?tls=none"), "127.0.0.1:2525");
        for bad in [
            "http://user:s3cret@mail.example.com",
            "smtp://user:s3cret@mail.example.com?tls=maybe",
            "smtps://user:s3cret@mail.example.com?tls=none",
            "user:s3cret@nowhere",
        ] {
            let Err(e) = smtp(bad) else {
                panic!("{bad} accepted")
            };
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
        let cfg = MailConfig {
            smtp_url: Some("smtp://user:s3cret@mail.example.com".into()),
            ..MailConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }
}
