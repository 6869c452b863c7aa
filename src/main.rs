//! The `gatewayz` command line: parse, then call the library.
#![allow(clippy::print_stdout)] // the CLI prints reports on stdout

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatewayz::config::Config;

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
        /// Log lines on stderr as `text` or `json`, overriding `[telemetry] log_format`.
        #[arg(long, value_enum)]
        log_format: Option<gatewayz::config::LogFormat>,
    },
    /// Validate a configuration file and print what it would run.
    CheckConfig {
        /// Configuration file (TOML).
        path: PathBuf,
    },
    /// Print spend and tokens from the usage ledger ([ledger] in the configuration).
    Usage {
        /// Configuration file (TOML) with a [ledger] table.
        #[arg(long)]
        config: PathBuf,
        /// Start: an RFC 3339 instant or a duration before now (7d, 12h). Default 30d.
        #[arg(long, default_value = "30d")]
        since: String,
        /// End: an RFC 3339 instant or a duration before now. Default now.
        #[arg(long)]
        until: Option<String>,
        /// Group by key, team, model, provider or api.
        #[arg(long, default_value = "key")]
        by: String,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Make, list and revoke client keys kept in the ledger's database (the admin API's).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run a fast OpenAI-compatible mock upstream, for tests, demos and benchmarks.
    MockUpstream(gatewayz::mock::server::Options),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key and print its secret (shown this once; the database keeps its digest).
    Create {
        /// Configuration file (TOML) with a [ledger] table.
        #[arg(long)]
        config: PathBuf,
        /// Who holds the key: letters, digits or - _ . @ : +.
        #[arg(long)]
        name: String,
        #[arg(long)]
        team: Option<String>,
        /// The model ids the key may use, comma-separated. Default: every model.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        #[arg(long)]
        rate_limit_rpm: Option<u64>,
        #[arg(long)]
        rate_limit_tpm: Option<u64>,
        #[arg(long)]
        max_parallel: Option<u64>,
        #[arg(long)]
        budget_usd: Option<f64>,
        /// "monthly" or whole hours ("1d", "30d").
        #[arg(long)]
        budget_period: Option<String>,
        #[arg(long)]
        soft_budget_usd: Option<f64>,
        /// RFC 3339 instant after which the key is refused.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List the keys in the database (never their secrets).
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Revoke a key: it stops working on every replica within `[admin] key_sync_interval`.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        name: String,
    },
}

/// Runs a `gatewayz keys` command; what it prints on stdout.
fn keys(command: KeysCommand) -> Result<String, String> {
    use gatewayz::ledger::keys::cli;
    let path = match &command {
        KeysCommand::Create { config, .. }
        | KeysCommand::List { config }
        | KeysCommand::Revoke { config, .. } => config.clone(),
    };
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match command {
        KeysCommand::Create {
            name,
            team,
            models,
            rate_limit_rpm,
            rate_limit_tpm,
            max_parallel,
            budget_usd,
            budget_period,
            soft_budget_usd,
            expires_at,
            ..
        } => {
            let budget_period = budget_period
                .map(|p| gatewayz::config::BudgetPeriod::parse(&p))
                .transpose()
                .map_err(|e| format!("--budget-period: {e}"))?;
            let expires = expires_at
                .map(|t| humantime::parse_rfc3339_weak(&t))
                .transpose()
                .map_err(|e| format!("--expires-at: {e} (an RFC 3339 instant)"))?;
            let policy = gatewayz::config::KeyPolicy {
                name,
                team,
                models,
                limits: gatewayz::config::Limits {
                    rpm: rate_limit_rpm,
                    tpm: rate_limit_tpm,
                    max_parallel,
                    budget_usd,
                    budget_period,
                    soft_budget_usd,
                },
                expires,
            };
            let secret = runtime.block_on(cli::create(&config, policy))?;
            eprintln!("gatewayz keys: key created; its secret is printed once, below");
            Ok(format!("{secret}\n"))
        }
        KeysCommand::List { .. } => runtime.block_on(cli::list(&config)),
        KeysCommand::Revoke { name, .. } => {
            runtime.block_on(cli::revoke(&config, &name))?;
            eprintln!("gatewayz keys: {name:?} revoked");
            Ok(String::new())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        config: None,
        listen: None,
        log_format: None,
    });
    match command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => {
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Config::builtin(),
            };
            let mut config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("gatewayz: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(format) = log_format {
                config.telemetry.log_format = format;
            }
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
                print!("{}", config.describe());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatewayz: {e}");
                ExitCode::from(2)
            }
        },
        Command::Usage {
            config,
            since,
            until,
            by,
            format,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("gatewayz: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gatewayz usage: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let report = runtime.block_on(gatewayz::ledger::report::print(
                &config,
                &since,
                until.as_deref(),
                &by,
                &format,
            ));
            match report {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatewayz usage: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Keys { command } => match keys(command) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatewayz keys: {e}");
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
