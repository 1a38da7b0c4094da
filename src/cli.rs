//! The command line: `authd [serve]`, `migrate`, `keys rotate`, `openapi`, `users ...`,
//! `sessions revoke`, `service-keys ...`, `prune`.
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::{DbConfig, ServeConfig};
use crate::sessions::Sessions;
use crate::store::{ClientMeta, EndReason, SessionScope, Store};

/// authd: an auth server whose logout really logs JWTs out.
#[derive(Debug, Parser)]
#[command(name = "authd", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Log format: `text` (the default; coloured only on a terminal) or `json` (one object per
    /// line).
    #[arg(
        long,
        env = "AUTHD_LOG_FORMAT",
        value_name = "AUTHD_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub db: DbConfig,
    /// Settings of `serve` when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeConfig,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<ServeConfig>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Signing-key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI spec as YAML (the committed `openapi.yaml`).
    Openapi,
    /// User administration.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Session administration.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Keys for resource servers and back offices (the revocation feed, introspection).
    #[command(subcommand)]
    ServiceKeys(ServiceKeysCommand),
    /// Run the pruning once and report what it removed. What it keeps follows the settings the
    /// servers recorded in the database, not this command's environment.
    Prune,
}

/// `authd keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key now and make it sign after `--activate-in`; the old key signs
    /// until then and verifies until its tokens have expired.
    Rotate {
        /// Seconds between publishing the new key and signing with it. Every instance loads it
        /// within one sync interval and every verifier kit within its JWKS refresh (5 minutes
        /// by default), so with the default no token carries a key that a verifier has not
        /// loaded. 0 signs with it at once (one instance, no verifiers elsewhere).
        #[arg(long, value_name = "SECS", default_value_t = 360, value_parser = clap::value_parser!(i64).range(0..=86_400))]
        activate_in: i64,
    },
    /// Remove a key at once (a leaked key): every instance stops verifying it, cached tokens
    /// included, within one sync interval, and it leaves the JWKS. Tokens it signed stop
    /// working; if it was the current key, a new one becomes current.
    Revoke {
        /// The key's `kid` (from the JWKS or an access token's header). A kid is base64url, so it
        /// may begin with `-`; it is taken as the kid, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// `authd users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Disable a user: ends every session at once and refuses their logins.
    Disable { email: String },
    /// Enable a disabled user.
    Enable { email: String },
}

/// `authd sessions ...`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End every session of a user.
    Revoke {
        /// The user's email.
        #[arg(long)]
        user: String,
    },
}

/// `authd service-keys ...`
#[derive(Debug, Subcommand)]
pub enum ServiceKeysCommand {
    /// Create a key and print it, once, on stdout (only its SHA-256 hash is stored).
    Create {
        /// A name to tell keys apart (letters, digits, `.`, `_`, `-`; at most 64).
        #[arg(long)]
        name: String,
        /// Comma-separated: `revocations:read`, `introspect`, `admin`.
        #[arg(long)]
        scope: String,
    },
    /// List the keys (never the keys themselves): name, scopes, created, last used, revoked.
    List,
    /// Revoke a key: every instance refuses it within one sync interval.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// Why a command failed: what the operator reads after `authd: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("migration failed: {0}")]
    Migration(crate::store::StoreError),
    #[error(transparent)]
    Sessions(#[from] crate::sessions::ServiceError),
    #[error(transparent)]
    Keys(#[from] crate::keyring::KeyringError),
    #[error(transparent)]
    Start(#[from] app::StartError),
    #[error(transparent)]
    Spec(#[from] crate::api::spec::SpecError),
    #[error("server error: {0}")]
    Server(std::io::Error),
    /// The command cannot do what was asked (no such user, no database there, ...).
    #[error("{0}")]
    Refused(String),
}

/// A command's outcome.
pub type CliResult = Result<(), CliError>;

/// A spinner on stderr when it is a terminal; hidden (and silent) otherwise.
fn spinner(message: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar.set_message(message.to_owned());
    bar
}

/// Opens the database for `authd migrate`, which creates and upgrades it.
async fn migrated_store(db: &DbConfig) -> Result<Store, CliError> {
    let store = Store::connect(db).await?;
    let bar = spinner("applying migrations");
    store.migrate().await.map_err(CliError::Migration)?;
    bar.finish_and_clear();
    Ok(store)
}

/// Opens the database for an admin command, which never creates or upgrades one: a command
/// run from the wrong directory must not leave an empty database behind and report success,
/// and a newer binary must not change a production schema as a side effect.
async fn store(db: &DbConfig) -> Result<Store, CliError> {
    if let Some((path, _)) = crate::store::open::sqlite_file(&db.database_url)
        && !path.exists()
    {
        let shown = std::path::absolute(&path).unwrap_or(path);
        return Err(CliError::Refused(format!(
            "no database at {}: admin commands never create one; point DATABASE_URL at the \
             server's database (or create it with `authd migrate`)",
            shown.display()
        )));
    }
    // A command does one thing at a time: one connection, opened (with SQLite's busy retries)
    // before anything runs, so no later statement waits on opening another.
    let one = DbConfig {
        db_max_connections: 1,
        ..db.clone()
    };
    let store = Store::connect(&one).await?;
    let pending = store.pending_migrations().await?;
    if pending > 0 {
        return Err(CliError::Refused(format!(
            "the database needs {pending} migration(s) that this command does not apply: run \
             `authd migrate` (or start the server) first"
        )));
    }
    Ok(store)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> CliResult {
    let clock = SystemClock;
    match cli.command {
        None => serve(&cli.db, &cli.serve).await,
        Some(Command::Serve(cfg)) => serve(&cli.db, &cfg).await,
        Some(Command::Migrate) => {
            migrated_store(&cli.db).await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Keys(KeysCommand::Rotate { activate_in })) => {
            let store = store(&cli.db).await?;
            let kid = crate::keyring::rotate(&store, clock.now() + activate_in).await?;
            if activate_in == 0 {
                println!(
                    "new signing key {kid} is current; the previous key verifies until its tokens expire"
                );
            } else {
                println!(
                    "new signing key {kid} is published and signs in {activate_in} s; the previous key signs until then and verifies until its tokens expire"
                );
            }
            Ok(())
        }
        Some(Command::Keys(KeysCommand::Revoke { kid })) => {
            use crate::keyring::Revoked;
            let store = store(&cli.db).await?;
            match crate::keyring::revoke(&store, &kid, clock.now()).await? {
                Revoked::NoSuchKey => {
                    return Err(CliError::Refused(format!("no signing key with kid {kid}")));
                }
                Revoked::Replaced { by } => {
                    println!("revoked signing key {kid}; it was current, so {by} is current now")
                }
                Revoked::Removed => println!("revoked signing key {kid}"),
            }
            Ok(())
        }
        Some(Command::Openapi) => {
            print!("{}", crate::api::spec::yaml()?);
            Ok(())
        }
        Some(Command::Users(cmd)) => users(&cli.db, cmd).await,
        Some(Command::ServiceKeys(cmd)) => service_keys(&cli.db, cmd).await,
        Some(Command::Sessions(SessionsCommand::Revoke { user })) => {
            let sessions = Sessions::offline(store(&cli.db).await?, Arc::new(clock));
            let email = email_arg(&user)?;
            let u = sessions
                .store()
                .user_by_email(&email)
                .await?
                .ok_or_else(|| CliError::Refused(format!("no user with email {email}")))?;
            let ended = sessions
                .end(
                    &crate::ids::UserId::from(u.id.as_str()),
                    SessionScope::All,
                    EndReason::Operator,
                    &ClientMeta::default(),
                )
                .await?;
            println!("ended {} session(s) of {email}", ended.len());
            Ok(())
        }
        Some(Command::Prune) => {
            let store = store(&cli.db).await?;
            let bar = spinner("pruning");
            let p = store
                .prune_with_progress(clock.now(), |p| {
                    bar.set_message(format!("pruning: {} expired sessions removed", p.sessions))
                })
                .await?;
            bar.finish_and_clear();
            println!(
                "pruned: {} sessions, {} revocations, {} sealed successors, {} events, {} keys, {} email tokens",
                p.sessions, p.revocations, p.sealed_successors, p.events, p.keys, p.email_tokens
            );
            Ok(())
        }
    }
}

async fn serve(db: &DbConfig, cfg: &ServeConfig) -> CliResult {
    let running = app::start(
        db,
        cfg,
        Arc::new(SystemClock),
        Some(Box::pin(wait_for_signal())),
    )
    .await?;
    running.wait().await.map_err(CliError::Server)?;
    tracing::info!("authd stopped");
    Ok(())
}

/// An email given on the command line, normalised as everywhere else.
fn email_arg(raw: &str) -> Result<String, CliError> {
    crate::policy::normalize_email(raw)
        .ok_or_else(|| CliError::Refused(format!("{raw:?} is not an email address")))
}

async fn users(db: &DbConfig, cmd: UsersCommand) -> CliResult {
    let sessions = Sessions::offline(store(db).await?, Arc::new(SystemClock));
    match cmd {
        UsersCommand::List => {
            for u in sessions.store().list_users().await? {
                println!(
                    "{}\t{}\t{}",
                    u.id,
                    u.email,
                    if u.disabled { "disabled" } else { "active" }
                );
            }
        }
        UsersCommand::Disable { email } => {
            let email = email_arg(&email)?;
            let ended = sessions
                .set_disabled(&email, true)
                .await?
                .ok_or_else(|| CliError::Refused(format!("no user with email {email}")))?;
            println!("disabled {email}; ended {} session(s)", ended.len());
        }
        UsersCommand::Enable { email } => {
            let email = email_arg(&email)?;
            sessions
                .set_disabled(&email, false)
                .await?
                .ok_or_else(|| CliError::Refused(format!("no user with email {email}")))?;
            println!("enabled {email}");
        }
    }
    Ok(())
}

/// RFC 3339, for the listings.
fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

async fn service_keys(db: &DbConfig, cmd: ServiceKeysCommand) -> CliResult {
    use crate::tokens::{Scope, service};
    let store = store(db).await?;
    let now = SystemClock.now();
    match cmd {
        ServiceKeysCommand::Create { name, scope } => {
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid_name {
                return Err(CliError::Refused(format!(
                    "{name:?} is not a key name: use 1 to 64 letters, digits, `.`, `_` or `-`"
                )));
            }
            let scopes = Scope::parse_list(&scope).map_err(|unknown| {
                CliError::Refused(format!(
                    "unknown scope {unknown:?}: use revocations:read, introspect or admin"
                ))
            })?;
            if scopes.is_empty() {
                return Err(CliError::Refused("name at least one scope".into()));
            }
            let minted = service::mint().map_err(|e| {
                CliError::Refused(format!("the OS random number generator failed: {e}"))
            })?;
            if !store
                .create_service_key(&name, &scopes, minted.hash.clone(), now)
                .await?
            {
                return Err(CliError::Refused(format!(
                    "a service key named {name} exists: revoke it first or pick another name"
                )));
            }
            eprintln!(
                "created service key {name} ({}); it is shown once, below, and stored only as a hash",
                Scope::join(&scopes)
            );
            println!("{}", minted.key);
        }
        ServiceKeysCommand::List => {
            for k in store.list_service_keys().await? {
                println!(
                    "{}\t{}\tcreated {}\t{}\t{}",
                    k.key.name,
                    Scope::join(&k.key.scopes),
                    rfc3339(k.created_at),
                    k.last_used_at.map_or_else(
                        || "never used".to_owned(),
                        |t| format!("last used {}", rfc3339(t))
                    ),
                    k.revoked_at.map_or_else(
                        || "active".to_owned(),
                        |t| format!("revoked {}", rfc3339(t))
                    ),
                );
            }
        }
        ServiceKeysCommand::Revoke { name } => {
            if !store.revoke_service_key(&name, now).await? {
                return Err(CliError::Refused(format!(
                    "no service key in force named {name}"
                )));
            }
            println!(
                "revoked service key {name}; every instance refuses it within one sync interval"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, KeysCommand};

    #[test]
    fn a_kid_that_begins_with_a_hyphen_is_a_kid_not_an_option() {
        let cli = Cli::try_parse_from(["authd", "keys", "revoke", "-aq9KFWO2U4vBqBmcWURxA"])
            .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Some(Command::Keys(KeysCommand::Revoke { kid })),
            ..
        }) = cli
        else {
            panic!("not parsed as a revoke: {cli:?}");
        };
        assert_eq!(kid, "-aq9KFWO2U4vBqBmcWURxA");
    }
}
