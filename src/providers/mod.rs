//! Provider clients: how one attempt reaches one upstream.
//!
//! [`Provider`] is an enum, not a trait object: there are two kinds and the router calls them
//! on every request. An attempt either yields a [`Reply`] (a whole JSON body, or a stream
//! whose first chunk has already arrived) or a [`ProviderError`] that says whether another
//! provider may be tried. Each OpenAI-compatible provider owns one pooled hyper client,
//! built at start-up.

mod mock;
mod openai;
pub mod sse;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;

pub use mock::MockProvider;
pub use openai::OpenAiClient;

use crate::config::{ProviderConfig, ProviderSettings};
use crate::telemetry::propagation::UpstreamTrace;

/// A stream of upstream body chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// Token counts reported by an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// A successful attempt.
pub enum Reply {
    /// A whole JSON answer, returned to the client byte for byte.
    Json {
        body: Bytes,
        usage: Option<Usage>,
        /// The `model` the upstream says answered.
        response_model: Option<String>,
    },
    /// An SSE stream whose first chunk has arrived; `rest` yields the others as they come.
    Stream { first: Bytes, rest: ByteStream },
}

/// Why an attempt failed, and whether another provider may be tried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The connection could not be made (refused, DNS, TLS).
    #[error("connect error: {0}")]
    Connect(String),
    /// No answer within the provider's timeout.
    #[error("timed out")]
    Timeout,
    /// The upstream answered with a non-2xx status.
    #[error("upstream status {status}")]
    Status {
        status: u16,
        /// The upstream's body, passed through to the client for non-retryable 4xx.
        body: Bytes,
        content_type: Option<String>,
    },
    /// The upstream answered 2xx with a body that is not what the API promises.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The connection broke while reading the answer.
    #[error("transport error: {0}")]
    Transport(String),
}

impl ProviderError {
    /// Whether another provider may be tried: transport failures, timeouts, 408, 429, 5xx and
    /// malformed answers are the provider's fault; other 4xx are the request's.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => retryable_status(*status),
            _ => true,
        }
    }

    /// Short, bounded label for metrics and spans (`error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status { status, .. } if *status >= 500 => "server_error",
            Self::Status { .. } => "client_error",
            Self::Malformed(_) => "malformed",
            Self::Transport(_) => "transport",
        }
    }
}

/// Whether an upstream status is the provider's fault (another provider may be tried).
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// One upstream.
pub enum Provider {
    /// Boxed: the pooled client is several hundred bytes.
    OpenAi(Box<OpenAiClient>),
    Mock(MockProvider),
}

impl Provider {
    /// Builds the client for a configured provider.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, String> {
        Ok(match config.settings() {
            ProviderSettings::OpenAi(c) => Self::OpenAi(Box::new(OpenAiClient::new(&c)?)),
            ProviderSettings::Mock(c) => Self::Mock(MockProvider::new(&c)),
        })
    }

    /// Sends one chat completion attempt, with the attempt's W3C trace headers.
    pub async fn chat(
        &self,
        body: Bytes,
        stream: bool,
        trace: &UpstreamTrace,
    ) -> Result<Reply, ProviderError> {
        match self {
            Self::OpenAi(c) => c.chat(body, stream, trace).await,
            Self::Mock(m) => m.chat(body, stream).await,
        }
    }

    /// `server.address` for spans: the upstream host, or `mock`.
    pub fn address(&self) -> &str {
        match self {
            Self::OpenAi(c) => c.host(),
            Self::Mock(_) => "mock",
        }
    }

    /// The per-attempt deadline.
    pub fn timeout(&self) -> Duration {
        match self {
            Self::OpenAi(c) => c.timeout(),
            Self::Mock(_) => Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize)]
struct UsageAndModel {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    model: Option<String>,
}

/// Reads `usage` and `model` from a JSON answer, ignoring the rest.
pub fn read_usage(body: &[u8]) -> Result<(Option<Usage>, Option<String>), ProviderError> {
    serde_json::from_slice::<UsageAndModel>(body)
        .map(|u| (u.usage, u.model))
        .map_err(|e| ProviderError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        let status = |s| ProviderError::Status {
            status: s,
            body: Bytes::new(),
            content_type: None,
        };
        for (err, retry) in [
            (ProviderError::Connect("refused".into()), true),
            (ProviderError::Timeout, true),
            (ProviderError::Malformed("x".into()), true),
            (status(500), true),
            (status(503), true),
            (status(429), true),
            (status(408), true),
            (status(400), false),
            (status(401), false),
            (status(404), false),
        ] {
            assert_eq!(err.retryable(), retry, "{err:?}");
        }
    }

    #[test]
    fn usage_ignores_the_rest() {
        let (usage, model) = read_usage(
            br#"{"id":"x","model":"m1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        )
        .unwrap();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            })
        );
        assert_eq!(model.as_deref(), Some("m1"));
        assert!(read_usage(b"not json").is_err());
        assert_eq!(read_usage(b"{}").unwrap(), (None, None));
    }
}
