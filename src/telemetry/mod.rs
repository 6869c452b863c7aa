//! Logs, metrics and traces.
//!
//! Logging goes through `tracing`; the subscriber is installed once by the binary, with a
//! filter from `RUST_LOG` or `telemetry.log_level`, writing human-readable lines to stderr
//! and, with `[telemetry.loki]`, shipping every event to Loki ([`loki`]). The Loki layer is
//! installed here, before anything logs; its shipper actor is started and flushed by
//! `app.rs`, which owns the shutdown order.

pub mod log_stats;
pub mod loki;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is the configured filter (default `info`).
pub fn init_logging(level: Option<&str>) {
    install(level, None);
}

/// Installs the global subscriber for `config`: stderr always, Loki when configured. Returns
/// the Loki shipper to start inside the actor system (`app::run_with`).
pub fn init_logging_with(
    config: &crate::config::TelemetryConfig,
) -> Result<Option<loki::LokiHandle>, loki::LokiError> {
    let Some(loki_config) = &config.loki else {
        install(config.log_level.as_deref(), None);
        return Ok(None);
    };
    let (layer, handle) = loki::pipeline(loki_config, log_stats::global())?;
    install(config.log_level.as_deref(), Some(layer));
    Ok(Some(handle))
}

fn install(level: Option<&str>, loki: Option<loki::LokiLayer>) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(loki)
        .try_init();
}
