//! What the request path reports, and to whom.
//!
//! The router describes each provider attempt as an [`AttemptRecord`] and each client
//! request's end as a [`CompletionRecord`], and hands them to an [`Reporter`]. A request's end
//! is recorded by exactly one value, the [`Ending`] guard: the router creates it when routing
//! starts, sets what it learns (provider, usage, how it ended), hands it to the stream relay
//! when a stream begins, and the guard records on drop — so a request cut by the gateway's
//! deadline or abandoned by its client is counted too, once. The reporter's methods must
//! return at once: the production reporter updates OpenTelemetry meters and pushes events into
//! the actors' outbox (batched, fire-and-forget); tests plug in observers that collect. A
//! request admitted against its key's limits hands the guard of its admission to the
//! `Ending` ([`Ending::settle_with`]): it is told the record right after the reporter, so
//! the real tokens and cost are settled when the request ends, never awaited by the client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::board::{ModelId, ProviderId};
use crate::config::Api;
use crate::providers::{FailureReason, Usage};

/// How one attempt at one provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The provider answered: a whole JSON body, or a stream that ended with its end marker
    /// (or that the client left while it was flowing).
    Success,
    /// The provider let the request down: connect error, 5xx, refused credentials, malformed
    /// or oversized answer, a stream that broke.
    Error,
    /// No answer within the provider's timeout, or a stream idle past its limit.
    Timeout,
    /// The provider asked us to slow down (429): skipped until its `Retry-After`, and not an
    /// outage (no breaker or health verdict).
    RateLimited,
    /// The upstream refused the request itself (a 4xx about it): not the provider's fault,
    /// passed through to the client.
    Rejected,
}

impl AttemptResult {
    /// The `outcome` label of `gatewayz_provider_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::Rejected => "rejected",
        }
    }

    /// The breaker's, health's and anomaly detector's verdict: `Some(true)` the provider
    /// served, `Some(false)` it failed, `None` neither (rate limited, or the request's fault).
    pub fn verdict(self) -> Option<bool> {
        match self {
            Self::Success => Some(true),
            Self::Error | Self::Timeout => Some(false),
            Self::RateLimited | Self::Rejected => None,
        }
    }
}

/// One attempt at one provider. A stream's attempt is reported when the stream is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptRecord {
    pub provider: ProviderId,
    pub model: ModelId,
    pub result: AttemptResult,
    /// Why it failed (`None` on success).
    pub reason: Option<FailureReason>,
    /// Time until the answer (JSON), the first content (stream), or the failure.
    pub latency: Duration,
}

/// How a client request ended: the `status` label of `model_inference_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEnd {
    /// A provider answered (a JSON body, or a stream that completed).
    Served,
    /// A provider refused the request itself; its answer went to the client as it came.
    PassedThrough,
    /// Every attempt failed on the provider side (or a started stream broke).
    Failed,
    /// No provider could take it: every breaker open, nothing attempted.
    NoProvider,
    /// Every provider left was rate limiting: the client got 429 with `Retry-After`.
    RateLimited,
    /// The provider timed out, or the gateway's own request deadline passed.
    TimedOut,
    /// The client went away before the end.
    ClientGone,
}

impl RequestEnd {
    /// Every label value, for documentation and tests.
    pub const LABELS: [&'static str; 7] = [
        "success",
        "rejected",
        "upstream_error",
        "no_provider",
        "rate_limited",
        "timeout",
        "client_disconnected",
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Served => "success",
            Self::PassedThrough => "rejected",
            Self::Failed => "upstream_error",
            Self::NoProvider => "no_provider",
            Self::RateLimited => "rate_limited",
            Self::TimedOut => "timeout",
            Self::ClientGone => "client_disconnected",
        }
    }

    /// Whether the model was available for this request (24 h uptime): `None` when the end
    /// says nothing about the model (the request's fault, the client's, a rate limit).
    pub fn available(self) -> Option<bool> {
        match self {
            Self::Served => Some(true),
            Self::Failed | Self::NoProvider | Self::TimedOut => Some(false),
            Self::PassedThrough | Self::RateLimited | Self::ClientGone => None,
        }
    }
}

/// A client request for a configured model, when it is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompletionRecord {
    /// The provider that served it, or the last one tried; `None` when none was.
    pub provider: Option<ProviderId>,
    pub model: ModelId,
    /// The API the client called (the `api` label).
    pub api: Api,
    pub stream: bool,
    pub end: RequestEnd,
    /// A provider answered (a JSON body, or a stream that started): its usage, or the lack
    /// of it, is priced.
    pub answered: bool,
    /// Token counts, when the upstream reported them.
    pub usage: Option<Usage>,
    /// From the request's arrival to its end.
    pub duration: Duration,
    /// From the request's arrival to the first content chunk (streams only).
    pub time_to_first_token: Option<Duration>,
    /// Time spent waiting on upstreams, every attempt included.
    pub upstream_wait: Duration,
}

/// Receives records from the request path. Implementations must not block or await.
pub trait Reporter: Send + Sync + 'static {
    fn attempt(&self, record: &AttemptRecord);
    /// The router moves from a failed provider to the next one (counted when the next
    /// attempt starts, so a failover is never predicted).
    fn failover(&self, from: ProviderId, model: ModelId);
    fn completion(&self, record: &CompletionRecord);
}

/// Told how a request ended, once, right after the reporter: the key's limits settle the
/// request's real tokens and cost against what its admission reserved. Must not block.
pub trait Settle: Send {
    fn settle(self: Box<Self>, record: &CompletionRecord);
}

/// An reporter that ignores everything (tests, tools).
pub struct NoopReporter;

impl Reporter for NoopReporter {
    fn attempt(&self, _: &AttemptRecord) {}
    fn failover(&self, _: ProviderId, _: ModelId) {}
    fn completion(&self, _: &CompletionRecord) {}
}

/// Records a request's end exactly once: when dropped, with the end set last
/// ([`RequestEnd::ClientGone`] when none was: the future or stream holding it was dropped).
pub struct Ending {
    /// `None` once handed on with [`Ending::hand_off`].
    inner: Option<Pending>,
}

struct Pending {
    reporter: Arc<dyn Reporter>,
    record: CompletionRecord,
    started: Instant,
    end: Option<RequestEnd>,
    settle: Option<Box<dyn Settle>>,
}

impl Ending {
    /// A request to `api` for `model` that arrived at `started`.
    pub fn new(
        reporter: Arc<dyn Reporter>,
        api: Api,
        model: ModelId,
        stream: bool,
        started: Instant,
    ) -> Self {
        Self {
            inner: Some(Pending {
                reporter,
                record: CompletionRecord {
                    provider: None,
                    model,
                    api,
                    stream,
                    end: RequestEnd::ClientGone,
                    answered: false,
                    usage: None,
                    duration: Duration::ZERO,
                    time_to_first_token: None,
                    upstream_wait: Duration::ZERO,
                },
                started,
                end: None,
                settle: None,
            }),
        }
    }

    /// Tells `settle` the record when the request ends (after the reporter).
    pub fn settle_with(&mut self, settle: Box<dyn Settle>) {
        if let Some(p) = self.pending() {
            p.settle = Some(settle);
        }
    }

    fn pending(&mut self) -> Option<&mut Pending> {
        self.inner.as_mut()
    }

    /// The provider tried last (the one that served, once it did).
    pub fn provider(&mut self, provider: ProviderId) {
        if let Some(p) = self.pending() {
            p.record.provider = Some(provider);
        }
    }

    pub fn add_upstream_wait(&mut self, wait: Duration) {
        if let Some(p) = self.pending() {
            p.record.upstream_wait += wait;
        }
    }

    pub fn upstream_wait(&self) -> Duration {
        self.inner
            .as_ref()
            .map_or(Duration::ZERO, |p| p.record.upstream_wait)
    }

    /// The provider answered, with this usage (if it reported any).
    pub fn answered(&mut self, usage: Option<Usage>) {
        if let Some(p) = self.pending() {
            p.record.answered = true;
            p.record.usage = usage;
        }
    }

    pub fn first_token(&mut self, at: Duration) {
        if let Some(p) = self.pending() {
            p.record.time_to_first_token.get_or_insert(at);
        }
    }

    /// When the request arrived.
    pub fn started(&self) -> Option<Instant> {
        self.inner.as_ref().map(|p| p.started)
    }

    /// How the request ended (the last call wins; recorded on drop).
    pub fn end(&mut self, end: RequestEnd) {
        if let Some(p) = self.pending() {
            p.end = Some(end);
        }
    }

    /// Moves the duty to record into a new guard (the stream relay's), leaving this one
    /// disarmed.
    pub fn hand_off(&mut self) -> Self {
        Self {
            inner: self.inner.take(),
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(Pending {
            reporter,
            mut record,
            started,
            end,
            settle,
        }) = self.inner.take()
        {
            record.end = end.unwrap_or(RequestEnd::ClientGone);
            record.duration = started.elapsed();
            reporter.completion(&record);
            if let Some(settle) = settle {
                settle.settle(&record);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<CompletionRecord>>);

    impl Reporter for Collect {
        fn attempt(&self, _: &AttemptRecord) {}
        fn failover(&self, _: ProviderId, _: ModelId) {}
        fn completion(&self, r: &CompletionRecord) {
            self.0.lock().unwrap().push(*r);
        }
    }

    #[test]
    fn an_ending_records_once_with_the_last_end_set() {
        let seen = Arc::new(Collect::default());
        let mut ending = Ending::new(
            seen.clone(),
            Api::Embeddings,
            ModelId::from_index(3),
            false,
            Instant::now(),
        );
        ending.provider(ProviderId::from_index(1));
        ending.end(RequestEnd::Failed);
        ending.end(RequestEnd::Served);
        let mut relay = ending.hand_off();
        drop(ending);
        assert!(
            seen.0.lock().unwrap().is_empty(),
            "a handed-off guard is silent"
        );
        relay.add_upstream_wait(Duration::from_millis(5));
        drop(relay);
        let records = seen.0.lock().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].end, RequestEnd::Served);
        assert_eq!(records[0].provider, Some(ProviderId::from_index(1)));
        assert_eq!(records[0].model, ModelId::from_index(3));
        assert_eq!(records[0].api, Api::Embeddings);
        assert_eq!(records[0].upstream_wait, Duration::from_millis(5));
    }

    struct Told(Arc<Mutex<Vec<RequestEnd>>>);

    impl Settle for Told {
        fn settle(self: Box<Self>, record: &CompletionRecord) {
            self.0.lock().unwrap().push(record.end);
        }
    }

    #[test]
    fn the_settlement_is_told_once_after_a_hand_off() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let mut ending = Ending::new(
            Arc::new(NoopReporter),
            Api::Chat,
            ModelId::from_index(0),
            true,
            Instant::now(),
        );
        ending.settle_with(Box::new(Told(told.clone())));
        let mut relay = ending.hand_off();
        drop(ending);
        assert!(told.lock().unwrap().is_empty());
        relay.end(RequestEnd::Served);
        drop(relay);
        assert_eq!(*told.lock().unwrap(), [RequestEnd::Served]);
    }

    #[test]
    fn an_ending_dropped_without_an_end_is_a_client_gone() {
        let seen = Arc::new(Collect::default());
        drop(Ending::new(
            seen.clone(),
            Api::Chat,
            ModelId::from_index(0),
            true,
            Instant::now(),
        ));
        assert_eq!(seen.0.lock().unwrap()[0].end, RequestEnd::ClientGone);
        assert_eq!(seen.0.lock().unwrap()[0].provider, None);
    }

    #[test]
    fn labels_come_from_one_list() {
        let all = [
            RequestEnd::Served,
            RequestEnd::PassedThrough,
            RequestEnd::Failed,
            RequestEnd::NoProvider,
            RequestEnd::RateLimited,
            RequestEnd::TimedOut,
            RequestEnd::ClientGone,
        ];
        let labels: Vec<_> = all.iter().map(|e| e.label()).collect();
        assert_eq!(labels, RequestEnd::LABELS);
    }
}
