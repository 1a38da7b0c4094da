//! Opening the database with errors an operator can act on: what is wrong, where, and what
//! would work. No message ever carries the URL's password.
use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{DbErr, RuntimeErr};

use super::StoreError;

/// `url` with the password (userinfo or a `password=` parameter) replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            out = format!("{scheme}://{masked}@{host}{}", &rest[authority_end..]);
        }
    }
    if let Some(at) = out.find("password=") {
        let value_start = at + "password=".len();
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "***");
    }
    out
}

/// Removes every secret of `url` from `text` (a driver message that may quote the URL).
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact(url));
    if let Some(password) = password_of(url).filter(|p| !p.is_empty()) {
        out = out.replace(password, "***");
    }
    out
}

fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

/// The file of a SQLite URL (`None` for an in-memory database), and whether the URL lets
/// SQLite create it (`mode=rwc`).
pub fn sqlite_file(url: &str) -> Option<(PathBuf, bool)> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    let creates = query.split('&').any(|p| p == "mode=rwc");
    Some((PathBuf::from(path), creates))
}

fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// What can be said before connecting: an unsupported scheme, a SQLite file that does not
/// exist and will not be created, a directory that is missing.
pub fn precheck(url: &str) -> Result<(), StoreError> {
    let known = url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://");
    if !known {
        return Err(StoreError::Connect(format!(
            "DATABASE_URL must start with sqlite:// (embedded, such as sqlite://authd.db?mode=rwc) \
             or postgres:// (such as postgres://user:password@host:5432/authd); got {}",
            redact(url)
        )));
    }
    let Some((path, creates)) = sqlite_file(url) else {
        return Ok(());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(StoreError::Connect(format!(
            "the directory {} of the SQLite database does not exist: create it, or change \
             DATABASE_URL",
            shown(&dir)
        )));
    }
    if !creates && !path.exists() {
        return Err(StoreError::Connect(format!(
            "no SQLite database at {}: add ?mode=rwc to DATABASE_URL to create it there \
             (sqlite://{}?mode=rwc), or check the path",
            shown(&path),
            path.display()
        )));
    }
    Ok(())
}

/// The driver's error behind a failed connection, if it is one.
fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

/// A connection failure as the operator should read it (the pool's "timed out" replaced by
/// what really happened, the path of a SQLite file that cannot be opened, no password).
pub async fn explain(url: &str, err: &DbErr, timeout: Duration) -> StoreError {
    let text = match sqlite_file(url) {
        Some((path, _)) => explain_sqlite(&path, err),
        None if url.starts_with("postgres") => explain_postgres(url, err, timeout).await,
        None => err.to_string(),
    };
    StoreError::Connect(scrub(&text, url))
}

fn explain_sqlite(path: &Path, err: &DbErr) -> String {
    let code = sqlx_error(err).and_then(|e| match e {
        sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    });
    let file = shown(path);
    match code.as_deref() {
        Some("14") => format!(
            "cannot open the SQLite database {file}: check that this process may read and write \
             it and its directory (SQLite writes {file}-wal and {file}-shm beside it)"
        ),
        Some("8" | "1032" | "1544") => format!(
            "the SQLite database {file} is read-only for this process: authd needs to write it \
             and its directory"
        ),
        _ => format!("cannot open the SQLite database {file}: {err}"),
    }
}

async fn explain_postgres(url: &str, err: &DbErr, timeout: Duration) -> String {
    use sea_orm::sqlx::Connection as _;
    let pool_hid_it = matches!(
        sqlx_error(err),
        Some(sea_orm::sqlx::Error::PoolTimedOut) | None
    ) || matches!(err, DbErr::ConnectionAcquire(_));
    // The pool reports only that it timed out; one direct attempt says why.
    let cause = if pool_hid_it {
        match tokio::time::timeout(timeout, sea_orm::sqlx::PgConnection::connect(url)).await {
            Ok(Err(e)) => Some(e),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                None
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let server = redact(url);
    match cause.as_ref().or(sqlx_error(err)) {
        Some(sea_orm::sqlx::Error::Database(db)) => {
            let hint = match db.code().as_deref() {
                Some("3D000") => ": create it (createdb, or CREATE DATABASE) or fix DATABASE_URL",
                Some("28000" | "28P01") => ": check the user and password in DATABASE_URL",
                _ => "",
            };
            format!("Postgres at {server} refused: {}{hint}", db.message())
        }
        Some(sea_orm::sqlx::Error::Io(io)) => {
            format!("cannot reach Postgres at {server}: {io}")
        }
        Some(other) => format!("cannot connect to Postgres at {server}: {other}"),
        None => format!("cannot connect to Postgres at {server}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact("postgress://admin:s3cretpw@127.0.0.1/db"),
            "postgress://admin:***@127.0.0.1/db"
        );
        assert_eq!(
            redact("postgres://u@h/db?sslmode=require&password=pw2&x=1"),
            "postgres://u@h/db?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact("sqlite://authd.db?mode=rwc"),
            "sqlite://authd.db?mode=rwc"
        );
        let text = "the connection string 'postgres://a:hunter22@h/d' failed: hunter22";
        assert!(!scrub(text, "postgres://a:hunter22@h/d").contains("hunter22"));
    }

    #[test]
    fn sqlite_urls_name_their_file_and_whether_they_create_it() {
        assert_eq!(
            sqlite_file("sqlite://authd.db?mode=rwc"),
            Some((PathBuf::from("authd.db"), true))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/authd/a.db"),
            Some((PathBuf::from("/var/lib/authd/a.db"), false))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn the_precheck_says_what_would_work() {
        let msg = |url: &str| {
            precheck(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let typo = msg("postgress://admin:s3cretpw@127.0.0.1/db");
        assert!(
            typo.contains("postgres://") && !typo.contains("s3cretpw"),
            "{typo}"
        );
        assert!(msg("authd.db").contains("sqlite://"));
        let dir = std::env::temp_dir().join(format!("authd-open-{}", std::process::id()));
        let missing_dir = msg(&format!("sqlite://{}/x.db?mode=rwc", dir.display()));
        assert!(missing_dir.contains("does not exist"), "{missing_dir}");
        std::fs::create_dir_all(&dir).expect("dir");
        let no_mode = msg(&format!("sqlite://{}/x.db", dir.display()));
        assert!(no_mode.contains("?mode=rwc"), "{no_mode}");
        assert!(precheck(&format!("sqlite://{}/x.db?mode=rwc", dir.display())).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
