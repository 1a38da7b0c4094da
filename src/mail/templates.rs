//! The mails authd writes: a subject, a plain-text and an HTML body per kind, short and plain.
//! Each can be replaced from `AUTHD_MAIL_TEMPLATES` (files `KIND.subject`, `KIND.txt`,
//! `KIND.html`), read once at start. Placeholders: `{{product}}`, `{{email}}`, `{{new_email}}`,
//! `{{link}}`; in HTML their values are escaped.
use std::path::Path;

use super::MailError;

/// The kinds of mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The password-reset link.
    PasswordReset,
    /// The notice that the password was reset.
    PasswordChanged,
    /// The email-verification link.
    VerifyEmail,
    /// The link that confirms a new address, sent to it.
    EmailChangeConfirm,
    /// The notice to the old address that a change was asked for.
    EmailChangeNotice,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::VerifyEmail,
        Self::EmailChangeConfirm,
        Self::EmailChangeNotice,
    ];

    /// The template files' name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::VerifyEmail => "verify_email",
            Self::EmailChangeConfirm => "email_change_confirm",
            Self::EmailChangeNotice => "email_change_notice",
        }
    }

    /// What the app does with a link of this kind (the fragment's `action`).
    pub fn action(self) -> &'static str {
        match self {
            Self::PasswordReset => "reset-password",
            Self::VerifyEmail => "verify-email",
            Self::EmailChangeConfirm => "confirm-email-change",
            Self::PasswordChanged | Self::EmailChangeNotice => "none",
        }
    }

    fn builtin(self) -> [&'static str; 3] {
        match self {
            Self::PasswordReset => [
                "Reset your {{product}} password",
                "Someone (we hope you) asked to reset the password of the {{product}} account \
                 {{email}}.\n\nSet a new password here within 30 minutes:\n{{link}}\n\nIf it was \
                 not you, ignore this mail: your password stays as it is.\n",
                "<p>Someone (we hope you) asked to reset the password of the {{product}} account \
                 {{email}}.</p><p><a href=\"{{link}}\">Set a new password</a> within 30 minutes.</p>\
                 <p>If it was not you, ignore this mail: your password stays as it is.</p>",
            ],
            Self::PasswordChanged => [
                "Your {{product}} password was changed",
                "The password of the {{product}} account {{email}} was just reset, and every \
                 session of it was logged out.\n\nIf it was not you, reset it again at once and \
                 tell us.\n",
                "<p>The password of the {{product}} account {{email}} was just reset, and every \
                 session of it was logged out.</p><p>If it was not you, reset it again at once \
                 and tell us.</p>",
            ],
            Self::VerifyEmail => [
                "Confirm your email for {{product}}",
                "Confirm that {{email}} is your address for {{product}} within 24 hours:\n\
                 {{link}}\n\nIf you did not ask for this, ignore this mail.\n",
                "<p><a href=\"{{link}}\">Confirm that {{email}} is your address</a> for \
                 {{product}} within 24 hours.</p><p>If you did not ask for this, ignore this \
                 mail.</p>",
            ],
            Self::EmailChangeConfirm => [
                "Confirm your new email for {{product}}",
                "Someone (we hope you) asked to use {{new_email}} for a {{product}} account. \
                 Confirm it within 24 hours:\n{{link}}\n\nIf it was not you, ignore this mail: \
                 nothing changes.\n",
                "<p>Someone (we hope you) asked to use {{new_email}} for a {{product}} account. \
                 <a href=\"{{link}}\">Confirm it</a> within 24 hours.</p><p>If it was not you, \
                 ignore this mail: nothing changes.</p>",
            ],
            Self::EmailChangeNotice => [
                "Your {{product}} email is being changed",
                "Someone with the password of the {{product}} account {{email}} asked to move it \
                 to {{new_email}}. It changes only once the new address confirms.\n\nIf it was \
                 not you, change your password now.\n",
                "<p>Someone with the password of the {{product}} account {{email}} asked to move \
                 it to {{new_email}}. It changes only once the new address confirms.</p><p>If it \
                 was not you, change your password now.</p>",
            ],
        }
    }
}

/// The values placeholders stand for.
pub struct Vars<'a> {
    pub product: &'a str,
    pub email: &'a str,
    pub new_email: &'a str,
    pub link: &'a str,
}

/// The templates in force: the built-in ones, with the files of `AUTHD_MAIL_TEMPLATES` over
/// them.
#[derive(Debug, Clone)]
pub struct Templates {
    /// Subject, text, HTML, per kind in `Kind::ALL` order.
    parts: Vec<[String; 3]>,
}

impl Templates {
    /// The built-in templates, with any file in `dir` replacing its part.
    pub fn load(dir: Option<&Path>) -> Result<Self, MailError> {
        let mut parts = Vec::new();
        for kind in Kind::ALL {
            let builtin = kind.builtin();
            let mut own = [
                builtin[0].to_owned(),
                builtin[1].to_owned(),
                builtin[2].to_owned(),
            ];
            if let Some(dir) = dir {
                for (i, ext) in ["subject", "txt", "html"].iter().enumerate() {
                    let path = dir.join(format!("{}.{ext}", kind.name()));
                    match std::fs::read_to_string(&path) {
                        Ok(text) => own[i] = text,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(MailError::Config(format!(
                                "AUTHD_MAIL_TEMPLATES: {}: {e}",
                                path.display()
                            )));
                        }
                    }
                }
            }
            parts.push(own);
        }
        Ok(Self { parts })
    }

    /// Subject, text and HTML of a mail of `kind`.
    pub fn render(&self, kind: Kind, vars: &Vars<'_>) -> (String, String, String) {
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let [subject, text, html] = &self.parts[i];
        // A subject is one line, whatever a template or a value holds.
        let subject = fill(subject, vars, |s| s.to_owned()).replace(['\r', '\n'], " ");
        (
            subject.trim().to_owned(),
            fill(text, vars, |s| s.to_owned()),
            fill(html, vars, escape_html),
        )
    }
}

fn fill(template: &str, vars: &Vars<'_>, escape: impl Fn(&str) -> String) -> String {
    template
        .replace("{{product}}", &escape(vars.product))
        .replace("{{email}}", &escape(vars.email))
        .replace("{{new_email}}", &escape(vars.new_email))
        .replace("{{link}}", &escape(vars.link))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fill_the_templates_escaped_in_html_and_on_one_line_in_the_subject() {
        let t = Templates::load(None).unwrap();
        let vars = Vars {
            product: "Acme <Shop>\nBcc: x",
            email: "a@b.co",
            new_email: "",
            link: "https://app.example/#action=reset-password&token=T",
        };
        let (subject, text, html) = t.render(Kind::PasswordReset, &vars);
        assert_eq!(subject, "Reset your Acme <Shop> Bcc: x password");
        assert!(text.contains("https://app.example/#action=reset-password&token=T"));
        assert!(html.contains("Acme &lt;Shop&gt;"));
        assert!(html.contains("href=\"https://app.example/#action=reset-password&amp;token=T\""));
    }

    #[test]
    fn a_template_directory_replaces_only_the_files_it_has() {
        let dir = std::env::temp_dir().join(format!("authd-tpl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("verify_email.subject"),
            "Bienvenue chez {{product}}",
        )
        .unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let vars = Vars {
            product: "Acme",
            email: "a@b.co",
            new_email: "",
            link: "L",
        };
        let (subject, text, _) = t.render(Kind::VerifyEmail, &vars);
        assert_eq!(subject, "Bienvenue chez Acme");
        assert!(
            text.contains("Confirm that a@b.co"),
            "the built-in body stays"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
