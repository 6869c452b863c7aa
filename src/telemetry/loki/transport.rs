//! One push to Loki, and the answer to "should this batch be tried again?".
//!
//! [`Transport`] is the shipper's only neighbour: production uses [`HttpTransport`]
//! (reqwest, one pooled client, a per-push timeout, tenant and auth headers fixed at build
//! time); actor tests plug in a scripted one. [`classify`] is the retry classifier, kept apart
//! from the backoff that decides how long to wait: 2xx is accepted; 429, 5xx (but 501) and
//! transport errors are retried; any other status is a rejection and the batch is dropped.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::config::{LokiAuth, LokiConfig};

/// What one push came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// An HTTP answer.
    Status(u16),
    /// No HTTP answer: connect error, timeout, reset.
    Transport(String),
}

/// What to do with the batch after a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Retry,
    Reject,
}

/// The retry classifier.
pub fn classify(outcome: &PushOutcome) -> Verdict {
    match outcome {
        PushOutcome::Status(s) if (200..300).contains(s) => Verdict::Accepted,
        PushOutcome::Status(429) => Verdict::Retry,
        PushOutcome::Status(501) => Verdict::Reject,
        PushOutcome::Status(s) if (500..600).contains(s) => Verdict::Retry,
        PushOutcome::Status(_) => Verdict::Reject,
        PushOutcome::Transport(_) => Verdict::Retry,
    }
}

/// A pending push.
pub type PushFuture = Pin<Box<dyn Future<Output = PushOutcome> + Send>>;

/// Sends one encoded batch.
pub trait Transport: Send + Sync + 'static {
    fn push(&self, body: Bytes) -> PushFuture;
}

/// Why the HTTP transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("telemetry.loki.url: {0}")]
    Url(String),
    #[error("telemetry.loki: invalid header value for {0}")]
    Header(&'static str),
    #[error("telemetry.loki: cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Pushes to `{url}/loki/api/v1/push` with reqwest.
pub struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpTransport {
    pub fn new(config: &LokiConfig) -> Result<Self, TransportError> {
        let base = config.url.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}/loki/api/v1/push"))
            .map_err(|e| TransportError::Url(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if let Some(tenant) = &config.tenant {
            let value =
                HeaderValue::from_str(tenant).map_err(|_| TransportError::Header("tenant"))?;
            headers.insert("X-Scope-OrgID", value);
        }
        let auth = match &config.auth {
            Some(LokiAuth::Bearer(token)) => Some(format!("Bearer {token}")),
            Some(LokiAuth::Basic { username, password }) => Some(format!(
                "Basic {}",
                base64(&format!("{username}:{password}"))
            )),
            None => None,
        };
        if let Some(auth) = auth {
            let mut value =
                HeaderValue::from_str(&auth).map_err(|_| TransportError::Header("auth"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(1)
            .build()?;
        Ok(Self { client, url })
    }
}

impl Transport for HttpTransport {
    fn push(&self, body: Bytes) -> PushFuture {
        let request = self.client.post(self.url.clone()).body(body);
        Box::pin(async move {
            match request.send().await {
                // Drain the body so the connection returns to the pool.
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    PushOutcome::Status(status)
                }
                Err(e) => PushOutcome::Transport(e.to_string()),
            }
        })
    }
}

/// Standard base64 with padding (basic auth).
fn base64(input: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_promtail_and_vector() {
        let table = [
            (PushOutcome::Status(204), Verdict::Accepted),
            (PushOutcome::Status(200), Verdict::Accepted),
            (PushOutcome::Status(429), Verdict::Retry),
            (PushOutcome::Status(500), Verdict::Retry),
            (PushOutcome::Status(503), Verdict::Retry),
            (PushOutcome::Status(501), Verdict::Reject),
            (PushOutcome::Status(400), Verdict::Reject),
            (PushOutcome::Status(413), Verdict::Reject),
            (PushOutcome::Transport("refused".into()), Verdict::Retry),
        ];
        for (outcome, verdict) in table {
            assert_eq!(classify(&outcome), verdict, "{outcome:?}");
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(input), output);
        }
    }
}
