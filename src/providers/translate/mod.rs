//! Protocol translation between OpenAI Chat Completions and Anthropic Messages.
//!
//! This module owns every conversion the gateway needs when a client's protocol is not the
//! provider's (DESIGN §10): requests, whole answers, stream events, token usage and errors.
//! It is pure: functions take JSON (`serde_json::Value` or bytes) and return JSON, the stream
//! translator is a state machine fed one upstream event at a time, and the clock comes in as a
//! `created` parameter. No I/O, no actix, no configuration, so every conversion is a unit test
//! on payloads from the providers' published references, and round trips are property tests.
//!
//! Design choices:
//! - **`Value` in, `Value` out.** Both APIs grow fields often; typed structs would either
//!   reject new fields or drop them silently. Each translator reads the fields it knows,
//!   ignores documented fields it cannot express, and refuses *shapes* it does not understand
//!   with a [`TranslateError`] whose message is fit for the client's 400.
//! - **One file per direction and concern**: [`request`] (OpenAI → Anthropic request),
//!   [`response`] (Anthropic answer → OpenAI `chat.completion`, with [`AnthropicUsage`] for
//!   pricing), [`stream`] (Anthropic SSE events → OpenAI chunks), [`errors`] (Anthropic error
//!   → OpenAI error body and whose fault it is); and the reverse direction for the
//!   `/v1/messages` ingress in front of an OpenAI provider: [`reverse`] (request, which also
//!   makes the OpenAI → Anthropic → OpenAI round-trip property test possible),
//!   [`reverse_response`] and [`reverse_stream`]. `messages` (private) converts the chat
//!   history for [`request`].
//!
//! Entry points: [`openai_to_anthropic`], [`anthropic_to_openai`],
//! [`AnthropicToOpenAiStream`], [`anthropic_error`]; reversed: [`anthropic_to_openai_request`],
//! [`openai_to_anthropic_response`], [`OpenAiToAnthropicStream`].

pub mod errors;
mod messages;
pub mod request;
pub mod response;
pub mod reverse;
pub mod reverse_response;
pub mod reverse_stream;
pub mod stream;

pub use errors::{anthropic_error, openai_error_to_anthropic, ErrorFault, TranslatedError};
pub use request::{openai_to_anthropic, openai_to_anthropic_bytes, AnthropicRequest};
pub use response::{anthropic_to_openai, AnthropicUsage};
pub use reverse::anthropic_to_openai_request;
pub use reverse_response::openai_to_anthropic_response;
pub use reverse_stream::OpenAiToAnthropicStream;
pub use stream::{AnthropicToOpenAiStream, StreamEnd};

use serde_json::{json, Value};

/// Why a payload could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's body is not JSON (a 400).
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    /// The client's request has a shape this translation cannot express (a 400). `field` is
    /// a JSON path such as `messages[2].content[0].type`.
    #[error("{field}: {reason}")]
    Request { field: String, reason: String },
    /// The upstream's answer or event is not what its API promises: the provider's fault,
    /// like [`super::ProviderError::Malformed`].
    #[error("malformed upstream answer: {0}")]
    Upstream(String),
}

impl TranslateError {
    pub(crate) fn request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Request {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether the client's request is at fault (answer 400) rather than the upstream.
    pub fn is_client_fault(&self) -> bool {
        matches!(self, Self::NotJson(_) | Self::Request { .. })
    }

    /// The OpenAI-shaped body for a client fault: `{"error": {message, type, param, code}}`.
    pub fn openai_body(&self) -> Value {
        let (kind, param) = match self {
            Self::NotJson(_) => ("invalid_request_error", Value::Null),
            Self::Request { field, .. } => ("invalid_request_error", Value::from(field.clone())),
            Self::Upstream(_) => ("server_error", Value::Null),
        };
        json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": null}})
    }
}

/// `value` as a string, or a request error naming `field`.
fn req_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, TranslateError> {
    value
        .as_str()
        .ok_or_else(|| TranslateError::request(field, "expected a string"))
}

/// `value` as a string, or an upstream error naming `field`.
fn up_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, TranslateError> {
    value
        .as_str()
        .ok_or_else(|| TranslateError::Upstream(format!("{field}: expected a string")))
}

/// What the request tests of several files share.
#[cfg(test)]
mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::Value;

    use super::request::openai_to_anthropic;
    use super::TranslateError;

    /// The Anthropic body of a request that must translate.
    pub fn translate(req: Value) -> Value {
        openai_to_anthropic(&req, 1024).unwrap().body
    }

    /// The field and reason of a request that must be refused.
    pub fn refused(req: Value) -> (String, String) {
        match openai_to_anthropic(&req, 1024).unwrap_err() {
            TranslateError::Request { field, reason } => (field, reason),
            other => panic!("expected a request error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn request_errors_are_openai_shaped_400s() {
        let e = TranslateError::request("messages[0].role", "unknown role `wizard`");
        assert!(e.is_client_fault());
        let body = e.openai_body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "messages[0].role");
        assert_eq!(
            body["error"]["message"],
            "messages[0].role: unknown role `wizard`"
        );
        assert!(!TranslateError::Upstream("x".into()).is_client_fault());
    }
}
