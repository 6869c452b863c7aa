//! One dialect's SSE events rewritten into another's at the provider's edge, so that the
//! router's priming, scanner and relay always see the client's dialect: Anthropic's named
//! events as `chat.completion.chunk` lines (chat completions to an Anthropic provider), and
//! OpenAI chunks as Anthropic events (the Messages API to an OpenAI-compatible provider).
//! The end marker is only written when the upstream sent its own (`message_stop`,
//! `[DONE]`), so a stream cut upstream is still told apart from a complete one.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::sse::{LineTooLong, Lines};
use super::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream, TranslateError};
use super::{ByteStream, ProviderError, StreamFault};

/// A stream translator: one upstream event (its `event:` name, empty when none, and its
/// `data:`) in, the client dialect's frames out.
pub trait Translator: Send + Unpin + 'static {
    fn event(&mut self, name: &str, data: &[u8]) -> Result<Vec<Bytes>, TranslateError>;
}

impl Translator for AnthropicToOpenAiStream {
    fn event(&mut self, name: &str, data: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        self.feed(name, data)
    }
}

impl Translator for OpenAiToAnthropicStream {
    fn event(&mut self, _name: &str, data: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        self.feed(data)
    }
}

impl From<LineTooLong> for ProviderError {
    fn from(_: LineTooLong) -> Self {
        ProviderError::Stream(StreamFault::TooLarge)
    }
}

/// An upstream body's events through a [`Translator`]: complete lines are split off the body
/// (a line held is bounded by the event limit), `event:` names the next `data:`, and each
/// data line goes through the translator. An event it cannot translate is malformed.
pub struct Translated<T> {
    inner: ByteStream,
    translator: T,
    lines_of: Lines,
    event: String,
    out: VecDeque<Bytes>,
    max_line: usize,
    /// The body ended or failed: nothing more is polled.
    done: bool,
}

impl<T: Translator> Translated<T> {
    pub fn new(inner: ByteStream, translator: T, max_line: usize) -> Self {
        Self {
            inner,
            translator,
            lines_of: Lines::default(),
            event: String::new(),
            out: VecDeque::new(),
            max_line,
            done: false,
        }
    }

    /// Handles the complete lines of `chunk`; an error ends the stream.
    fn lines(&mut self, chunk: &[u8]) -> Result<(), ProviderError> {
        let (translator, event, out) = (&mut self.translator, &mut self.event, &mut self.out);
        self.lines_of.feed(chunk, self.max_line, |line| {
            if let Some(name) = line.strip_prefix(b"event:") {
                *event = String::from_utf8_lossy(name.trim_ascii()).into_owned();
            } else if let Some(data) = line.strip_prefix(b"data:") {
                let lines = translator
                    .event(event, data.trim_ascii())
                    .map_err(|e| ProviderError::Malformed(e.to_string()))?;
                out.extend(lines);
                event.clear();
            }
            Ok(())
        })
    }
}

impl<T: Translator> Stream for Translated<T> {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(line) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(line)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Err(error) = this.lines(&chunk) {
                        this.done = true;
                        this.out.clear();
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => this.done = true,
            }
        }
    }
}
