//! `authd`: parse the command line, set up logging, run.
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Every argon2 hash allocates a 19 MiB block. glibc serves the first from `mmap`, then raises
/// its dynamic mmap threshold past 19 MiB, so later blocks come from per-thread heaps that never
/// shrink: resident memory ratchets up by ~20 MB per hashing thread and fragment (368 MB after
/// 40 logins, measured). A fixed threshold keeps large blocks on `mmap`, returned on free.
fn tame_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called once, before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> std::process::ExitCode {
    tame_the_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("authd: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    use std::io::IsTerminal;
    let cli = authd::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if cli.log_format == authd::cli::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
    match authd::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("authd: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
