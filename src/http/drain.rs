//! Graceful shutdown as the HTTP edge sees it: whether the drain has begun (readiness turns
//! 503), and the "cut now" signal that ends the streams still open a little before the drain
//! deadline.
//!
//! `app.rs` owns the timing: it calls [`Drain::start`] on SIGTERM and [`Drain::cut`] at the
//! budget's cut time. A streamed chat answer is wrapped in [`CutOnDrain`]: when the cut fires it
//! drops the relay (cancelling the upstream request; the relay records its outcome as it
//! does for a client that went away) and writes one OpenAI-shaped SSE error event,
//! `data: {"error": {..., "code": "server_shutting_down"}}`, before the body ends — so the
//! client learns why instead of seeing a silent cut when the connection closes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::Stream;

use crate::errors::ApiError;
use crate::providers::sse::{self, Dialect};

/// The drain state shared by every worker.
///
/// A wrapped stream costs one atomic load per poll and, when it waits, a waker registration
/// that is a no-op while the waker stays the same; the cut wakes every stream still waiting.
#[derive(Debug, Default)]
pub struct Drain {
    started: OnceLock<Instant>,
    cut: AtomicBool,
    /// The wakers of the wrapped streams (dead ones are pruned as new streams come).
    waiting: Mutex<Vec<Weak<AtomicWaker>>>,
}

impl Drain {
    /// Marks the drain as begun (the first call wins) and returns when it began.
    pub fn start(&self) -> Instant {
        *self.started.get_or_init(Instant::now)
    }

    /// When the drain began, if it has.
    pub fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }

    pub fn is_draining(&self) -> bool {
        self.started.get().is_some()
    }

    /// Ends every wrapped stream (and any wrapped later) with the shutting-down event.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for waker in waiting.iter().filter_map(Weak::upgrade) {
            waker.wake();
        }
    }

    /// `stream` (written in `dialect`), ended by [`Self::cut`].
    pub fn wrap<S>(self: &Arc<Self>, stream: S, dialect: Dialect) -> CutOnDrain<S> {
        let waker = Arc::new(AtomicWaker::new());
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            // Amortized: prune once the list doubled since the last prune.
            if waiting.len() == waiting.capacity() {
                waiting.retain(|w| w.strong_count() > 0);
            }
            waiting.push(Arc::downgrade(&waker));
        }
        CutOnDrain {
            inner: Some(stream),
            drain: self.clone(),
            waker,
            tail: *b"\n\n",
            dialect,
        }
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

/// An SSE body that ends with the shutting-down event when the drain cuts it.
pub struct CutOnDrain<S> {
    /// `None` once ended (by its own end or by the cut).
    inner: Option<S>,
    drain: Arc<Drain>,
    /// Woken by the cut.
    waker: Arc<AtomicWaker>,
    /// The last two bytes sent: whether the client is at an event boundary.
    tail: [u8; 2],
    /// How the shutting-down event is written.
    dialect: Dialect,
}

impl<S> CutOnDrain<S> {
    fn note(&mut self, chunk: &[u8]) {
        match chunk {
            [] => {}
            [b] => self.tail = [self.tail[1], *b],
            [.., a, b] => self.tail = [*a, *b],
        }
    }

    /// The error event, after whatever closes a partly sent event.
    fn event(&self) -> Bytes {
        let close: &[u8] = match self.tail {
            [b'\n', b'\n'] => b"",
            [_, b'\n'] => b"\n",
            _ => b"\n\n",
        };
        let mut event = close.to_vec();
        event.extend_from_slice(&sse::error_event(&ApiError::ShuttingDown, self.dialect));
        Bytes::from(event)
    }
}

impl<S, E> Stream for CutOnDrain<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if this.drain.is_cut() {
            this.inner = None;
            return Poll::Ready(Some(Ok(this.event())));
        }
        let polled = Pin::new(inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => this.note(chunk),
            Poll::Ready(None) => this.inner = None,
            Poll::Pending => {
                // Register, then look again: a cut between the load above and here is seen.
                this.waker.register(cx.waker());
                if this.drain.is_cut() {
                    this.inner = None;
                    return Poll::Ready(Some(Ok(this.event())));
                }
            }
            _ => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::StreamExt;

    use super::*;

    type Chunks = futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, Infallible>>>;

    type Sender = tokio::sync::mpsc::UnboundedSender<Result<Bytes, Infallible>>;
    type Fed = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>>>>;

    /// A stream fed by hand, and its sender (closed once the stream is dropped).
    fn fed() -> (Sender, Fed) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (tx, Box::pin(stream))
    }

    fn chunks(parts: &[&'static str]) -> Chunks {
        let parts: Vec<_> = parts.iter().map(|p| Ok(Bytes::from(*p))).collect();
        futures_util::stream::iter(parts)
    }

    async fn body(
        mut stream: CutOnDrain<impl Stream<Item = Result<Bytes, Infallible>> + Unpin>,
    ) -> String {
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn without_a_cut_the_stream_passes_unchanged() {
        let drain = Arc::new(Drain::default());
        let out = body(drain.wrap(
            chunks(&["data: {\"a\":1}\n\n", "data: [DONE]\n\n"]),
            Dialect::OpenAi,
        ))
        .await;
        assert_eq!(out, "data: {\"a\":1}\n\ndata: [DONE]\n\n");
    }

    #[tokio::test]
    async fn a_cut_ends_the_stream_with_one_openai_shaped_error_event() {
        let drain = Arc::new(Drain::default());
        let (tx, rx) = fed();
        let mut stream = drain.wrap(rx, Dialect::OpenAi);
        tx.send(Ok(Bytes::from_static(b"data: {\"a\":1}\n\n")))
            .unwrap();
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"data: {\"a\":1}\n\n")
        );
        drain.cut();
        let event = stream.next().await.unwrap().unwrap();
        assert!(stream.next().await.is_none(), "ends after the event");
        let event = std::str::from_utf8(&event).unwrap();
        let data = event
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["error"]["code"], "server_shutting_down");
        assert_eq!(v["error"]["type"], "api_error");
        assert!(tx.is_closed(), "the inner stream was dropped");
    }

    #[tokio::test]
    async fn a_cut_mid_event_closes_the_partial_event_first() {
        for (sent, close) in [
            ("data: {\"a\"", "\n\n"),
            ("data: {\"a\":1}\n", "\n"),
            ("", ""),
        ] {
            let drain = Arc::new(Drain::default());
            let (tx, rx) = fed();
            let mut stream = drain.wrap(rx, Dialect::OpenAi);
            if !sent.is_empty() {
                tx.send(Ok(Bytes::from(sent))).unwrap();
                stream.next().await.unwrap().unwrap();
            }
            drain.cut();
            let event = stream.next().await.unwrap().unwrap();
            let event = std::str::from_utf8(&event).unwrap();
            assert!(
                event.starts_with(&format!("{close}data: {{")),
                "{sent:?}: {event:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_stream_wrapped_after_the_cut_ends_at_once() {
        let drain = Arc::new(Drain::default());
        assert!(!drain.is_draining());
        drain.start();
        assert!(drain.is_draining());
        drain.cut();
        let out = body(drain.wrap(chunks(&["data: {\"a\":1}\n\n"]), Dialect::OpenAi)).await;
        assert!(out.starts_with("data: {\"error\":"), "{out}");
    }
}
