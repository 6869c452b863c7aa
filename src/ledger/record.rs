//! One usage record: what a request that reached the router used, and how it ended.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A finished request, as the ledger keeps it. Names only (key, team, model, provider), never
/// a secret: the key is its configured name.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// The record's own id (128 random bits): a batch written twice after a lost
    /// acknowledgement inserts each record once.
    pub id: u128,
    /// When the request ended, Unix milliseconds.
    pub at_ms: i64,
    /// The gateway's request id (`x-request-id`; a client's own id may repeat).
    pub request_id: Arc<str>,
    /// The trace id (hex) when the request was traced.
    pub trace_id: Option<Arc<str>>,
    /// The client key's name and team; `None` with authentication off.
    pub key: Option<Arc<str>>,
    pub team: Option<Arc<str>>,
    pub model: Arc<str>,
    /// The provider that served, or the last one tried; `None` when none was.
    pub provider: Option<Arc<str>>,
    /// The API the client called (`chat`, `messages`, ...).
    pub api: &'static str,
    /// How it ended (`model_inference_requests_total`'s `status`).
    pub status: &'static str,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from a provider's prompt cache, when it reports them (included in
    /// `input_tokens`).
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// From the request's arrival to its end.
    pub duration_ms: f64,
    /// Time spent waiting on upstreams, every attempt included.
    pub upstream_ms: f64,
    /// The gateway's own share: `duration_ms - upstream_ms`.
    pub overhead_ms: f64,
    /// Time to first token (streams).
    pub ttft_ms: Option<f64>,
}

impl UsageRecord {
    /// The id as stored: 32 lowercase hex digits.
    pub fn id_hex(&self) -> String {
        format!("{:032x}", self.id)
    }

    /// Whether the request ended as anything but a success.
    pub fn is_error(&self) -> bool {
        self.status != "success"
    }

    /// The start of the UTC hour holding `at_ms`, Unix milliseconds (the rollups' key).
    pub fn hour_ms(&self) -> i64 {
        self.at_ms - self.at_ms.rem_euclid(HOUR_MS)
    }
}

/// An hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// `t` as Unix milliseconds.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
