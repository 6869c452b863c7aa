//! The in-process mock provider (`kind = "mock"`): a provider without a network, for the
//! built-in default and for demos.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::sse::Dialect;
use super::{ProviderError, Reply, Upstream, Want};

/// The longest event held: the mock's are a few hundred bytes.
const MAX_EVENT_BYTES: usize = 64 * 1024;
use crate::config::{Api, MockProviderConfig};
use crate::mock::MockRequest;

pub struct MockProvider {
    latency: Duration,
    chunk_delay: Duration,
    counter: AtomicU64,
}

impl MockProvider {
    pub fn new(config: &MockProviderConfig) -> Self {
        Self {
            latency: config.latency,
            chunk_delay: config.chunk_delay,
            counter: AtomicU64::new(0),
        }
    }

    pub async fn call(&self, api: Api, body: Bytes, want: Want) -> Result<Reply, ProviderError> {
        let anthropic = api.dialect() == Dialect::Anthropic;
        let request = MockRequest::parse(api, &body).map_err(|message| {
            let body = if anthropic {
                serde_json::json!({"type": "error", "error": {
                    "type": "invalid_request_error", "message": message}})
            } else {
                serde_json::json!({"error": {
                    "message": message, "type": "invalid_request_error",
                    "param": null, "code": "invalid_request"}})
            };
            ProviderError::Status {
                status: 400,
                body: Bytes::from(body.to_string()),
                content_type: Some("application/json".into()),
                retry_after: None,
                request_id: None,
            }
        })?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = match api {
            Api::Responses => format!("resp_mock_{n}"),
            Api::Messages | Api::CountTokens => format!("msg_mock_{n}"),
            _ => format!("chatcmpl-mock-{n}"),
        };
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let Want::Stream { strip_usage } = want else {
            let body = Bytes::from(request.completion(&id, created));
            let (usage, response_model) = super::read_usage(api, &body)?;
            return Ok(Reply::Json {
                body,
                usage,
                response_model,
                request_id: None,
            });
        };
        let events = request
            .stream_events(&id, created, 0)
            .into_iter()
            .enumerate();
        let delay = self.chunk_delay;
        let rest = futures_util::stream::unfold(events, move |mut events| async move {
            let (i, event) = events.next()?;
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(event), events))
        });
        let mut upstream = Upstream::new(
            None,
            Box::pin(rest),
            api.dialect(),
            strip_usage,
            MAX_EVENT_BYTES,
        );
        upstream.prime().await?;
        Ok(Reply::Stream(upstream))
    }
}
