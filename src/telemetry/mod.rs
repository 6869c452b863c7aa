//! Logs, metrics and traces.
//!
//! Metrics: [`catalogue`] names every family once; [`metrics`] builds the OpenTelemetry
//! meters and the Prometheus registry they export to; [`http`] measures the HTTP server.
//!
//! Logging goes through `tracing`; the subscriber is installed once by the binary, with a
//! filter from `RUST_LOG` or `telemetry.log_level`, writing human-readable lines to stderr.
//! Traces are not `tracing` spans: the gateway's two spans (the request's, each attempt's)
//! are its own ([`traces::span`]), recorded straight into their OTLP encoding for the
//! [`otlp`] pipeline, so the log level never decides which spans exist and library spans
//! never reach the exporter. The log filter lets events only through (to stderr and, with
//! `[telemetry.loki]`, to Loki — [`loki`]); a line written while a request is handled
//! carries its span's ids ([`traces::scope`]). The Loki shipper actor is started and flushed
//! by `app.rs` ([`take_loki`]), which owns the shutdown order. The HTTP library's
//! per-connection errors are counted and summarized instead of logged one by one
//! ([`protocol_errors`]).
//!
//! Entry points: [`init`] (the gateway), [`init_logging`] (tools: logs only), [`take_loki`]
//! (the shipper to start in the actor system), [`shutdown`] (after the HTTP server stopped:
//! flushes the trace exporter within what is left of the shutdown budget).

pub mod cadence;
pub mod line;
pub mod loki;
pub mod metrics;
pub mod reach;
pub mod traces;
pub(crate) mod wire;

use metrics::{log_stats, protocol_errors};
use traces::otlp;

use std::sync::Mutex;

use tracing_subscriber::filter::{self, FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};

/// Quiets OpenTelemetry's own logs unless `RUST_LOG` / `log_level` names them: the SDK's
/// start-up chatter at INFO (export failures the gateway reports itself, at most once per
/// interval; see [`otlp::report`]).
const OTEL_DIRECTIVES: [&str; 1] = ["opentelemetry=warn"];

/// The web framework's start-up lines (workers started, services bound) are for debugging: the
/// gateway's banner says what runs.
const ACTIX_SERVER_DIRECTIVES: [&str; 1] = ["actix_server=warn"];

/// The trace pipeline, kept for [`shutdown`].
static PIPELINE: Mutex<Option<otlp::Pipeline>> = Mutex::new(None);

/// The Loki shipper built by [`init`], until `app` takes it ([`take_loki`]).
static LOKI: Mutex<Option<loki::LokiHandle>> = Mutex::new(None);

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Otlp(#[from] otlp::OtlpError),
    #[error(transparent)]
    Loki(#[from] loki::LokiError),
}

/// Installs the global subscriber: logs to stderr, and spans to the trace pipeline built from
/// `[telemetry.otlp]` and the `OTEL_*` variables (see [`otlp::Pipeline::build`]), and events
/// to Loki with `[telemetry.loki]` (the shipper waits in [`take_loki`]).
pub fn init(config: &TelemetryConfig) -> Result<(), InitError> {
    let pipeline = otlp::Pipeline::build(config.otlp.as_ref())?;
    let (loki_layer, loki_handle) = match &config.loki {
        Some(c) => {
            let (layer, handle) = loki::pipeline(c, log_stats::global())?;
            (Some(layer), Some(handle))
        }
        None => (None, None),
    };
    // Stderr and Loki share one events-only filter: each per-layer filter looks every span
    // (the libraries') up on every enter and exit, so one filter for both halves that cost.
    // The HTTP library's per-connection errors are counted and kept out of both.
    let (filter, named) = log_filter(config.log_level.as_deref());
    let logs = protocol_errors::Quieted::new(
        fmt_layer(config.log_format).and_then(loki_layer.unwrap_or_else(loki::LokiLayer::disabled)),
        named.actix_http,
    )
    .with_filter(filter.and(events_only()));
    let installed = tracing_subscriber::registry().with(logs).try_init().is_ok();
    traces::span::install(pipeline.tracer());
    if installed {
        if let Ok(mut slot) = LOKI.lock() {
            *slot = loki_handle;
        }
    }
    match &pipeline.target {
        Some(target) if installed => tracing::info!(%target, "exporting traces over OTLP"),
        _ => tracing::debug!("no trace exporter configured"),
    }
    if let Ok(mut slot) = PIPELINE.lock() {
        if let Some(previous) = slot.replace(pipeline) {
            previous.shutdown(std::time::Duration::from_secs(5));
        }
    }
    Ok(())
}

/// Installs a logs-only subscriber (tools such as `mock-upstream`). `level` is the configured
/// filter (default `info`).
pub fn init_logging(level: Option<&str>) {
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(log_layer(level))
        .try_init();
}

/// The Loki shipper [`init`] built, if `[telemetry.loki]` is configured (once).
pub fn take_loki() -> Option<loki::LokiHandle> {
    LOKI.lock().ok().and_then(|mut slot| slot.take())
}

/// Flushes and stops the trace exporter. Blocking (at most about `limit`): call it from
/// synchronous code once the HTTP server has stopped.
pub fn shutdown(limit: std::time::Duration) {
    let pipeline = PIPELINE.lock().ok().and_then(|mut slot| slot.take());
    if let Some(pipeline) = pipeline {
        pipeline.shutdown(limit);
    }
}

/// What traces are exported to (protocol and endpoint, no credentials), when they are.
pub fn traces_target() -> Option<String> {
    PIPELINE
        .lock()
        .ok()
        .and_then(|slot| slot.as_ref().and_then(|p| p.target.clone()))
}

/// Whether spans are exported (then [`shutdown`] has something to flush).
pub fn traces_exported() -> bool {
    PIPELINE
        .lock()
        .is_ok_and(|slot| slot.as_ref().is_some_and(|p| p.target.is_some()))
}

fn log_layer<S>(level: Option<&str>) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let (filter, named) = log_filter(level);
    protocol_errors::Quieted::new(fmt_layer(LogFormat::Text), named.actix_http)
        .with_filter(filter.and(events_only()))
}

/// Lines on stderr: human-readable, or one JSON object each (`log_format = "json"`). Its
/// filter lets events only through: a span enabled for this layer would have its fields
/// formatted into a string at creation, on every request, for a prefix nobody greps for (the
/// request's trace id goes to Loki with each line, and the access line names it).
fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true);
    match format {
        LogFormat::Text if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            Box::new(layer.with_ansi(true))
        }
        // The same line without colours, written without the formatting machinery.
        LogFormat::Text => Box::new(layer.with_ansi(false).event_format(line::Plain::default())),
        // No span list: events only reach this layer, and the access line carries its ids.
        LogFormat::Json => Box::new(layer.json().with_current_span(false).with_span_list(false)),
    }
}

/// Lets events through, never spans. Its level hint is "everything", so combined with `and`
/// the other filter's hint stands (a hint-less filter would raise the global maximum level to
/// TRACE, and every library's trace! call site would be checked again at run time).
fn events_only() -> filter::FilterFn<fn(&tracing::Metadata<'_>) -> bool> {
    filter::FilterFn::new(is_event as fn(&tracing::Metadata<'_>) -> bool)
        .with_max_level_hint(LevelFilter::TRACE)
}

fn is_event(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_event()
}

/// Which quieted targets the configured log filter names itself.
struct Named {
    actix_http: bool,
}

/// The log filter: `RUST_LOG`, else `level`, else `info`; OpenTelemetry quieted and the HTTP
/// library's per-connection errors let through to be counted, unless named. Stderr and Loki
/// share it.
fn log_filter(level: Option<&str>) -> (EnvFilter, Named) {
    let configured = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok())
        .or_else(|| level.map(str::to_owned))
        .unwrap_or_else(|| "info".into());
    let mut filter = EnvFilter::try_new(&configured).unwrap_or_else(|_| EnvFilter::new("info"));
    let quieted = [
        ("opentelemetry", &OTEL_DIRECTIVES[..]),
        ("actix_http", &protocol_errors::DIRECTIVES[..]),
        ("actix_server", &ACTIX_SERVER_DIRECTIVES[..]),
    ];
    for (named, directives) in quieted {
        if configured.contains(named) {
            continue;
        }
        for directive in directives {
            if let Ok(d) = directive.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    let named = Named {
        actix_http: configured.contains("actix_http"),
    };
    (filter, named)
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::filter::{FilterExt, LevelFilter};
    use tracing_subscriber::layer::Filter;
    use tracing_subscriber::Registry;

    /// The combined filter keeps a level hint, so the global maximum level stays at the
    /// configured one (INFO here) instead of TRACE.
    #[test]
    fn combined_filters_keep_their_level_hint() {
        let logs = super::log_filter(Some("info")).0.and(super::events_only());
        assert_eq!(
            Filter::<Registry>::max_level_hint(&logs),
            Some(LevelFilter::INFO)
        );
    }

    #[test]
    fn quieting_directives_parse() {
        for d in super::OTEL_DIRECTIVES
            .iter()
            .chain(&super::protocol_errors::DIRECTIVES)
        {
            assert!(
                d.parse::<tracing_subscriber::filter::Directive>().is_ok(),
                "{d}"
            );
        }
    }
}
