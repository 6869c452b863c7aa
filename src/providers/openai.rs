//! Any OpenAI-compatible HTTP API, over one pooled reqwest client per provider.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use super::{read_usage, ByteStream, ProviderError, Reply};
use crate::config::OpenAiProviderConfig;
use crate::telemetry::propagation::UpstreamTrace;

/// Most bytes of an upstream error body kept to pass through.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub struct OpenAiClient {
    client: reqwest::Client,
    url: reqwest::Url,
    host: String,
    auth: Option<HeaderValue>,
    timeout: Duration,
    idle_timeout: Duration,
}

impl OpenAiClient {
    pub fn new(config: &OpenAiProviderConfig) -> Result<Self, String> {
        crate::install_crypto_provider();
        let base = config.base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .map_err(|e| format!("base_url: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            headers.insert(name, value);
        }
        let auth = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "api_key: not a valid header value".to_string())?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            client,
            url,
            host,
            auth,
            timeout: config.timeout,
            idle_timeout: config.stream_idle_timeout,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn chat(
        &self,
        body: Bytes,
        stream: bool,
        trace: &UpstreamTrace,
    ) -> Result<Reply, ProviderError> {
        let mut request = self
            .client
            .post(self.url.clone())
            // Static header values: no copy per request.
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                ACCEPT,
                HeaderValue::from_static(if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }),
            )
            .body(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(traceparent) = &trace.traceparent {
            request = request.header("traceparent", traceparent.clone());
        }
        if let Some(tracestate) = &trace.tracestate {
            request = request.header("tracestate", tracestate.clone());
        }
        let attempt = async {
            let response = request.send().await.map_err(classify)?;
            let status = response.status();
            if !status.is_success() {
                let content_type = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = read_capped(response, MAX_ERROR_BODY).await;
                return Err(ProviderError::Status {
                    status: status.as_u16(),
                    body,
                    content_type,
                });
            }
            if stream {
                let mut rest = idle_limited(response.bytes_stream(), self.idle_timeout);
                // Wait for the first chunk before committing to this provider: a stream that
                // dies before sending anything can still fail over.
                loop {
                    match rest.next().await {
                        Some(Ok(first)) if first.is_empty() => continue,
                        Some(Ok(first)) => return Ok(Reply::Stream { first, rest }),
                        Some(Err(e)) => return Err(e),
                        None => {
                            return Err(ProviderError::Malformed("empty stream".into()));
                        }
                    }
                }
            } else {
                let body = response.bytes().await.map_err(classify)?;
                let (usage, response_model) = read_usage(&body)?;
                Ok(Reply::Json {
                    body,
                    usage,
                    response_model,
                })
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout),
        }
    }
}

fn classify(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else if e.is_connect() {
        ProviderError::Connect(without_url(&e))
    } else {
        ProviderError::Transport(without_url(&e))
    }
}

/// reqwest's message without the URL (which could carry credentials in a query string).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    deepest.unwrap_or_else(|| "request failed".into())
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Bytes {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Bytes::from(out)
}

/// Cuts a stream that stays silent longer than `idle`.
fn idle_limited(
    inner: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
) -> ByteStream {
    let inner = Box::pin(inner);
    Box::pin(futures_util::stream::unfold(
        Some(inner),
        move |state| async move {
            let mut inner = state?;
            match tokio::time::timeout(idle, inner.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(inner))),
                Ok(Some(Err(e))) => Some((Err(classify(e)), None)),
                Ok(None) => None,
                Err(_) => Some((Err(ProviderError::Timeout), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests;
