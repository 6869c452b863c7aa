//! An upstream stream before the gateway commits to it.
//!
//! A provider reads a streamed answer until its first content (or a clean end) inside the
//! attempt — and inside the attempt's one timeout — holding the events back ([`Upstream`]):
//! a stream that breaks, or sends a malformed event, before any content reached the client
//! fails the attempt like any other failure, and the router tries the next provider. The
//! router's relay takes the primed stream over from there.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hyper::header::HeaderValue;

use super::sse::{Dialect, SseScanner};
use super::{ByteStream, ProviderError, StreamFault};

/// Most bytes held back while priming: past it, the stream is committed even without content
/// (an upstream sending many empty events first).
const MAX_HELD: usize = 64 * 1024;

/// An upstream stream before it is committed to: its first chunks, held back.
pub struct Upstream {
    first: Option<Bytes>,
    rest: ByteStream,
    scanner: SseScanner,
    held: BytesMut,
    /// The upstream body ended (cleanly) while priming.
    ended: bool,
    /// The upstream's id of the request, when it sent one.
    request_id: Option<HeaderValue>,
}

impl Upstream {
    /// `first`: a chunk already read, if any; `dialect`: how the events are written (the
    /// client's API's, see [`SseScanner`]).
    pub fn new(
        first: Option<Bytes>,
        rest: ByteStream,
        dialect: Dialect,
        strip_usage: bool,
        max_line: usize,
    ) -> Self {
        Self {
            first,
            rest,
            scanner: SseScanner::new(dialect, strip_usage, max_line),
            held: BytesMut::new(),
            ended: false,
            request_id: None,
        }
    }

    /// The same stream, with the upstream's id of the request.
    pub fn with_request_id(mut self, request_id: Option<HeaderValue>) -> Self {
        self.request_id = request_id;
        self
    }

    /// The upstream's id of the request, when it sent one.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// Reads until the first content, a clean end, or [`MAX_HELD`] bytes; any failure before
    /// that is the attempt's (the caller fails over).
    pub async fn prime(&mut self) -> Result<(), ProviderError> {
        if let Some(first) = self.first.take() {
            if self.absorb(first)? {
                return Ok(());
            }
        }
        loop {
            match self.rest.next().await {
                Some(Ok(chunk)) => {
                    if self.absorb(chunk)? {
                        return Ok(());
                    }
                }
                Some(Err(error)) => return Err(error.in_stream()),
                None => {
                    let fed = self.scanner.finish();
                    self.held.extend_from_slice(&fed.forward);
                    if let Some(fault) = fed.fault {
                        return Err(ProviderError::Stream(fault));
                    }
                    if !self.scanner.done() {
                        return Err(ProviderError::Stream(StreamFault::NoDone));
                    }
                    self.ended = true;
                    return Ok(());
                }
            }
        }
    }

    /// Holds a chunk's complete lines; true when priming is over.
    fn absorb(&mut self, chunk: Bytes) -> Result<bool, ProviderError> {
        let fed = self.scanner.feed(chunk);
        self.held.extend_from_slice(&fed.forward);
        if let Some(fault) = fed.fault {
            return Err(ProviderError::Stream(fault));
        }
        Ok(self.scanner.seen_content() || self.scanner.done() || self.held.len() >= MAX_HELD)
    }

    /// What the relay takes over: the held lines, the rest of the body, the scanner, and
    /// whether the body already ended.
    pub fn into_parts(self) -> (Bytes, ByteStream, SseScanner, bool) {
        (self.held.freeze(), self.rest, self.scanner, self.ended)
    }
}
