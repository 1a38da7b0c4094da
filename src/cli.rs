//! The command line: `authd [serve]`, `migrate`, `keys rotate`, `openapi`, `users ...`,
//! `sessions revoke`, `prune`.
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
    /// Run the pruning once and report what it removed. What it keeps follows the settings the
    /// servers recorded in the database, not this command's environment.
    Prune,
}

/// `authd keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key current; the old one verifies until its tokens have expired.
    Rotate,
    /// Remove a key at once (a leaked key): every instance stops verifying it, cached tokens
    /// included, within one sync interval, and it leaves the JWKS. Tokens it signed stop
    /// working; if it was the current key, a new one becomes current.
    Revoke {
        /// The key's `kid` (from the JWKS or an access token's header).
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

/// A failed command: the message for the operator.
pub type CliResult = Result<(), String>;

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
async fn migrated_store(db: &DbConfig) -> Result<Store, String> {
    let store = Store::connect(db)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let bar = spinner("applying migrations");
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    bar.finish_and_clear();
    Ok(store)
}

/// Opens the database for an admin command, which never creates or upgrades one: a command
/// run from the wrong directory must not leave an empty database behind and report success,
/// and a newer binary must not change a production schema as a side effect.
async fn store(db: &DbConfig) -> Result<Store, String> {
    if let Some((path, _)) = crate::store::open::sqlite_file(&db.database_url)
        && !path.exists()
    {
        let shown = std::path::absolute(&path).unwrap_or(path);
        return Err(format!(
            "no database at {}: admin commands never create one; point DATABASE_URL at the \
             server's database (or create it with `authd migrate`)",
            shown.display()
        ));
    }
    let store = Store::connect(db)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let pending = store
        .pending_migrations()
        .await
        .map_err(|e| format!("database: {e}"))?;
    if pending > 0 {
        return Err(format!(
            "the database needs {pending} migration(s) that this command does not apply: run \
             `authd migrate` (or start the server) first"
        ));
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
        Some(Command::Keys(KeysCommand::Rotate)) => {
            let store = store(&cli.db).await?;
            let kid = crate::keyring::rotate(&store, clock.now())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "new signing key {kid} is current; the previous key verifies until its tokens expire"
            );
            Ok(())
        }
        Some(Command::Keys(KeysCommand::Revoke { kid })) => {
            use crate::keyring::Revoked;
            let store = store(&cli.db).await?;
            match crate::keyring::revoke(&store, &kid, clock.now())
                .await
                .map_err(|e| e.to_string())?
            {
                Revoked::NoSuchKey => return Err(format!("no signing key with kid {kid}")),
                Revoked::Replaced { by } => {
                    println!("revoked signing key {kid}; it was current, so {by} is current now")
                }
                Revoked::Removed => println!("revoked signing key {kid}"),
            }
            Ok(())
        }
        Some(Command::Openapi) => {
            print!("{}", crate::api::spec::yaml().map_err(|e| e.to_string())?);
            Ok(())
        }
        Some(Command::Users(cmd)) => users(&cli.db, cmd).await,
        Some(Command::Sessions(SessionsCommand::Revoke { user })) => {
            let sessions = Sessions::offline(store(&cli.db).await?, Arc::new(clock));
            let email = email_arg(&user)?;
            let u = sessions
                .store()
                .user_by_email(&email)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user with email {email}"))?;
            let ended = sessions
                .end(
                    &u.id,
                    SessionScope::All,
                    EndReason::Operator,
                    &ClientMeta::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
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
                .await
                .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            println!(
                "pruned: {} sessions, {} revocations, {} sealed successors, {} events, {} keys",
                p.sessions, p.revocations, p.sealed_successors, p.events, p.keys
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
    .await
    .map_err(|e| e.to_string())?;
    running
        .wait()
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("authd stopped");
    Ok(())
}

/// An email given on the command line, normalised as everywhere else.
fn email_arg(raw: &str) -> Result<String, String> {
    crate::policy::normalize_email(raw).ok_or_else(|| format!("{raw:?} is not an email address"))
}

async fn users(db: &DbConfig, cmd: UsersCommand) -> CliResult {
    let sessions = Sessions::offline(store(db).await?, Arc::new(SystemClock));
    match cmd {
        UsersCommand::List => {
            for u in sessions
                .store()
                .list_users()
                .await
                .map_err(|e| e.to_string())?
            {
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
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user with email {email}"))?;
            println!("disabled {email}; ended {} session(s)", ended.len());
        }
        UsersCommand::Enable { email } => {
            let email = email_arg(&email)?;
            sessions
                .set_disabled(&email, false)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user with email {email}"))?;
            println!("enabled {email}");
        }
    }
    Ok(())
}
