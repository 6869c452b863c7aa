//! Anthropic error → OpenAI error body, and whose fault it is.
//!
//! Anthropic answers errors as `{"type": "error", "error": {"type", "message"}}` with a
//! status; the same object arrives as an `error` event mid-stream. The gateway's router
//! needs two facts (DESIGN §8): the OpenAI-shaped body a client would see, and whether the
//! failure is the request's (pass it through) or the provider's (try another provider, feed
//! the breaker). 401/403 refuse the gateway's own credentials, so they are the provider's
//! fault; 429 is a rate limit (skip the provider, do not trip the breaker); 500 and 529
//! (`overloaded_error`, a status OpenAI clients do not know, sent on as 503) are outages.

use serde_json::{json, Value};

/// Whose fault an upstream error is, for the router and the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFault {
    /// The request itself (400, 404, 413, 422): passed through to the client.
    Request,
    /// The provider refused the gateway's credentials or account (401, 402 billing, 403):
    /// another provider may serve.
    Credentials,
    /// A rate limit (429): skip the provider until its `Retry-After`; not an outage.
    RateLimited,
    /// An outage (500, 529 overloaded, other 5xx): another provider may serve.
    Outage,
}

impl ErrorFault {
    /// Whether another provider may be tried.
    pub fn retryable(self) -> bool {
        !matches!(self, Self::Request)
    }
}

/// An Anthropic error seen through OpenAI's eyes.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatedError {
    /// The status for the OpenAI-shaped body (529 becomes 503).
    pub status: u16,
    /// `{"error": {"message", "type", "param", "code"}}`.
    pub body: Value,
    pub fault: ErrorFault,
}

/// Translates an Anthropic error answer (its status and body). A body that is not
/// Anthropic's error shape still yields an error, classified by status alone.
pub fn anthropic_error(status: u16, body: &[u8]) -> TranslatedError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    error_object(status, &parsed["error"])
}

/// Translates the `error` object of an Anthropic error body or stream `error` event. In a
/// stream there is no status: the caller passes the one the type implies (see
/// [`status_for_type`]).
pub fn error_object(status: u16, error: &Value) -> TranslatedError {
    let kind = error["type"].as_str().unwrap_or("");
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("upstream error (status {status})"));
    let fault = match (status, kind) {
        (429, _) | (_, "rate_limit_error") => ErrorFault::RateLimited,
        (401..=403, _) | (_, "authentication_error" | "permission_error" | "billing_error") => {
            ErrorFault::Credentials
        }
        (408 | 500..=599, _) | (_, "api_error" | "overloaded_error" | "timeout_error") => {
            ErrorFault::Outage
        }
        _ => ErrorFault::Request,
    };
    let (openai_type, code) = match kind {
        "invalid_request_error" | "request_too_large" => ("invalid_request_error", Value::Null),
        "not_found_error" => ("invalid_request_error", Value::from("not_found")),
        "authentication_error" => ("authentication_error", Value::from("invalid_api_key")),
        "permission_error" => ("permission_error", Value::Null),
        "rate_limit_error" => ("rate_limit_error", Value::from("rate_limit_exceeded")),
        "overloaded_error" => ("server_error", Value::from("overloaded")),
        _ if fault == ErrorFault::Request => ("invalid_request_error", Value::Null),
        _ => ("server_error", Value::Null),
    };
    TranslatedError {
        status: if status == 529 { 503 } else { status },
        body: json!({"error": {"message": message, "type": openai_type, "param": null, "code": code}}),
        fault,
    }
}

/// An OpenAI error (status and body) in Anthropic's shape, for the `/v1/messages` ingress in
/// front of an OpenAI provider: `{"type": "error", "error": {"type", "message"}}`. The fault
/// is classified by status alone, as for any OpenAI-compatible upstream.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = parsed["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("upstream error (status {status})"));
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The HTTP status Anthropic documents for an error type, for errors met mid-stream.
pub fn status_for_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Anthropic "Errors" reference: the shape and each documented status and type.
    #[test]
    fn reference_errors() {
        let body = |kind: &str, msg: &str| {
            json!({"type": "error", "error": {"type": kind, "message": msg},
                "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
            .to_string()
        };
        let cases = [
            (
                400,
                "invalid_request_error",
                400,
                "invalid_request_error",
                ErrorFault::Request,
            ),
            (
                401,
                "authentication_error",
                401,
                "authentication_error",
                ErrorFault::Credentials,
            ),
            (
                403,
                "permission_error",
                403,
                "permission_error",
                ErrorFault::Credentials,
            ),
            (
                404,
                "not_found_error",
                404,
                "invalid_request_error",
                ErrorFault::Request,
            ),
            (
                413,
                "request_too_large",
                413,
                "invalid_request_error",
                ErrorFault::Request,
            ),
            (
                429,
                "rate_limit_error",
                429,
                "rate_limit_error",
                ErrorFault::RateLimited,
            ),
            (500, "api_error", 500, "server_error", ErrorFault::Outage),
            (
                529,
                "overloaded_error",
                503,
                "server_error",
                ErrorFault::Outage,
            ),
        ];
        for (status, kind, out_status, out_type, fault) in cases {
            let t = anthropic_error(status, body(kind, "The message").as_bytes());
            assert_eq!(t.status, out_status, "{kind}");
            assert_eq!(t.fault, fault, "{kind}");
            assert_eq!(t.body["error"]["type"], out_type, "{kind}");
            assert_eq!(t.body["error"]["message"], "The message");
            assert_eq!(t.fault.retryable(), fault != ErrorFault::Request);
            assert_eq!(status_for_type(kind), status);
        }
        let overloaded = anthropic_error(529, body("overloaded_error", "Overloaded").as_bytes());
        assert_eq!(overloaded.body["error"]["code"], "overloaded");
    }

    /// OpenAI "Error codes" guide: a 429 body, and a 503 without a JSON body.
    #[test]
    fn openai_errors_in_anthropic_shape() {
        let body = br#"{"error": {"message": "Rate limit reached for requests", "type": "requests",
            "param": null, "code": "rate_limit_exceeded"}}"#;
        assert_eq!(
            openai_error_to_anthropic(429, body),
            json!({"type": "error", "error": {"type": "rate_limit_error",
                "message": "Rate limit reached for requests"}})
        );
        let t = openai_error_to_anthropic(503, b"busy");
        assert_eq!(t["error"]["type"], "overloaded_error");
        assert_eq!(t["error"]["message"], "upstream error (status 503)");
        assert_eq!(anthropic_error(402, b"").fault, ErrorFault::Credentials);
    }

    #[test]
    fn unparseable_bodies_classify_by_status() {
        let t = anthropic_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(t.fault, ErrorFault::Outage);
        assert_eq!(t.body["error"]["message"], "upstream error (status 502)");
        assert_eq!(t.body["error"]["type"], "server_error");
        let t = anthropic_error(422, b"");
        assert_eq!(t.fault, ErrorFault::Request);
        assert_eq!(t.body["error"]["type"], "invalid_request_error");
    }
}
