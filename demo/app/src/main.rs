//! `demo-app`: the workload the demo deploys. See the library docs; the
//! command line is [`demo_app::cli::Cli`], shared with `labs app`.

use clap::Parser;

/// The workbook's demo workload: a tiny HTTP service that reports its
/// version and pod name (and the helper programs its pods need).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Main {
    #[command(flatten)]
    cli: demo_app::cli::Cli,
}

#[tokio::main]
async fn main() {
    let cli = Main::parse().cli;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Logs go to stderr (stdout is `get`'s answer), without colour codes
        // when they end up in a file, as `kubectl logs` shows them.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(err) = demo_app::cli::run(cli).await {
        // One readable line, not a backtrace.
        eprintln!("demo-app: {err:#}");
        std::process::exit(1);
    }
}
