//! Relays an upstream SSE stream to the client chunk by chunk, and records its outcome when
//! it ends — or when it is dropped because the client went away, which also cancels the
//! upstream request (its body stream is dropped with the relay).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;

use crate::errors::ApiError;
use crate::outcome::{CompletionRecord, Observer};
use crate::providers::sse::SseScanner;
use crate::providers::ByteStream;
use crate::telemetry::client_span::StreamSpan;

/// Who the stream belongs to, for its completion record.
pub struct Context {
    /// The attempt's client span, closed with the stream.
    pub span: StreamSpan,
    /// When the attempt was sent.
    pub sent: Instant,
    pub observer: Arc<dyn Observer>,
    pub provider: usize,
    pub provider_name: Arc<str>,
    pub model: usize,
    pub model_id: Arc<str>,
    pub started: Instant,
    /// Upstream wait before the first chunk (all attempts).
    pub upstream_wait: Duration,
    pub strip_usage: bool,
}

pub struct Relay {
    first: Option<Bytes>,
    rest: ByteStream,
    scanner: SseScanner,
    context: Context,
    ttft: Option<Duration>,
    /// From the attempt's send to the first content chunk (the span's attribute).
    ttfc: Option<Duration>,
    /// The upstream failure that broke the stream.
    error_kind: Option<&'static str>,
    waiting_since: Option<Instant>,
    /// `None` while running; the outcome once the stream ended.
    ended: Option<&'static str>,
}

impl Relay {
    pub fn new(rest: ByteStream, context: Context, first: Bytes) -> Self {
        Self {
            first: Some(first),
            rest,
            scanner: SseScanner::new(context.strip_usage),
            context,
            ttft: None,
            ttfc: None,
            error_kind: None,
            waiting_since: None,
            ended: None,
        }
    }

    /// Time spent waiting on upstreams so far (before the first chunk, every attempt
    /// included; later, the waits between chunks too).
    pub fn upstream_wait(&self) -> Duration {
        self.context.upstream_wait
    }

    fn forward(&mut self, chunk: Bytes) -> Bytes {
        let fed = self.scanner.feed(chunk);
        if fed.first_content && self.ttft.is_none() {
            self.ttft = Some(self.context.started.elapsed());
            self.ttfc = Some(self.context.sent.elapsed());
        }
        fed.forward
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            let out = this.forward(first);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
        if this.ended.is_some() {
            return Poll::Ready(None);
        }
        loop {
            let polled = this.rest.as_mut().poll_next(cx);
            match (&polled, this.waiting_since) {
                (Poll::Pending, None) => this.waiting_since = Some(Instant::now()),
                (Poll::Ready(_), Some(since)) => {
                    this.context.upstream_wait += since.elapsed();
                    this.waiting_since = None;
                }
                _ => {}
            }
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = this.forward(chunk);
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
                Poll::Ready(Some(Err(error))) => {
                    this.ended = Some("upstream_error");
                    this.error_kind = Some(error.kind());
                    let c = &this.context;
                    c.span.in_scope(|| {
                        tracing::warn!(
                            provider = %c.provider_name,
                            model = %c.model_id,
                            error = %error,
                            "upstream stream broke after the first chunk"
                        )
                    });
                    let error = ApiError::UpstreamFailed(format!(
                        "the upstream stream broke: {}",
                        error.kind()
                    ));
                    let mut event = this.scanner.finish().to_vec();
                    if !event.is_empty() && !event.ends_with(b"\n") {
                        event.push(b'\n');
                    }
                    event.extend_from_slice(b"data: ");
                    event.extend_from_slice(&error.body());
                    event.extend_from_slice(b"\n\n");
                    return Poll::Ready(Some(Ok(Bytes::from(event))));
                }
                Poll::Ready(None) => {
                    this.ended = Some("success");
                    let tail = this.scanner.finish();
                    return Poll::Ready((!tail.is_empty()).then_some(Ok(tail)));
                }
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let status = self.ended.unwrap_or("client_disconnected");
        let c = &self.context;
        c.observer.completion(&CompletionRecord {
            provider: c.provider,
            provider_name: &c.provider_name,
            model: c.model,
            model_id: &c.model_id,
            stream: true,
            usage: self.scanner.usage(),
            duration: c.started.elapsed(),
            time_to_first_token: self.ttft,
            upstream_wait: c.upstream_wait,
            status,
        });
        c.span.finish(
            self.scanner.model(),
            self.scanner.usage(),
            self.ttfc,
            status,
            self.error_kind,
        );
    }
}
