//! Every error a client sees, in OpenAI's shape, with one mapping to HTTP at the edge.
//!
//! `{"error": {"message", "type", "param", "code"}}` with the status of DESIGN §8. Messages
//! never carry a secret: they name models and providers from the configuration, not keys.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// What a 429 tells the client besides its message.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Duration,
    /// The key's request and token quotas, sent as `x-ratelimit-*`.
    pub quotas: Quotas,
}

/// One quota as OpenAI reports it: `x-ratelimit-limit-*`, `x-ratelimit-remaining-*`,
/// `x-ratelimit-reset-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the quota is whole again.
    pub reset: Duration,
}

/// A key's request and token quotas, when it has those limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Sent as `x-ratelimit-*-requests`.
    pub requests: Option<Quota>,
    /// Sent as `x-ratelimit-*-tokens`.
    pub tokens: Option<Quota>,
}

impl Quotas {
    /// The headers, values formatted like OpenAI's (`reset` as `"1.5s"`): three per quota set.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, String)> {
        const REQUESTS: [&str; 3] = [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ];
        const TOKENS: [&str; 3] = [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ];
        let pairs = [(REQUESTS, self.requests), (TOKENS, self.tokens)];
        pairs.into_iter().flat_map(|(names, quota)| {
            quota.into_iter().flat_map(move |q| {
                [
                    (names[0], q.limit.to_string()),
                    (names[1], q.remaining.to_string()),
                    (names[2], format_reset(q.reset)),
                ]
            })
        })
    }
}

/// `0.25s`, `12s`, `1.5s`: seconds with at most three decimals, no trailing zeros.
fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{whole}s")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}s", frac.trim_end_matches('0'))
    }
}

/// Whole seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not a JSON chat request.
    #[error("{0}")]
    BadRequest(String),
    /// 400: one field of the body is wrong; `param` names it (`rate_limit_rpm`).
    #[error("{message}")]
    InvalidField { param: String, message: String },
    /// 404: no client key of this name (the admin API).
    #[error("no API key named {0:?}")]
    KeyNotFound(String),
    /// 409: a client key of this name exists already (the admin API).
    #[error("an API key named {0:?} exists already")]
    KeyExists(String),
    /// 409: the key is in the configuration file, which the admin API does not edit.
    #[error("the API key {0:?} is defined in the configuration file; edit it there")]
    KeyInConfig(String),
    /// 400: a configuration reload refused: the file is invalid, or changes a setting that
    /// needs a restart (the message says which, as `gatewayz check-config` would).
    #[error("configuration not reloaded: {0}")]
    ConfigRefused(String),
    /// 409: there is no file to reload (the gateway runs on its built-in default).
    #[error("the gateway runs on its built-in default configuration: there is no file to reload")]
    NoConfigFile,
    /// 401: no bearer key, or an unknown one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401: a trial key past its expiry.
    #[error("this API key's trial has expired")]
    TrialExpired,
    /// 403: a valid token that does not grant what it asks for.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the model is not configured.
    #[error("the model `{0}` does not exist or you do not have access to it")]
    ModelNotFound(String),
    /// 404: no such route.
    #[error("unknown route {0}")]
    RouteNotFound(String),
    /// 405: the route exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: the body exceeds `server.max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 408: the client did not send its whole body within `server.body_read_timeout`.
    #[error("the request body did not arrive within {}s", .0.as_secs())]
    BodyTimeout(Duration),
    /// 403: the key may not use this model (`[[keys]] models`).
    #[error("this API key may not use the model `{0}`")]
    ModelNotAllowed(String),
    /// 429: a client key over its rate limit, or every provider rate limited.
    #[error("{}", .0.message)]
    RateLimited(RateLimit),
    /// 429: a client key (or its team) has spent its budget for the period.
    #[error("{}", .0.message)]
    BudgetExceeded(RateLimit),
    /// 502: every attempt failed.
    #[error("{0}")]
    UpstreamFailed(String),
    /// 503: no provider can take the request (all circuit breakers open).
    #[error("{0}")]
    NoProviderAvailable(String),
    /// 504: the last attempt timed out.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// 503: the usage ledger's database did not answer a report.
    #[error("the usage ledger did not answer; retry shortly")]
    LedgerUnavailable,
    /// 503: the key has limits, the shared store that keeps them is unreachable, and
    /// `[state] failure_policy = "fail_closed"`.
    #[error("this API key's limits cannot be checked right now (the shared limit store is unreachable); retry shortly")]
    LimitsUnavailable,
    /// 503: the gateway is shutting down; written into streams still open at the drain
    /// deadline.
    #[error("the gateway is shutting down; retry the request")]
    ShuttingDown,
    /// 500: a bug in the gateway.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// OpenAI's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_)
            | Self::InvalidField { .. }
            | Self::KeyNotFound(_)
            | Self::KeyExists(_)
            | Self::KeyInConfig(_)
            | Self::ConfigRefused(_)
            | Self::NoConfigFile
            | Self::ModelNotFound(_)
            | Self::RouteNotFound(_)
            | Self::MethodNotAllowed
            | Self::PayloadTooLarge { .. }
            | Self::BodyTimeout(_) => "invalid_request_error",
            Self::Unauthorized(_) | Self::TrialExpired => "authentication_error",
            Self::Forbidden(_) | Self::ModelNotAllowed(_) => "permission_error",
            Self::RateLimited(_) => "rate_limit_error",
            Self::BudgetExceeded(_) => "insufficient_quota",
            Self::UpstreamFailed(_)
            | Self::NoProviderAvailable(_)
            | Self::UpstreamTimeout(_)
            | Self::ShuttingDown
            | Self::LimitsUnavailable
            | Self::LedgerUnavailable
            | Self::Internal => "api_error",
        }
    }

    /// OpenAI's `error.code`: stable, machine-readable.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid_request",
            Self::InvalidField { .. } => "invalid_value",
            Self::KeyNotFound(_) => "key_not_found",
            Self::KeyExists(_) => "key_exists",
            Self::KeyInConfig(_) => "key_in_config",
            Self::ConfigRefused(_) => "invalid_config",
            Self::NoConfigFile => "no_config_file",
            Self::Unauthorized(_) => "invalid_api_key",
            Self::TrialExpired => "trial_expired",
            Self::Forbidden(_) => "forbidden",
            Self::ModelNotFound(_) => "model_not_found",
            Self::RouteNotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "request_too_large",
            Self::BodyTimeout(_) => "request_timeout",
            Self::ModelNotAllowed(_) => "model_not_allowed",
            Self::RateLimited(_) => "rate_limit_exceeded",
            Self::BudgetExceeded(_) => "budget_exceeded",
            Self::UpstreamFailed(_) => "upstream_error",
            Self::NoProviderAvailable(_) => "no_provider_available",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::ShuttingDown => "server_shutting_down",
            Self::LimitsUnavailable => "shared_state_unavailable",
            Self::LedgerUnavailable => "ledger_unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// Anthropic's error `type` for this error (its Messages API's names for the status).
    pub fn anthropic_type(&self) -> &'static str {
        match self.status_code().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The JSON body, also used where an error must be written into a stream.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: String,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: &'a str,
        }
        let param = match self {
            Self::ModelNotFound(_) | Self::ModelNotAllowed(_) => Some("model"),
            Self::InvalidField { param, .. } => Some(param.as_str()),
            Self::KeyNotFound(_) | Self::KeyExists(_) | Self::KeyInConfig(_) => Some("name"),
            _ => None,
        };
        serde_json::to_vec(&Body {
            error: Inner {
                message: self.to_string(),
                kind: self.kind(),
                param,
                code: self.code(),
            },
        })
        .unwrap_or_default()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidField { .. } | Self::ConfigRefused(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::KeyNotFound(_) => StatusCode::NOT_FOUND,
            Self::KeyExists(_) | Self::KeyInConfig(_) | Self::NoConfigFile => StatusCode::CONFLICT,
            Self::Unauthorized(_) | Self::TrialExpired => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::ModelNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited(_) | Self::BudgetExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            Self::NoProviderAvailable(_)
            | Self::ShuttingDown
            | Self::LimitsUnavailable
            | Self::LedgerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/json"));
        if matches!(self, Self::Unauthorized(_) | Self::TrialExpired) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::LimitsUnavailable = self {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if let Self::RateLimited(limit) | Self::BudgetExceeded(limit) = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs(limit.retry_after)));
            for (name, value) in limit.quotas.headers() {
                response.insert_header((name, value));
            }
        }
        response.body(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_openai_shaped() {
        let err = ApiError::ModelNotFound("gpt-9".into());
        let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
        assert_eq!(err.status_code(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_429_says_when_to_retry() {
        let limited = ApiError::RateLimited(RateLimit {
            message: "slow down".into(),
            retry_after: Duration::from_millis(1200),
            quotas: Quotas {
                requests: Some(Quota {
                    limit: 60,
                    remaining: 0,
                    reset: Duration::from_millis(1500),
                }),
                tokens: Some(Quota {
                    limit: 1000,
                    remaining: 10,
                    reset: Duration::from_secs(59),
                }),
            },
        });
        let response = limited.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(header("retry-after"), "2");
        assert_eq!(header("x-ratelimit-limit-requests"), "60");
        assert_eq!(header("x-ratelimit-remaining-requests"), "0");
        assert_eq!(header("x-ratelimit-reset-requests"), "1.5s");
        assert_eq!(header("x-ratelimit-limit-tokens"), "1000");
        assert_eq!(header("x-ratelimit-remaining-tokens"), "10");
        assert_eq!(header("x-ratelimit-reset-tokens"), "59s");
        let budget = ApiError::BudgetExceeded(RateLimit {
            message: "spent".into(),
            retry_after: Duration::from_secs(3600),
            quotas: Quotas::default(),
        });
        let response = budget.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get("retry-after").unwrap(), "3600");
        assert_eq!(budget.code(), "budget_exceeded");
        assert_eq!(budget.anthropic_type(), "rate_limit_error");
        let denied = ApiError::ModelNotAllowed("m".into());
        assert_eq!(
            (denied.status_code(), denied.code()),
            (StatusCode::FORBIDDEN, "model_not_allowed")
        );
        for (d, secs) in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (5000, 5)] {
            assert_eq!(retry_after_secs(Duration::from_millis(d)), secs, "{d} ms");
        }
        assert_eq!(format_reset(Duration::from_millis(250)), "0.25s");
        assert_eq!(format_reset(Duration::from_secs(12)), "12s");
    }
}
