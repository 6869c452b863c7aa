//! The `gatewayz` command line: parse, then call the library.
#![allow(clippy::print_stdout)] // the CLI prints reports on stdout

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatewayz::config::{Config, ProviderSettings};

#[derive(Parser)]
#[command(name = "gatewayz", version, about = "An OpenAI-compatible LLM gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default). Without --config: the built-in default on loopback.
    Serve {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding `server.listen` (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a configuration file and print what it would run.
    CheckConfig {
        /// Configuration file (TOML).
        path: PathBuf,
    },
    /// Run a fast OpenAI-compatible mock upstream, for tests, demos and benchmarks.
    MockUpstream(gatewayz::mock::server::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        config: None,
        listen: None,
    });
    match command {
        Command::Serve { config, listen } => {
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Config::builtin(),
            };
            let config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("gatewayz: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = gatewayz::telemetry::init(&config.telemetry) {
                eprintln!("gatewayz: {e}");
                return ExitCode::from(2);
            }
            match gatewayz::app::run(config, listen) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "gatewayz failed");
                    eprintln!("gatewayz: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { path } => match Config::load(&path) {
            Ok(config) => {
                print!("{}", describe(&config));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatewayz: {e}");
                ExitCode::from(2)
            }
        },
        Command::MockUpstream(options) => {
            gatewayz::telemetry::init_logging(None);
            match actix_web::rt::System::new().block_on(gatewayz::mock::server::run(options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gatewayz mock-upstream: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// What `check-config` prints: everything but secrets.
fn describe(config: &Config) -> String {
    let mut out = String::from("configuration OK\n");
    out.push_str(&format!("listen: {}\n", config.server.listen));
    out.push_str("providers:\n");
    for (name, provider) in &config.providers {
        match provider.settings() {
            ProviderSettings::OpenAi(p) => out.push_str(&format!(
                "  {name}: openai {} (timeout {}, key {})\n",
                p.base_url,
                humantime::format_duration(p.timeout),
                if p.api_key.is_some() { "set" } else { "none" }
            )),
            ProviderSettings::Mock(_) => out.push_str(&format!("  {name}: mock (in-process)\n")),
        }
    }
    out.push_str("models:\n");
    for (id, model) in &config.models {
        out.push_str(&format!(
            "  {id} -> {} (USD/1M tokens: in {}, out {})\n",
            model.providers.join(", "),
            model.input_price_per_1m,
            model.output_price_per_1m
        ));
    }
    let names: Vec<_> = config.keys.iter().map(|k| k.name.as_str()).collect();
    out.push_str(&format!(
        "client keys: {}\n",
        if names.is_empty() {
            "none (auth off, loopback only)".to_string()
        } else {
            names.join(", ")
        }
    ));
    out
}
