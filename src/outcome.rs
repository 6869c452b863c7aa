//! What the request path reports, and to whom.
//!
//! The router describes each provider attempt and each finished completion as a plain
//! record and hands it to an [`Observer`]. The observer's methods must return at once: the
//! production observer updates OpenTelemetry meters and pushes events into the actors'
//! outbox (batched, fire-and-forget); tests plug in observers that just collect the records.

use std::time::Duration;

use crate::providers::Usage;

/// How one attempt at one provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The provider answered (a JSON body, or a stream's first chunk).
    Success,
    /// Connect error, 429, 5xx, malformed answer, broken connection.
    Error,
    /// No answer within the provider's timeout.
    Timeout,
    /// The upstream refused the request itself (a 4xx other than 408/429): not the provider's
    /// fault, passed through to the client.
    Rejected,
}

impl AttemptResult {
    /// The `outcome` label of `gatewayz_provider_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Rejected => "rejected",
        }
    }
}

/// One attempt at one provider.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    /// Index of the provider in the router's table.
    pub provider: usize,
    pub provider_name: &'a str,
    /// Index of the model in the router's table.
    pub model: usize,
    pub model_id: &'a str,
    pub result: AttemptResult,
    /// Short error kind (`connect`, `timeout`, `server_error`, ...) when it failed.
    pub error_kind: Option<&'static str>,
    /// Upstream HTTP status, when one came back.
    pub status: Option<u16>,
    /// Time until the answer (JSON) or the first chunk (stream) arrived, or the failure.
    pub latency: Duration,
    /// Another provider is tried next because of this failure.
    pub failed_over: bool,
}

/// A client request that reached a provider, when it is over (for a stream: when the stream
/// ends or the client goes away).
#[derive(Debug, Clone)]
pub struct CompletionRecord<'a> {
    pub provider: usize,
    pub provider_name: &'a str,
    pub model: usize,
    pub model_id: &'a str,
    pub stream: bool,
    /// Token counts, when the upstream reported them.
    pub usage: Option<Usage>,
    /// From the request's arrival to its end.
    pub duration: Duration,
    /// From the request's arrival to the first content chunk (streams only).
    pub time_to_first_token: Option<Duration>,
    /// Time spent waiting on upstreams, every attempt included.
    pub upstream_wait: Duration,
    /// `success`, or why it did not complete (`client_disconnected`, `upstream_error`, or the
    /// upstream status for a passed-through rejection).
    pub status: &'static str,
}

/// Receives records from the request path. Implementations must not block or await.
pub trait Observer: Send + Sync + 'static {
    fn attempt(&self, record: &AttemptRecord<'_>);
    fn completion(&self, record: &CompletionRecord<'_>);
}

/// An observer that ignores everything (tests, tools).
pub struct NoopObserver;

impl Observer for NoopObserver {
    fn attempt(&self, _: &AttemptRecord<'_>) {}
    fn completion(&self, _: &CompletionRecord<'_>) {}
}
