//! Logs, metrics and traces.
//!
//! Metrics: [`catalogue`] names every family once; [`metrics`] builds the OpenTelemetry
//! meters and the Prometheus registry they export to; [`http`] measures the HTTP server.
//!
//! Logging goes through `tracing`; the subscriber is installed once by the binary, with a
//! filter from `RUST_LOG` or `telemetry.log_level`, writing human-readable lines to stderr.

pub mod access;
pub mod catalogue;
pub mod docs;
pub mod exposition;
pub mod http;
pub mod log_stats;
pub mod metrics;
mod observables;
mod process;
pub mod summary;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is the configured filter (default `info`).
pub fn init_logging(level: Option<&str>) {
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
        .try_init();
}
