//! `hamster`: the production daemon and its tools.
//!
//! Today: `hamster version`. The S3 server (`hamster server`), the cluster commands and
//! the admin commands arrive with their issues; until then they are refused by name
//! rather than half-working.

use std::process::ExitCode;

const USAGE: &str = "usage: hamster <command>

commands:
  version    print version, git commit and build date
  help       print this help";

fn version_line() -> String {
    format!(
        "hamster {} (commit {}, built {})",
        env!("CARGO_PKG_VERSION"),
        env!("HAMSTER_GIT_COMMIT"),
        env!("HAMSTER_BUILD_DATE")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") | Some("-V") => {
            println!("{}", version_line());
            ExitCode::SUCCESS
        }
        Some("help") | Some("--help") | Some("-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("hamster: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
