//! HTTP protocol errors on client connections: counted, summarized, never logged one by one.
//!
//! actix-http logs one ERROR (`stream error: ...`, target `actix_http::h1::dispatcher`) for
//! every connection it closes on a malformed request, a reset or a read timeout — so one
//! unauthenticated client sending garbage can write thousands of lines a second into stderr and
//! Loki. The log filter lets those events through at WARN and above whatever the configured
//! level (see [`DIRECTIVES`]), and [`Quieted`], wrapped around the log layers inside their one
//! shared filter, counts each and keeps it from stderr and Loki: no formatting, no allocation,
//! no lock, and no per-layer filter of its own (each costs a span lookup on every enter and
//! exit of every request span). Naming `actix_http` in `RUST_LOG` / `log_level` lets them be
//! logged again. The count is exported as `gatewayz_http_protocol_errors_total`, and
//! [`report_every`] (started by `app.rs`) logs at most one WARN line per interval with the count
//! since the last one; [`Summary`] is that decision, pure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The HTTP library's connection dispatchers: where its per-connection errors are logged.
pub const TARGETS: [&str; 2] = ["actix_http::h1", "actix_http::h2"];

/// Log-filter directives that let [`TARGETS`] through to [`Quieted`] (to be counted) whatever
/// the configured level, unless the configured filter names `actix_http` itself.
pub const DIRECTIVES: [&str; 2] = ["actix_http::h1=warn", "actix_http::h2=warn"];

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

/// Whether an event is one of the HTTP library's per-connection errors.
fn is_protocol_error(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::WARN && TARGETS.iter().any(|t| meta.target().starts_with(t))
}

/// The log layers (stderr, Loki) with the HTTP library's per-connection errors counted into
/// [`global`] and, unless `pass`, kept from them. Every other call goes to the inner layer.
pub struct Quieted<L> {
    inner: L,
    pass: bool,
}

impl<L> Quieted<L> {
    /// `pass`: log them too (the configured filter names `actix_http`).
    pub fn new(inner: L, pass: bool) -> Self {
        Self { inner, pass }
    }
}

impl<S, L> Layer<S> for Quieted<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(meta)
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        self.inner.enabled(meta, cx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, cx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        self.inner.on_record(id, values, cx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, cx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, cx);
    }

    fn event_enabled(&self, event: &Event<'_>, cx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, cx)
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        if is_protocol_error(event.metadata()) {
            global().count();
            if !self.pass {
                return;
            }
        }
        self.inner.on_event(event, cx);
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        self.inner.on_enter(id, cx);
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        self.inner.on_exit(id, cx);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        self.inner.on_close(id, cx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, cx: Context<'_, S>) {
        self.inner.on_id_change(old, new, cx);
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

    /// Collects the targets of the events it sees.
    #[derive(Clone, Default)]
    struct Seen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(event.metadata().target().to_owned());
            }
        }
    }

    fn emit() {
        tracing::error!(target: "actix_http::h1::dispatcher", "stream error: bad request");
        tracing::warn!(target: "actix_http::h2::dispatcher", "h2 error");
        tracing::debug!(target: "actix_http::h1::dispatcher", "not an error");
        tracing::error!(target: "gatewayz::app", "not the HTTP library");
        tracing::error!(target: "actix_http_other", "not a dispatcher");
    }

    /// The dispatcher errors are counted and kept from the log layers; everything else goes
    /// through; with `pass` they are logged too, and still counted.
    #[test]
    fn counts_dispatcher_errors_and_keeps_them_from_the_logs() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(Quieted::new(seen.clone(), false));
        let before = global().total();
        tracing::subscriber::with_default(subscriber, emit);
        assert_eq!(global().total() - before, 2);
        let logged = seen.0.lock().unwrap().clone();
        assert_eq!(
            logged,
            [
                "actix_http::h1::dispatcher",
                "gatewayz::app",
                "actix_http_other"
            ]
        );
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(Quieted::new(seen.clone(), true));
        let before = global().total();
        tracing::subscriber::with_default(subscriber, emit);
        assert_eq!(global().total() - before, 2);
        assert_eq!(seen.0.lock().unwrap().len(), 5);
    }
}
