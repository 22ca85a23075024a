use std::process::ExitCode;

use clap::Parser;
use lance_billing::cli::{Cli, run};
use lance_billing::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    // Read `.env` before the logger so RUST_LOG may come from it.
    let dotenv = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(err) = dotenv
        .as_ref()
        .map(|_| ())
        .or_else(|e| if e.not_found() { Ok(()) } else { Err(e) })
    {
        log::warn!("ignoring .env: {err}");
    }
    let cli = Cli::parse();
    match run(cli, &Env::from_process()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
