//! The conformance fixtures for the Node and Python kits' tests: starts authd (the binary given
//! by `--authd`, or `AUTHD_BIN`, or the `authd` next to this program's directory) in the fixture
//! state, prints the fixtures as ONE line of JSON on stdout, and keeps authd running until its
//! standard input closes (or it is killed); then stops authd and removes its files.
//!
//! ```sh
//! cargo build --release --bin authd --example conformance
//! target/release/examples/conformance [--authd target/release/authd] [--out fixtures.json]
//! ```
// A test tool: a set-up that fails has nothing to hand out, so it stops there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::io::Read;
use std::path::PathBuf;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = arg("--authd")
        .or_else(|| std::env::var("AUTHD_BIN").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().expect("own path");
            me.parent()
                .and_then(|d| d.parent())
                .expect("a directory")
                .join("authd")
        });
    let (running, fixtures) = match fixtures::generate(&bin).await {
        Ok(made) => made,
        Err(e) => {
            eprintln!("conformance: {e}");
            std::process::exit(1);
        }
    };
    let line = serde_json::to_string(&fixtures).expect("json");
    if let Some(out) = arg("--out") {
        std::fs::write(&out, &line).expect("write --out");
    }
    println!("{line}");
    eprintln!(
        "conformance: {} cases; authd at {} until stdin closes",
        fixtures.cases.len(),
        fixtures.authd_url
    );
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(running);
}
