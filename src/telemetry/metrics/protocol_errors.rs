//! HTTP protocol errors on client connections: counted, summarized, never logged one by one.
//!
//! actix-http logs one ERROR (`stream error: ...`, target `actix_http::h1::dispatcher`) for
//! every connection it closes on a malformed request, a reset or a read timeout — so one
//! unauthenticated client sending garbage can write thousands of lines a second into stderr and
//! Loki. The log filter drops those events (see [`DIRECTIVES`]; naming `actix_http` in
//! `RUST_LOG` / `log_level` brings them back), and [`CountLayer`], a layer with its own filter,
//! sees them first and only bumps an atomic: no formatting, no allocation, no lock. The count
//! is exported as `gatewayz_http_protocol_errors_total`, and [`report_every`] (started by
//! `app.rs`) logs at most one WARN line per interval with the count since the last one;
//! [`Summary`] is that decision, pure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Filter, Layer};

/// The HTTP library's connection dispatchers: where its per-connection errors are logged.
pub const TARGETS: [&str; 2] = ["actix_http::h1", "actix_http::h2"];

/// Log-filter directives that silence [`TARGETS`] unless the configured filter names
/// `actix_http`.
pub const DIRECTIVES: [&str; 2] = ["actix_http::h1=off", "actix_http::h2=off"];

/// How often at most the summary line is logged.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Protocol errors seen since start-up (the process's; see [`global`]).
#[derive(Debug, Default)]
pub struct ProtocolErrors {
    total: AtomicU64,
}

impl ProtocolErrors {
    pub fn count(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// The process's counter: [`CountLayer`] writes it, the exporter and [`report_every`] read it.
pub fn global() -> &'static ProtocolErrors {
    static ERRORS: ProtocolErrors = ProtocolErrors {
        total: AtomicU64::new(0),
    };
    &ERRORS
}

/// Counts WARN and ERROR events of [`TARGETS`] into [`global`]; ignores everything else.
pub struct CountLayer;

impl CountLayer {
    /// The layer with its own filter, so it sees these events even though the log filter
    /// drops them.
    pub fn filtered<S>() -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let targets = TARGETS.iter().fold(Targets::new(), |t, target| {
            t.with_target(*target, Level::WARN)
        });
        Self.with_filter(EventsOf(targets))
    }
}

impl<S: tracing::Subscriber> Layer<S> for CountLayer {
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        global().count();
    }
}

/// [`Targets`], for events only (a span of these targets is not an error).
struct EventsOf(Targets);

impl<S> Filter<S> for EventsOf {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.is_event() && self.0.would_enable(meta.target(), meta.level())
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.is_event() && self.0.would_enable(meta.target(), meta.level()) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }
}

/// What the last summary covered; decides the next one.
#[derive(Debug, Default)]
pub struct Summary {
    reported: u64,
}

impl Summary {
    /// The errors since the last report, when there were any (then they count as reported).
    pub fn tick(&mut self, total: u64) -> Option<u64> {
        let new = total.saturating_sub(self.reported);
        self.reported = total.max(self.reported);
        (new > 0).then_some(new)
    }
}

/// Every `interval`, logs one WARN line with the protocol errors since the previous line, if
/// any. Runs until its runtime stops.
pub async fn report_every(interval: Duration) {
    let mut summary = Summary::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some(count) = summary.tick(global().total()) {
            tracing::warn!(
                count,
                interval_seconds = interval.as_secs(),
                "HTTP protocol errors on client connections (malformed requests, resets, \
                 timeouts) since the last report; see gatewayz_http_protocol_errors_total"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn summary_reports_each_error_once_and_stays_quiet_without_new_ones() {
        let mut summary = Summary::default();
        for (total, expected) in [
            (0, None),
            (3, Some(3)),
            (3, None),
            (500, Some(497)),
            (500, None),
        ] {
            assert_eq!(summary.tick(total), expected, "total {total}");
        }
    }

    /// The layer counts the HTTP library's dispatcher errors and nothing else, whatever the
    /// log filter keeps.
    #[test]
    fn counts_dispatcher_errors_only() {
        let subscriber = tracing_subscriber::registry().with(CountLayer::filtered());
        let before = global().total();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: bad request");
            tracing::warn!(target: "actix_http::h2::dispatcher", "h2 error");
            tracing::debug!(target: "actix_http::h1::dispatcher", "not an error");
            tracing::error!(target: "gatewayz::app", "not the HTTP library");
            tracing::error!(target: "actix_http_other", "not a dispatcher");
        });
        assert_eq!(global().total() - before, 2);
    }
}
