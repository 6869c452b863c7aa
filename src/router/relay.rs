//! Relays an upstream SSE stream to the client, and states how it ended.
//!
//! A stream goes through two phases. **Priming** (the provider's, [`Upstream::prime`], inside
//! the attempt and its timeout): events are read and held back until the first content (or a
//! clean end); a stream that breaks or sends a malformed event before that fails over like any
//! other failed attempt, and the client never sees it. **Relaying** ([`Relay`], here): from the
//! first content on, complete lines go to the client as they arrive. A stream that then breaks (cut,
//! malformed event, idle, too long a line, closed without `[DONE]`) is a failure of its
//! provider, and the client gets an OpenAI-shaped SSE error event instead of a silent
//! truncation. The relay records the attempt and the request's end when it is dropped —
//! at the end of the stream, or when the client went away, which also cancels the upstream
//! request (its body stream is dropped with the relay).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use hyper::header::HeaderValue;

use super::span::StreamSpan;
use crate::board::{ModelId, ProviderId};
use crate::errors::ApiError;
use crate::outcome::{AttemptRecord, AttemptResult, Ending, Reporter, RequestEnd};
use crate::providers::sse::{self, SseScanner};
use crate::providers::{ByteStream, FailureReason, ProviderError, StreamFault, Upstream};

/// Who the stream belongs to: what its attempt and its request's end are recorded with.
pub struct Context {
    /// The attempt's client span, closed with the stream.
    pub span: StreamSpan,
    /// When the attempt was sent.
    pub sent: Instant,
    /// From the send to the commit (first content): the attempt's latency.
    pub latency: Duration,
    pub reporter: Arc<dyn Reporter>,
    pub provider: ProviderId,
    pub provider_name: Arc<str>,
    pub model: ModelId,
    pub model_name: Arc<str>,
    /// The request's end, recorded when the relay is dropped.
    pub ending: Ending,
    /// Counts the attempt in flight at its provider until the relay is dropped.
    pub in_flight: crate::board::InFlight,
}

/// How far the relay got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// `[DONE]` seen and the upstream body ended.
    Done,
    Failed(FailureReason),
}

pub struct Relay {
    held: Option<Bytes>,
    rest: ByteStream,
    scanner: SseScanner,
    context: Context,
    /// From the attempt's send to the first content chunk (the span's attribute).
    ttfc: Option<Duration>,
    waiting_since: Option<Instant>,
    state: State,
    /// The upstream's id of the request, when it sent one.
    request_id: Option<HeaderValue>,
}

impl Relay {
    /// The relay of a primed upstream.
    pub fn new(upstream: Upstream, mut context: Context) -> Self {
        let request_id = upstream.request_id().cloned();
        let (held, rest, scanner, ended) = upstream.into_parts();
        let mut ttfc = None;
        if scanner.seen_content() {
            if let Some(started) = context.ending.started() {
                context.ending.first_token(started.elapsed());
            }
            ttfc = Some(context.sent.elapsed());
        }
        Self {
            held: Some(held),
            rest,
            scanner,
            context,
            ttfc,
            waiting_since: None,
            state: if ended { State::Done } else { State::Running },
            request_id,
        }
    }

    /// The upstream's id of the request, when it sent one.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// Time spent waiting on upstreams so far (before the first content, every attempt
    /// included; later, the waits between chunks too).
    pub fn upstream_wait(&self) -> Duration {
        self.context.ending.upstream_wait()
    }

    fn first_content(&mut self) {
        if self.ttfc.is_none() {
            self.ttfc = Some(self.context.sent.elapsed());
            if let Some(started) = self.context.ending.started() {
                self.context.ending.first_token(started.elapsed());
            }
        }
    }

    /// Ends the stream on an upstream failure: what was good of the last chunk, then an error
    /// event in the stream's dialect (after a blank line, so it is an event of its own; right
    /// after an `event:` line whose data was the fault, so that its name is replaced rather
    /// than an event without data dispatched).
    fn fail(&mut self, error: ProviderError, forward: Bytes) -> Bytes {
        let reason = error.reason();
        self.state = State::Failed(reason);
        let c = &self.context;
        c.span.in_scope(|| {
            tracing::warn!(
                provider = %c.provider_name,
                model = %c.model_name,
                error = %error,
                reason = reason.label(),
                "upstream stream broke after the first content"
            )
        });
        let error =
            ApiError::UpstreamFailed(format!("the upstream stream broke: {}", reason.label()));
        let shaped = sse::error_event(&error, self.scanner.dialect());
        let mut event = Vec::with_capacity(forward.len() + shaped.len() + 1);
        event.extend_from_slice(&forward);
        if !self.scanner.dangling_event_name() {
            event.push(b'\n');
        }
        event.extend_from_slice(&shaped);
        Bytes::from(event)
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            if !held.is_empty() {
                return Poll::Ready(Some(Ok(held)));
            }
        }
        if this.state != State::Running {
            return Poll::Ready(None);
        }
        loop {
            let polled = this.rest.as_mut().poll_next(cx);
            match (&polled, this.waiting_since) {
                (Poll::Pending, None) => this.waiting_since = Some(Instant::now()),
                (Poll::Ready(_), Some(since)) => {
                    this.context.ending.add_upstream_wait(since.elapsed());
                    this.waiting_since = None;
                }
                _ => {}
            }
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let fed = this.scanner.feed(chunk);
                    if fed.first_content {
                        this.first_content();
                    }
                    if let Some(fault) = fed.fault {
                        let event = this.fail(ProviderError::Stream(fault), fed.forward);
                        return Poll::Ready(Some(Ok(event)));
                    }
                    if fed.forward.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(fed.forward)));
                }
                Poll::Ready(Some(Err(error))) => {
                    let event = this.fail(error.in_stream(), Bytes::new());
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(None) => {
                    let fed = this.scanner.finish();
                    let fault = match fed.fault {
                        Some(fault) => Some(fault),
                        None if !this.scanner.done() => Some(StreamFault::NoDone),
                        None => None,
                    };
                    if let Some(fault) = fault {
                        let event = this.fail(ProviderError::Stream(fault), fed.forward);
                        return Poll::Ready(Some(Ok(event)));
                    }
                    this.state = State::Done;
                    return Poll::Ready((!fed.forward.is_empty()).then_some(Ok(fed.forward)));
                }
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // A client that left while the stream flowed says nothing against the provider.
        let (result, reason, end) = match self.state {
            State::Running => (AttemptResult::Success, None, RequestEnd::ClientGone),
            State::Done => (AttemptResult::Success, None, RequestEnd::Served),
            State::Failed(reason @ FailureReason::Stream(StreamFault::Idle)) => {
                (AttemptResult::Timeout, Some(reason), RequestEnd::Failed)
            }
            State::Failed(reason) => (AttemptResult::Error, Some(reason), RequestEnd::Failed),
        };
        let c = &mut self.context;
        c.reporter.attempt(&AttemptRecord {
            provider: c.provider,
            model: c.model,
            result,
            reason,
            latency: c.latency,
        });
        c.ending.answered(self.scanner.usage());
        c.ending.end(end);
        c.span.finish(
            self.scanner.model(),
            self.scanner.usage(),
            self.ttfc,
            end.label(),
            reason.map(FailureReason::label),
        );
    }
}
