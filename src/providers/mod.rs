//! Provider clients: how one attempt reaches one upstream.
//!
//! [`Provider`] is an enum, not a trait object: there are two kinds and the router calls them
//! on every request. An attempt either yields a [`Reply`] (a whole JSON body, or a stream
//! whose first chunk has already arrived) or a [`ProviderError`] that says whether another
//! provider may be tried. Each OpenAI-compatible provider owns one pooled hyper client,
//! built at start-up.

mod anthropic;
mod forwarded;
mod messages;
mod mock;
mod openai;
pub mod sse;
mod stream;
pub mod translate;
mod translated;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use hyper::header::HeaderValue;
use serde::Deserialize;

pub use anthropic::AnthropicClient;
pub use forwarded::Forwarded;
pub use mock::MockProvider;
pub use openai::OpenAiClient;
pub use stream::Upstream;

use crate::config::{Api, ProviderSettings};
use crate::telemetry::traces::propagation::UpstreamTrace;

/// A stream of upstream body chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// Token counts reported by an upstream, in OpenAI's terms (the Chat Completions `usage`
/// object deserializes into it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Every input token, cached ones included.
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, the Responses API's
    /// `input_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`).
    #[serde(
        default,
        rename = "prompt_tokens_details",
        deserialize_with = "cached_of_details"
    )]
    pub cached_tokens: u64,
}

/// `prompt_tokens_details` / `input_tokens_details`: only `cached_tokens` is read.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct TokenDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl TokenDetails {
    pub(crate) fn cached(details: Option<Self>) -> u64 {
        details.and_then(|d| d.cached_tokens).unwrap_or(0)
    }
}

/// The cached count of a details object, which may be absent or `null`.
fn cached_of_details<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Option::<TokenDetails>::deserialize(d).map(TokenDetails::cached)
}

/// What the caller wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A whole JSON answer.
    Json,
    /// An SSE stream; `strip_usage`: cut the usage event the client did not ask for.
    Stream { strip_usage: bool },
}

impl Want {
    pub fn is_stream(self) -> bool {
        matches!(self, Self::Stream { .. })
    }
}

/// A successful attempt.
pub enum Reply {
    /// A whole JSON answer, returned to the client byte for byte.
    Json {
        body: Bytes,
        usage: Option<Usage>,
        /// The `model` the upstream says answered.
        response_model: Option<String>,
        /// The upstream's id of the request (`x-request-id`), when it sent one.
        request_id: Option<HeaderValue>,
    },
    /// An SSE stream primed up to its first content.
    Stream(Upstream),
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
        /// A 429's `Retry-After` (or `retry-after-ms`), when it sent one.
        retry_after: Option<Duration>,
        /// The upstream's id of the request (`x-request-id`), when it sent one.
        request_id: Option<HeaderValue>,
    },
    /// The upstream answered 2xx with a body that is not what the API promises.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The connection broke while reading the answer.
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer (or one stream event) is larger than the provider's limit.
    #[error("the answer exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A stream that had started broke: see [`StreamFault`].
    #[error("the stream broke: {0}")]
    Stream(StreamFault),
}

/// How a started stream let the request down. Each is a failure of the provider (breaker,
/// health, error rate), with its own `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamFault {
    /// The connection broke mid-stream.
    #[error("connection cut")]
    Cut,
    /// An event that is not what the protocol promises (not JSON).
    #[error("malformed event")]
    Malformed,
    /// No bytes for longer than the provider's `stream_idle_timeout`.
    #[error("idle past the stream idle timeout")]
    Idle,
    /// The stream closed cleanly without the protocol's end marker (`data: [DONE]`,
    /// `response.completed`, `message_stop`).
    #[error("closed without its end event")]
    NoDone,
    /// One event (line) longer than the provider's `max_event_bytes`.
    #[error("an event exceeds the size limit")]
    TooLarge,
    /// The upstream wrote an error event into the stream (`{"error": …}`, Anthropic's
    /// `event: error`, the Responses API's `error` or `response.failed`).
    #[error("an error event")]
    ErrorEvent,
}

/// Why an attempt failed: the bounded `reason` label of `gatewayz_provider_requests_total`
/// and the span's `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    Connect,
    Timeout,
    ServerError,
    RateLimited,
    /// 401/403: the provider refused the gateway's own credentials.
    AuthRefused,
    /// Another 4xx: the request's fault, passed through.
    ClientError,
    Malformed,
    Transport,
    TooLarge,
    Stream(StreamFault),
}

impl FailureReason {
    /// Every label value, for documentation and tests.
    pub const LABELS: [&'static str; 15] = [
        "connect",
        "timeout",
        "server_error",
        "rate_limited",
        "auth_refused",
        "client_error",
        "malformed",
        "transport",
        "too_large",
        "stream_cut",
        "stream_malformed",
        "stream_idle",
        "stream_no_done",
        "stream_too_large",
        "stream_error",
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
            Self::RateLimited => "rate_limited",
            Self::AuthRefused => "auth_refused",
            Self::ClientError => "client_error",
            Self::Malformed => "malformed",
            Self::Transport => "transport",
            Self::TooLarge => "too_large",
            Self::Stream(StreamFault::Cut) => "stream_cut",
            Self::Stream(StreamFault::Malformed) => "stream_malformed",
            Self::Stream(StreamFault::Idle) => "stream_idle",
            Self::Stream(StreamFault::NoDone) => "stream_no_done",
            Self::Stream(StreamFault::TooLarge) => "stream_too_large",
            Self::Stream(StreamFault::ErrorEvent) => "stream_error",
        }
    }
}

impl ProviderError {
    /// Whether another provider may be tried: transport failures, timeouts, 401/403 (the
    /// gateway's credentials), 408, 429, 5xx, malformed or oversized answers and broken
    /// streams are the provider's fault; other 4xx are the request's.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => retryable_status(*status),
            _ => true,
        }
    }

    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Connect(_) => FailureReason::Connect,
            Self::Timeout => FailureReason::Timeout,
            Self::Status { status: 429, .. } => FailureReason::RateLimited,
            Self::Status {
                status: 401 | 403, ..
            } => FailureReason::AuthRefused,
            Self::Status { status, .. } if *status >= 500 => FailureReason::ServerError,
            Self::Status { .. } => FailureReason::ClientError,
            Self::Malformed(_) => FailureReason::Malformed,
            Self::Transport(_) => FailureReason::Transport,
            Self::TooLarge { .. } => FailureReason::TooLarge,
            Self::Stream(fault) => FailureReason::Stream(*fault),
        }
    }

    /// Short, bounded label for metrics and spans (`error.type`).
    pub fn kind(&self) -> &'static str {
        self.reason().label()
    }

    /// The same failure, seen on a stream that had started: the transport's ways of failing
    /// become the stream's.
    pub fn in_stream(self) -> Self {
        match self {
            Self::Transport(_) | Self::Connect(_) => Self::Stream(StreamFault::Cut),
            Self::Timeout => Self::Stream(StreamFault::Idle),
            Self::Malformed(_) => Self::Stream(StreamFault::Malformed),
            Self::TooLarge { .. } => Self::Stream(StreamFault::TooLarge),
            other => other,
        }
    }
}

/// Whether an upstream status is the provider's fault (another provider may be tried).
/// 401 and 403 are: the client was authenticated by the gateway, so a refusal upstream is of
/// the gateway's own credentials for that provider.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 429 | 500..=599)
}

/// The pause a 429 asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds. An
/// HTTP-date or garbage is ignored (the caller's default applies).
pub fn retry_after(retry_after_ms: Option<&[u8]>, retry_after: Option<&[u8]>) -> Option<Duration> {
    let number = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    retry_after_ms
        .and_then(number)
        .map(|ms| ms / 1000.0)
        .or_else(|| retry_after.and_then(number))
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// One upstream.
pub enum Provider {
    /// Boxed: the pooled client is several hundred bytes.
    OpenAi(Box<OpenAiClient>),
    Anthropic(Box<AnthropicClient>),
    Mock(MockProvider),
}

impl Provider {
    /// Builds the client for a configured provider.
    pub fn new(settings: &ProviderSettings) -> Result<Self, String> {
        Ok(match settings {
            ProviderSettings::OpenAi(c) => Self::OpenAi(Box::new(OpenAiClient::new(c)?)),
            ProviderSettings::Anthropic(c) => Self::Anthropic(Box::new(AnthropicClient::new(c)?)),
            ProviderSettings::Mock(c) => Self::Mock(MockProvider::new(c)),
        })
    }

    /// Sends one attempt at `api`, with the attempt's W3C trace headers and the client's
    /// `forwarded` headers; a stream comes back primed (see [`Upstream`]).
    pub async fn call(
        &self,
        api: Api,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Reply, ProviderError> {
        match self {
            Self::OpenAi(c) => c.call(api, body, want, trace, forwarded).await,
            Self::Anthropic(c) => c.call(api, body, want, trace, forwarded).await,
            Self::Mock(m) => m.call(api, body, want).await,
        }
    }

    /// Whether this provider can answer `api`: an Anthropic provider serves chat completions
    /// (translated), the Messages API and its token count; an OpenAI-compatible provider
    /// every API but the token count, which has no OpenAI equivalent; the mock every API.
    pub fn serves(&self, api: Api) -> bool {
        match self {
            Self::Anthropic(_) => matches!(api, Api::Chat | Api::Messages | Api::CountTokens),
            Self::OpenAi(_) => api != Api::CountTokens,
            Self::Mock(_) => true,
        }
    }

    /// Whether the router may add `stream_options.include_usage` to a stream request.
    pub fn injects_stream_usage(&self) -> bool {
        match self {
            Self::OpenAi(c) => c.injects_stream_usage(),
            Self::Anthropic(_) | Self::Mock(_) => true,
        }
    }

    /// `server.address` for spans: the upstream host, or `mock`.
    pub fn address(&self) -> &str {
        match self {
            Self::OpenAi(c) => c.host(),
            Self::Anthropic(c) => c.host(),
            Self::Mock(_) => "mock",
        }
    }
}

#[derive(Deserialize)]
struct UsageAndModel<U> {
    #[serde(default = "none")]
    usage: Option<U>,
    #[serde(default)]
    model: Option<String>,
}

fn none<U>() -> Option<U> {
    None
}

/// The Responses API's usage: `input_tokens` (cached ones included), `output_tokens`, and
/// `input_tokens_details.cached_tokens`.
#[derive(Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<TokenDetails>,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Self {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            cached_tokens: TokenDetails::cached(u.input_tokens_details),
        }
    }
}

/// Reads `usage` and `model` from a JSON answer of `api`, in that API's own shape (chat,
/// completions and embeddings count `prompt_tokens`/`completion_tokens`, the Responses API
/// `input_tokens`/`output_tokens`, Anthropic's `message` its input, cache and output tokens;
/// a token count has no usage: nothing was generated), ignoring the rest.
pub fn read_usage(api: Api, body: &[u8]) -> Result<(Option<Usage>, Option<String>), ProviderError> {
    let malformed = |e: serde_json::Error| ProviderError::Malformed(e.to_string());
    match api {
        Api::Chat | Api::Completions | Api::Embeddings => {
            serde_json::from_slice::<UsageAndModel<Usage>>(body)
                .map(|u| (u.usage, u.model))
                .map_err(malformed)
        }
        Api::Responses => serde_json::from_slice::<UsageAndModel<ResponsesUsage>>(body)
            .map(|u| (u.usage.map(Usage::from), u.model))
            .map_err(malformed),
        Api::Messages | Api::CountTokens => {
            serde_json::from_slice::<UsageAndModel<serde_json::Value>>(body)
                .map(|u| {
                    let usage = u
                        .usage
                        .map(|u| translate::AnthropicUsage::from_json(&u).to_usage());
                    (usage, u.model)
                })
                .map_err(malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_usage_counts_cached_input() {
        let (usage, model) = read_usage(
            Api::Messages,
            br#"{"id":"msg_1","type":"message","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":10,"cache_creation_input_tokens":3,"cache_read_input_tokens":2,"output_tokens":7}}"#,
        )
        .unwrap();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 15,
                completion_tokens: 7,
                cached_tokens: 2
            })
        );
        assert_eq!(model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(
            read_usage(Api::CountTokens, br#"{"input_tokens":12}"#).unwrap(),
            (None, None)
        );
        assert!(read_usage(Api::Messages, b"<html>").is_err());
    }

    #[test]
    fn retry_classification() {
        let status = |s| ProviderError::Status {
            status: s,
            body: Bytes::new(),
            content_type: None,
            retry_after: None,
            request_id: None,
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
            (status(401), true),
            (status(403), true),
            (status(404), false),
            (status(422), false),
        ] {
            assert_eq!(err.retryable(), retry, "{err:?}");
        }
    }

    #[test]
    fn reasons_are_labelled_from_one_list() {
        let all = [
            FailureReason::Connect,
            FailureReason::Timeout,
            FailureReason::ServerError,
            FailureReason::RateLimited,
            FailureReason::AuthRefused,
            FailureReason::ClientError,
            FailureReason::Malformed,
            FailureReason::Transport,
            FailureReason::TooLarge,
            FailureReason::Stream(StreamFault::Cut),
            FailureReason::Stream(StreamFault::Malformed),
            FailureReason::Stream(StreamFault::Idle),
            FailureReason::Stream(StreamFault::NoDone),
            FailureReason::Stream(StreamFault::TooLarge),
            FailureReason::Stream(StreamFault::ErrorEvent),
        ];
        let labels: Vec<_> = all.iter().map(|r| r.label()).collect();
        assert_eq!(labels, FailureReason::LABELS);
        assert_eq!(
            ProviderError::Transport("x".into()).in_stream().kind(),
            "stream_cut"
        );
        assert_eq!(ProviderError::Timeout.in_stream().kind(), "stream_idle");
    }

    #[test]
    fn retry_after_reads_either_header() {
        let secs = Duration::from_secs;
        assert_eq!(retry_after(None, Some(b"7")), Some(secs(7)));
        assert_eq!(
            retry_after(Some(b"1500"), Some(b"7")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(None, Some(b"Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after(None, Some(b"-3")), None);
        assert_eq!(retry_after(None, None), None);
    }

    #[test]
    fn usage_ignores_the_rest() {
        let (usage, model) = read_usage(
            Api::Chat,
            br#"{"id":"x","model":"m1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        )
        .unwrap();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                cached_tokens: 0
            })
        );
        assert_eq!(model.as_deref(), Some("m1"));
        for api in Api::ALL {
            assert!(read_usage(api, b"not json").is_err(), "{api:?}");
            assert_eq!(read_usage(api, b"{}").unwrap(), (None, None), "{api:?}");
        }
    }

    /// A Responses answer in the shape of the OpenAI API reference's `response` object:
    /// `usage` in input and output tokens (cached input counted inside `input_tokens`).
    const RESPONSE_OBJECT: &[u8] = br#"{
      "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
      "object": "response",
      "created_at": 1741476777,
      "status": "completed",
      "error": null,
      "incomplete_details": null,
      "instructions": null,
      "max_output_tokens": null,
      "model": "gpt-4o-2024-08-06",
      "output": [
        {
          "type": "message",
          "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
          "status": "completed",
          "role": "assistant",
          "content": [
            {"type": "output_text", "text": "The image depicts a scenic landscape.", "annotations": []}
          ]
        }
      ],
      "parallel_tool_calls": true,
      "previous_response_id": null,
      "reasoning": {"effort": null, "summary": null},
      "store": true,
      "temperature": 1.0,
      "text": {"format": {"type": "text"}},
      "tool_choice": "auto",
      "tools": [],
      "top_p": 1.0,
      "truncation": "disabled",
      "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 128},
        "output_tokens": 52,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 380
      },
      "user": null,
      "metadata": {}
    }"#;

    #[test]
    fn responses_usage_is_read_in_its_own_shape() {
        let (usage, model) = read_usage(Api::Responses, RESPONSE_OBJECT).unwrap();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 328,
                completion_tokens: 52,
                cached_tokens: 128
            })
        );
        assert_eq!(model.as_deref(), Some("gpt-4o-2024-08-06"));
        // Read as a chat answer, the same body reports no tokens: the shape decides.
        assert_eq!(
            read_usage(Api::Chat, RESPONSE_OBJECT).unwrap().0,
            Some(Usage::default())
        );
        // A response still in progress has `"usage": null`.
        let pending = br#"{"object":"response","status":"in_progress","model":"m","usage":null}"#;
        assert_eq!(
            read_usage(Api::Responses, pending).unwrap(),
            (None, Some("m".into()))
        );
    }
}
