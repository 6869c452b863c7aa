//! A side scanner over a relayed SSE stream.
//!
//! The stream goes to the client as it arrives, but only in complete lines: the scanner holds
//! back the unterminated tail of a chunk (usually nothing — upstreams flush whole events, and
//! then the chunk is forwarded without a copy) so that a stream cut mid-line never hands the
//! client half an event glued to the error event that follows. It looks at each complete
//! `data:` line to note the first content chunk (time to first token), the usage chunk and
//! `[DONE]`, and to catch what the protocol forbids: an event that is not JSON, or a line
//! longer than the provider's limit (held bytes stay bounded by it). Before the first content
//! every event is parsed; after it, only events naming `"usage"` are, and the rest are checked
//! for JSON object framing (`{` … `}`), which catches garbage and cut events without a parse.
//! When the gateway itself asked the upstream for usage (the client did not), the usage-only
//! event is cut out so the client sees exactly the stream it asked for.
//!
//! The scanner reads the stream in the client's [`Dialect`]: OpenAI's chunks ending with
//! `[DONE]`, the Responses API's typed events ending with `response.completed`, or
//! Anthropic's named events ending with `message_stop`. In the typed dialects an `error`
//! event (or `response.failed`) is the provider's fault ([`StreamFault::ErrorEvent`]), and
//! the bulk of a stream — its text deltas — is recognised by its first bytes without a parse.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::config::Dialect;

use super::{StreamFault, Usage};
use crate::errors::ApiError;

/// What the scanner reads of one event (the rest is skipped).
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    /// An error event in the middle of a stream (`data: {"error": {…}}`).
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// Legacy completions stream text here.
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
    #[serde(default, borrow)]
    refusal: Option<&'a RawValue>,
}

/// The usage key, searched for in every event after the first content (built once).
static USAGE_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));

impl Dialect {
    /// An error written into a stream of this dialect, as one whole event: OpenAI's
    /// `data: {"error": …}`, the Responses API's `event: error` with `{"type": "error",
    /// "code", "message"}`, Anthropic's `event: error` with `{"type": "error", "error": …}`.
    pub fn error_event(self, kind: &str, code: &str, message: &str, openai_body: &[u8]) -> Vec<u8> {
        let mut event = Vec::with_capacity(openai_body.len() + 40);
        match self {
            Self::OpenAi => {
                event.extend_from_slice(b"data: ");
                event.extend_from_slice(openai_body);
            }
            Self::Responses => {
                let data = serde_json::json!({
                    "type": "error", "code": code, "message": message, "param": null});
                event.extend_from_slice(b"event: error\ndata: ");
                event.extend_from_slice(data.to_string().as_bytes());
            }
            Self::Anthropic => {
                let data = serde_json::json!({
                    "type": "error", "error": {"type": kind, "message": message}});
                event.extend_from_slice(b"event: error\ndata: ");
                event.extend_from_slice(data.to_string().as_bytes());
            }
        }
        event.extend_from_slice(b"\n\n");
        event
    }

    /// Whether `data` is one of the events that are most of a stream and need no parse once
    /// the first content was seen (text and argument deltas): its top-level `type` read off
    /// its first bytes (`{"type":"…"`, as the providers write it) or its last (`"type":"…"}`,
    /// as serializers that sort keys do — the gateway's own translation among them). A quote
    /// inside a string is escaped, so neither pattern matches text. An upstream that spaces
    /// its JSON differently is parsed instead: slower, never wrong.
    fn is_bulk(self, data: &[u8]) -> bool {
        let names: &[&[u8]] = match self {
            Self::OpenAi => &[],
            Self::Responses => &[
                b"response.output_text.delta",
                b"response.function_call_arguments.delta",
                b"response.reasoning_summary_text.delta",
            ],
            Self::Anthropic => &[b"content_block_delta"],
        };
        const KEY: &[u8] = b"\"type\":\"";
        names.iter().any(|name| {
            let first = data
                .strip_prefix(b"{")
                .and_then(|d| d.strip_prefix(KEY))
                .and_then(|d| d.strip_prefix(*name))
                .is_some_and(|d| d.first() == Some(&b'"'));
            first
                || data
                    .strip_suffix(b"\"}")
                    .and_then(|d| d.strip_suffix(*name))
                    .is_some_and(|d| d.ends_with(KEY))
        })
    }
}

/// The whole SSE event that reports `error` in a stream of `dialect`.
pub fn error_event(error: &ApiError, dialect: Dialect) -> Vec<u8> {
    dialect.error_event(
        error.anthropic_type(),
        error.code(),
        &error.to_string(),
        &error.body(),
    )
}

/// What the scanner reads of one typed event (Responses, Anthropic).
#[derive(Deserialize)]
struct TypedEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    /// Anthropic's `message_start` carries the message (model, first usage); in other
    /// events `message` is a string (the Responses API's `error`), hence raw.
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    /// The Responses API's lifecycle events carry the response (model, final usage).
    #[serde(default, borrow)]
    response: Option<Envelope<'a>>,
    /// Anthropic's `message_delta` carries the running usage.
    #[serde(default)]
    usage: Option<TypedUsage>,
    /// Anthropic's `content_block_start`: a tool call (or thinking) block is content.
    #[serde(default, borrow)]
    content_block: Option<Block<'a>>,
    /// Responses' `response.output_item.added`: a function call is content.
    #[serde(default, borrow)]
    item: Option<Block<'a>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    usage: Option<TypedUsage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// Usage as the typed dialects write it. Anthropic counts cached input apart from
/// `input_tokens`; the Responses API counts it inside.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct TypedUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    /// The Responses API's cached count.
    #[serde(default)]
    input_tokens_details: Option<super::TokenDetails>,
}

impl TypedUsage {
    /// Fields this event reports replace the running ones (Anthropic's counts are cumulative).
    fn update(&mut self, next: TypedUsage) {
        let keep = |slot: &mut Option<u64>, next: Option<u64>| {
            if next.is_some() {
                *slot = next;
            }
        };
        keep(&mut self.input_tokens, next.input_tokens);
        keep(&mut self.output_tokens, next.output_tokens);
        keep(
            &mut self.cache_creation_input_tokens,
            next.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_read_input_tokens,
            next.cache_read_input_tokens,
        );
        if next.input_tokens_details.is_some() {
            self.input_tokens_details = next.input_tokens_details;
        }
    }

    fn usage(self) -> Usage {
        let n = Option::unwrap_or_default;
        Usage {
            prompt_tokens: n(self.input_tokens)
                + n(self.cache_creation_input_tokens)
                + n(self.cache_read_input_tokens),
            completion_tokens: n(self.output_tokens),
            cached_tokens: n(self.cache_read_input_tokens)
                + super::TokenDetails::cached(self.input_tokens_details),
        }
    }
}

/// Complete lines out of a byte stream, the unterminated tail held (bounded) until it ends:
/// the line splitting every SSE reader that translates events shares.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

/// A line longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl Lines {
    /// Calls `line` with each complete line of `chunk` (the held tail completing the first,
    /// `\r\n` endings trimmed); holds the rest, at most `max` bytes.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        max: usize,
        mut line: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<LineTooLong>,
    {
        let mut rest = chunk;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let text = if self.partial.is_empty() {
                &rest[..nl]
            } else {
                self.partial.extend_from_slice(&rest[..nl]);
                &self.partial[..]
            };
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let result = line(text);
            self.partial.clear();
            result?;
            rest = &rest[nl + 1..];
        }
        if self.partial.len() + rest.len() > max {
            return Err(LineTooLong.into());
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// What one fed chunk produced.
#[derive(Debug)]
pub struct Fed {
    /// Complete lines to send to the client now (those before a fault, if one was found).
    pub forward: Bytes,
    /// This chunk carried the first content.
    pub first_content: bool,
    /// The stream broke the protocol here: nothing after the forwarded lines may be relayed.
    pub fault: Option<StreamFault>,
}

/// What to do with one complete line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Keep,
    /// A usage-only event the client did not ask for (or the blank line ending it).
    Strip,
    Bad(StreamFault),
}

/// The scanner's state across chunks.
pub struct SseScanner {
    dialect: Dialect,
    /// The unterminated tail of the chunks so far: at most `max_line` bytes.
    partial: Vec<u8>,
    max_line: usize,
    strip_usage: bool,
    skip_blank: bool,
    seen_content: bool,
    usage: Option<Usage>,
    /// The typed dialects' running usage.
    typed_usage: Option<TypedUsage>,
    model: Option<String>,
    done: bool,
    events: u64,
    /// The last line forwarded is an `event:` line whose `data:` line has not been
    /// forwarded (yet, or ever: it was a fault).
    named: bool,
}

impl SseScanner {
    /// `strip_usage`: drop usage-only events (the client did not ask for them; OpenAI's
    /// dialect only — the others always carry usage); `max_line`: the longest line (event)
    /// accepted.
    pub fn new(dialect: Dialect, strip_usage: bool, max_line: usize) -> Self {
        Self {
            dialect,
            partial: Vec::new(),
            max_line,
            strip_usage,
            skip_blank: false,
            seen_content: false,
            usage: None,
            typed_usage: None,
            model: None,
            done: false,
            events: 0,
            named: false,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The response model: the first parsed event naming one (upstreams name it in every
    /// event, and the first event is always parsed).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The dialect's end marker (`[DONE]`, `response.completed`, `message_stop`) was seen:
    /// the stream completed normally.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Content (text, tool calls or a refusal) was seen.
    pub fn seen_content(&self) -> bool {
        self.seen_content
    }

    /// Number of `data:` events seen.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Whether the client was last sent an `event:` line without its data: the data line was
    /// a fault and was not forwarded. An error event written now must follow that line
    /// directly — its own `event:` line replaces the name — since a blank line first would
    /// dispatch an event without data, which SDKs fail to parse as JSON.
    pub fn dangling_event_name(&self) -> bool {
        self.named
    }

    pub fn feed(&mut self, chunk: Bytes) -> Fed {
        let seen_before = self.seen_content;
        let (forward, fault) = self.lines(chunk);
        Fed {
            forward,
            first_content: !seen_before && self.seen_content,
            fault,
        }
    }

    /// The end of the upstream body: the unterminated last line, if any, is a line too.
    pub fn finish(&mut self) -> Fed {
        let seen_before = self.seen_content;
        let line = std::mem::take(&mut self.partial);
        let (forward, fault) = match self.verdict(&line) {
            _ if line.is_empty() => (Bytes::new(), None),
            Line::Keep => (Bytes::from(line), None),
            Line::Strip => (Bytes::new(), None),
            Line::Bad(fault) => (Bytes::new(), Some(fault)),
        };
        Fed {
            forward,
            first_content: !seen_before && self.seen_content,
            fault,
        }
    }

    /// Splits `chunk` into lines (the held tail completes the first), inspects each, and
    /// returns the complete lines to forward — `chunk` itself, or a slice of it, when nothing
    /// was held or cut out.
    fn lines(&mut self, chunk: Bytes) -> (Bytes, Option<StreamFault>) {
        let end = memchr::memrchr(b'\n', &chunk).map_or(0, |i| i + 1);
        if end == 0 {
            return (Bytes::new(), self.hold(&chunk));
        }
        // Bytes to forward when they are not one slice of `chunk`.
        let mut out: Option<BytesMut> = None;
        // `chunk[kept..]` is still to be forwarded (or cut).
        let mut kept = 0;
        let mut pos = 0;
        if !self.partial.is_empty() {
            let nl = memchr::memchr(b'\n', &chunk).unwrap_or(0);
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&chunk[..nl]);
            match self.verdict(&line) {
                Line::Bad(fault) => return (Bytes::new(), Some(fault)),
                Line::Strip => out = Some(BytesMut::new()),
                Line::Keep => {
                    line.push(b'\n');
                    out = Some(BytesMut::from(&line[..]));
                }
            }
            pos = nl + 1;
            kept = pos;
        }
        let mut fault = None;
        let mut upto = end;
        while pos < end {
            let nl = pos + memchr::memchr(b'\n', &chunk[pos..end]).unwrap_or(end - 1 - pos);
            match self.verdict(&chunk[pos..nl]) {
                Line::Keep => {}
                Line::Strip => {
                    out.get_or_insert_with(BytesMut::new)
                        .extend_from_slice(&chunk[kept..pos]);
                    kept = nl + 1;
                }
                Line::Bad(f) => {
                    fault = Some(f);
                    upto = pos;
                    break;
                }
            }
            pos = nl + 1;
        }
        if fault.is_none() {
            fault = self.hold(&chunk[end..]);
        }
        let forward = match out {
            None => chunk.slice(kept..upto.max(kept)),
            Some(mut out) => {
                out.extend_from_slice(&chunk[kept..upto.max(kept)]);
                out.freeze()
            }
        };
        (forward, fault)
    }

    /// Holds an unterminated tail; a fault when the line grows past the limit.
    fn hold(&mut self, tail: &[u8]) -> Option<StreamFault> {
        if self.partial.len() + tail.len() > self.max_line {
            self.partial = Vec::new();
            return Some(StreamFault::TooLarge);
        }
        self.partial.extend_from_slice(tail);
        None
    }

    /// One complete line's fate, with the blank line that ends a stripped event stripped too.
    fn verdict(&mut self, line: &[u8]) -> Line {
        let blank = line.iter().all(|b| *b == b'\r');
        if blank {
            self.named = false;
            return if std::mem::take(&mut self.skip_blank) {
                Line::Strip
            } else {
                Line::Keep
            };
        }
        self.skip_blank = false;
        let verdict = self.inspect(line);
        self.skip_blank = verdict == Line::Strip;
        if verdict == Line::Keep {
            self.named = line.starts_with(b"event:");
        }
        verdict
    }

    /// Looks at one complete, non-blank line.
    fn inspect(&mut self, line: &[u8]) -> Line {
        if line.len() > self.max_line {
            return Line::Bad(StreamFault::TooLarge);
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return Line::Keep; // `event:`, `id:`, `retry:`, comments
        };
        let data = data.trim_ascii();
        self.events += 1;
        if self.dialect != Dialect::OpenAi {
            return self.inspect_typed(data);
        }
        if data == b"[DONE]" {
            self.done = true;
            return Line::Keep;
        }
        // Once content was seen only a usage event matters: a line without the key needs no
        // parse (most of a stream's events; a key spelled with escapes would be missed, and no
        // OpenAI-compatible upstream writes one), only its framing is checked.
        if self.seen_content && USAGE_KEY.find(data).is_none() {
            if data.starts_with(b"{\"error\"") {
                return Line::Bad(StreamFault::ErrorEvent);
            }
            return framed(data);
        }
        let Ok(event) = serde_json::from_slice::<EventHead<'_>>(data) else {
            return Line::Bad(StreamFault::Malformed);
        };
        if event.error.is_some() {
            return Line::Bad(StreamFault::ErrorEvent);
        }
        if self.model.is_none() {
            self.model = event.model.map(std::borrow::Cow::into_owned);
        }
        let choices = event.choices.unwrap_or_default();
        if !self.seen_content && choices.iter().any(has_content) {
            self.seen_content = true;
        }
        match event.usage {
            Some(usage) => {
                self.usage = Some(usage);
                if self.strip_usage && choices.is_empty() {
                    Line::Strip
                } else {
                    Line::Keep
                }
            }
            None => Line::Keep,
        }
    }
}

impl SseScanner {
    /// One `data:` line of a typed dialect (Responses, Anthropic).
    fn inspect_typed(&mut self, data: &[u8]) -> Line {
        if self.seen_content && self.dialect.is_bulk(data) {
            return framed(data);
        }
        let Ok(event) = serde_json::from_slice::<TypedEvent<'_>>(data) else {
            return Line::Bad(StreamFault::Malformed);
        };
        let message = event
            .message
            .filter(|m| m.get().starts_with('{'))
            .and_then(|m| serde_json::from_str::<Envelope<'_>>(m.get()).ok());
        if let Some(envelope) = message.as_ref().or(event.response.as_ref()) {
            if self.model.is_none() {
                self.model = envelope.model.as_deref().map(str::to_owned);
            }
            if let Some(usage) = envelope.usage {
                self.add_typed_usage(usage);
            }
        }
        if let Some(usage) = event.usage {
            self.add_typed_usage(usage);
        }
        let block = |b: &Option<Block<'_>>| {
            b.as_ref()
                .and_then(|b| b.kind.as_deref())
                .map(str::to_owned)
        };
        let kind = event.kind.as_ref();
        let content = match self.dialect {
            Dialect::Anthropic => {
                kind == "content_block_delta"
                    || (kind == "content_block_start"
                        && block(&event.content_block).is_some_and(|k| k != "text"))
            }
            _ => {
                kind.ends_with(".delta")
                    || (kind == "response.output_item.added"
                        && block(&event.item).is_some_and(|k| k != "message"))
            }
        };
        if content {
            self.seen_content = true;
        }
        match (self.dialect, kind) {
            (_, "error") | (Dialect::Responses, "response.failed") => {
                Line::Bad(StreamFault::ErrorEvent)
            }
            (Dialect::Anthropic, "message_stop")
            | (Dialect::Responses, "response.completed" | "response.incomplete") => {
                self.done = true;
                Line::Keep
            }
            _ => Line::Keep,
        }
    }

    fn add_typed_usage(&mut self, usage: TypedUsage) {
        let running = self.typed_usage.get_or_insert_with(TypedUsage::default);
        running.update(usage);
        self.usage = Some(running.usage());
    }
}

/// An event that is not parsed must at least be framed as a JSON object: this catches
/// garbage and cut events without a parse.
fn framed(data: &[u8]) -> Line {
    if data.first() == Some(&b'{') && data.last() == Some(&b'}') {
        Line::Keep
    } else {
        Line::Bad(StreamFault::Malformed)
    }
}

fn has_content(choice: &Choice<'_>) -> bool {
    let non_empty =
        |v: &Option<&RawValue>| v.is_some_and(|raw| !matches!(raw.get(), "null" | "\"\"" | "[]"));
    if non_empty(&choice.text) {
        return true;
    }
    let Some(delta) = &choice.delta else {
        return false;
    };
    non_empty(&delta.content) || non_empty(&delta.tool_calls) || non_empty(&delta.refusal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(split: &[usize], strip: bool) -> (String, SseScanner, Vec<usize>) {
        let bytes = STREAM.as_bytes();
        let mut scanner = SseScanner::new(Dialect::OpenAi, strip, 1 << 20);
        let mut out = Vec::new();
        let mut firsts = Vec::new();
        let mut start = 0;
        let mut cuts: Vec<usize> = split.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        for (i, end) in cuts.into_iter().enumerate() {
            let fed = scanner.feed(Bytes::copy_from_slice(&bytes[start..end]));
            if fed.first_content {
                firsts.push(i);
            }
            out.extend_from_slice(&fed.forward);
            start = end;
        }
        out.extend_from_slice(&scanner.finish().forward);
        (String::from_utf8(out).unwrap(), scanner, firsts)
    }

    #[test]
    fn cached_tokens_are_read_in_every_dialect() {
        let openai =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\
                      \"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0}}}\n\n\
                      data: [DONE]\n\n";
        let responses = "data: {\"type\":\"response.completed\",\"response\":{\"usage\":\
                         {\"input_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":6},\
                         \"output_tokens\":1}}}\n\n";
        let none = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\
                    \"prompt_tokens_details\":null}}\n\ndata: [DONE]\n\n";
        for (dialect, stream, cached) in [
            (Dialect::OpenAi, openai, 4),
            (Dialect::Responses, responses, 6),
            (Dialect::OpenAi, none, 0),
        ] {
            let (_, fault, scanner) = scan(dialect, stream, &[]);
            assert_eq!(fault, None, "{stream}");
            assert_eq!(
                scanner.usage().map(|u| u.cached_tokens),
                Some(cached),
                "{stream}"
            );
        }
    }

    #[test]
    fn passes_through_and_reads_usage() {
        let (out, scanner, firsts) = run(&[], false);
        assert_eq!(out, STREAM);
        assert_eq!(
            scanner.usage(),
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 2,
                cached_tokens: 0
            })
        );
        assert!(scanner.done());
        assert_eq!(firsts, vec![0]);
        assert_eq!(scanner.events(), 6);
    }

    #[test]
    fn strips_only_the_usage_event() {
        let (out, scanner, _) = run(&[], true);
        assert_eq!(out, STREAM.replace(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
            "",
        ));
        assert!(scanner.usage().is_some());
    }

    /// After the first content only lines naming `"usage"` are parsed: a usage riding on the
    /// last content event, after per-event `"usage":null`, and prose mentioning usage.
    #[test]
    fn usage_after_content_is_read_wherever_it_rides() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"the word usage\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}],",
            "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        for strip in [false, true] {
            let mut scanner = SseScanner::new(Dialect::OpenAi, strip, 1 << 20);
            let fed = scanner.feed(Bytes::from_static(stream.as_bytes()));
            assert!(fed.first_content);
            // Usage riding on a content event is never cut out.
            assert_eq!(fed.forward, stream.as_bytes());
            assert_eq!(
                scanner.usage(),
                Some(Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    cached_tokens: 0
                })
            );
            assert_eq!(scanner.events(), 4);
            assert!(scanner.done());
        }
    }

    #[test]
    fn the_response_model_is_the_first_event_s() {
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
        scanner.feed(Bytes::from_static(
            b"data: {\"id\":\"x\",\"model\":\"m-1\",\"choices\":[]}\n\ndata: {\"model\":\"m-2\"}\n\n",
        ));
        assert_eq!(scanner.model(), Some("m-1"));
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
        scanner.feed(Bytes::from_static(b": comment\n\ndata: [DONE]\n\n"));
        assert_eq!(scanner.model(), None);
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
        scanner.feed(Bytes::from_static(b"data: {\"model\":\"par"));
        assert_eq!(scanner.model(), None);
    }

    fn feed_all(scanner: &mut SseScanner, chunks: &[&[u8]]) -> (Vec<u8>, Option<StreamFault>) {
        let mut out = Vec::new();
        for chunk in chunks {
            let fed = scanner.feed(Bytes::copy_from_slice(chunk));
            out.extend_from_slice(&fed.forward);
            if fed.fault.is_some() {
                return (out, fed.fault);
            }
        }
        let fed = scanner.finish();
        out.extend_from_slice(&fed.forward);
        (out, fed.fault)
    }

    #[test]
    fn lines_are_split_across_chunks_and_bounded() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        for chunk in [&b"event: a\r\nda"[..], b"ta: {}\n", b"\n", b"tail"] {
            lines
                .feed::<LineTooLong>(chunk, 16, |l| {
                    seen.push(String::from_utf8_lossy(l).into_owned());
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(seen, ["event: a", "data: {}", ""]);
        let too_long = lines.feed::<LineTooLong>(&[b'x'; 20], 16, |_| Ok(()));
        assert_eq!(too_long, Err(LineTooLong));
    }

    #[test]
    fn only_complete_lines_are_forwarded() {
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
        let fed = scanner.feed(Bytes::from_static(
            b"data: {\"choices\":[]}\n\ndata: {\"cho",
        ));
        assert_eq!(&fed.forward[..], b"data: {\"choices\":[]}\n\n");
        let fed = scanner.feed(Bytes::from_static(b"ices\":[]}\n\n"));
        assert_eq!(&fed.forward[..], b"data: {\"choices\":[]}\n\n");
        assert_eq!(scanner.events(), 2);
    }

    /// A malformed event stops the relay at the line before it, before or after content.
    #[test]
    fn malformed_events_are_faults() {
        let ok = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        for (stream, before) in [
            (format!("data: {{not json\n\n{ok}"), ""),
            (format!("{ok}data: {{\"choices\":[{{\"delta\n\n"), ok),
            (format!("{ok}data: garbage\n\n"), ok),
            (format!("{ok}data: {{\"usage\": nope}}\n\n"), ok),
        ] {
            let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
            let (out, fault) = feed_all(&mut scanner, &[stream.as_bytes()]);
            assert_eq!(fault, Some(StreamFault::Malformed), "{stream}");
            assert_eq!(String::from_utf8(out).unwrap(), before, "{stream}");
        }
    }

    /// A line that never ends is cut at the limit: the held bytes stay bounded.
    #[test]
    fn a_line_past_the_limit_is_too_large() {
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1024);
        let piece = [b'x'; 300];
        let mut fault = None;
        for _ in 0..10 {
            let fed = scanner.feed(Bytes::copy_from_slice(&piece));
            assert!(fed.forward.is_empty());
            if fed.fault.is_some() {
                fault = fed.fault;
                break;
            }
            assert!(scanner.partial.len() <= 1024);
        }
        assert_eq!(fault, Some(StreamFault::TooLarge));
        // A complete line over the limit, in one chunk, too.
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 16);
        let fed = scanner.feed(Bytes::from_static(
            b"data: {\"a\":\"0123456789abcdef\"}\n\n",
        ));
        assert_eq!(fed.fault, Some(StreamFault::TooLarge));
    }

    #[test]
    fn a_stream_without_done_is_told_apart() {
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
        let (out, fault) = feed_all(&mut scanner, &[&STREAM.as_bytes()[..STREAM.len() - 14]]);
        assert_eq!(fault, None);
        assert!(!scanner.done());
        assert!(String::from_utf8(out).unwrap().ends_with("\n\n"));
        // An unterminated `[DONE]` at the very end still counts.
        let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
        let (out, _) = feed_all(&mut scanner, &[STREAM.trim_end().as_bytes()]);
        assert!(scanner.done());
        assert_eq!(String::from_utf8(out).unwrap(), STREAM.trim_end());
    }

    /// Anthropic's stream, as its Messages API reference shows it (spaced JSON, so every
    /// event is parsed) and as the API writes it (compact, the deltas skipped).
    const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        "data: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-sonnet-4-5\", \"stop_reason\": null, \"usage\": {\"input_tokens\": 25, \"cache_read_input_tokens\": 5, \"output_tokens\": 1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\": \"content_block_stop\", \"index\": 0}\n\n",
        "event: message_delta\n",
        "data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\": \"message_stop\"}\n\n",
    );

    /// The Responses API's stream (its reference's event sequence, trimmed).
    const RESPONSES: &str = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_item.added\n",
        "data: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\" there\"}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\"usage\":{\"input_tokens\":37,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":11,\"total_tokens\":48}}}\n\n",
    );

    fn scan(
        dialect: Dialect,
        stream: &str,
        split: &[usize],
    ) -> (Vec<u8>, Option<StreamFault>, SseScanner) {
        let mut scanner = SseScanner::new(dialect, false, 1 << 20);
        let bytes = stream.as_bytes();
        let mut cuts: Vec<usize> = split.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let (mut out, mut fault, mut start) = (Vec::new(), None, 0);
        for end in cuts {
            let fed = scanner.feed(Bytes::copy_from_slice(&bytes[start..end]));
            out.extend_from_slice(&fed.forward);
            fault = fault.or(fed.fault);
            start = end;
        }
        let fed = scanner.finish();
        out.extend_from_slice(&fed.forward);
        (out, fault.or(fed.fault), scanner)
    }

    #[test]
    fn anthropic_streams_pass_through_with_their_usage_and_end() {
        let (out, fault, scanner) = scan(Dialect::Anthropic, ANTHROPIC, &[]);
        assert_eq!(out, ANTHROPIC.as_bytes());
        assert_eq!(fault, None);
        assert!(scanner.done() && scanner.seen_content());
        assert_eq!(scanner.model(), Some("claude-sonnet-4-5"));
        // Cached input counts as input (and as cached); the output count is message_delta's
        // cumulative one.
        assert_eq!(
            scanner.usage(),
            Some(Usage {
                prompt_tokens: 30,
                completion_tokens: 15,
                cached_tokens: 5
            })
        );
        // Cut before message_stop: not done (the relay calls it stream_no_done).
        let cut = &ANTHROPIC[..ANTHROPIC.find("event: message_stop").unwrap()];
        let (_, fault, scanner) = scan(Dialect::Anthropic, cut, &[]);
        assert_eq!(fault, None);
        assert!(!scanner.done());
    }

    #[test]
    fn a_tool_use_block_is_content() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        );
        let (_, _, scanner) = scan(Dialect::Anthropic, stream, &[]);
        assert!(scanner.seen_content());
    }

    #[test]
    fn responses_streams_pass_through_with_their_usage_and_end() {
        let (out, fault, scanner) = scan(Dialect::Responses, RESPONSES, &[]);
        assert_eq!(out, RESPONSES.as_bytes());
        assert_eq!(fault, None);
        assert!(scanner.done() && scanner.seen_content());
        assert_eq!(scanner.model(), Some("gpt-4.1-2025-04-14"));
        assert_eq!(
            scanner.usage(),
            Some(Usage {
                prompt_tokens: 37,
                completion_tokens: 11,
                cached_tokens: 0
            })
        );
    }

    /// An error event ends the stream as the provider's fault, in every dialect, before and
    /// after the first content; what came before it is forwarded, the event itself is not.
    #[test]
    fn error_events_are_faults_in_every_dialect() {
        let anthropic_error = "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
        let responses_error = "event: error\ndata: {\"type\":\"error\",\"code\":\"ERR_SOMETHING\",\"message\":\"Something went wrong\",\"param\":null,\"sequence_number\":1}\n\n";
        let responses_failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"x\"}}}\n\n";
        let openai_error =
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";
        let after = |stream: &str, marker: &str| stream[..stream.find(marker).unwrap()].to_owned();
        for (dialect, before, error) in [
            (
                Dialect::Anthropic,
                after(ANTHROPIC, "event: content_block_stop"),
                anthropic_error,
            ),
            (
                Dialect::Anthropic,
                after(ANTHROPIC, "event: content_block_start"),
                anthropic_error,
            ),
            (
                Dialect::Responses,
                after(RESPONSES, "event: response.completed"),
                responses_error,
            ),
            (
                Dialect::Responses,
                after(RESPONSES, "event: response.completed"),
                responses_failed,
            ),
            (
                Dialect::OpenAi,
                after(STREAM, "data: {\"choices\":[{\"delta\":{},"),
                openai_error,
            ),
            (Dialect::OpenAi, String::new(), openai_error),
        ] {
            let stream = format!("{before}{error}");
            let (out, fault, _) = scan(dialect, &stream, &[]);
            assert_eq!(
                fault,
                Some(StreamFault::ErrorEvent),
                "{dialect:?}: {stream}"
            );
            let out = String::from_utf8(out).unwrap();
            assert!(
                out.starts_with(&before) && !out.contains("rror\""),
                "{dialect:?}: {out}"
            );
        }
    }

    #[test]
    fn deltas_are_told_by_their_type_first_or_last() {
        let bulk = |d: Dialect, s: &str| d.is_bulk(s.as_bytes());
        let a = Dialect::Anthropic;
        assert!(bulk(
            a,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#
        ));
        assert!(bulk(
            a,
            r#"{"delta":{"text":"x","type":"text_delta"},"index":0,"type":"content_block_delta"}"#
        ));
        assert!(!bulk(a, r#"{"type":"content_block_deltas"}"#));
        assert!(!bulk(a, r#"{"type":"message_stop"}"#));
        assert!(!bulk(a, r#"{"delta":{"type":"content_block_delta"}}"#));
        assert!(!bulk(a, r#"{"text":"\"type\":\"content_block_delta\"}"#));
        assert!(!bulk(a, r#"{"type": "content_block_delta"}"#));
        let r = Dialect::Responses;
        assert!(bulk(
            r,
            r#"{"content_index":0,"delta":"Hi","type":"response.output_text.delta"}"#
        ));
        assert!(!bulk(r, r#"{"type":"response.completed","response":{}}"#));
        assert!(!bulk(Dialect::OpenAi, r#"{"type":"content_block_delta"}"#));
    }

    #[test]
    fn typed_events_that_are_not_json_are_malformed() {
        for dialect in [Dialect::Anthropic, Dialect::Responses] {
            let stream = format!(
                "{}data: {{\"type\":\"content_block_delta\",\"delta\n\n",
                ANTHROPIC
            );
            let (_, fault, _) = scan(dialect, &stream, &[]);
            assert_eq!(fault, Some(StreamFault::Malformed), "{dialect:?}");
            let (_, fault, _) = scan(dialect, "data: not json\n\n", &[]);
            assert_eq!(fault, Some(StreamFault::Malformed), "{dialect:?}");
        }
    }

    #[test]
    fn an_event_name_whose_data_was_a_fault_is_told() {
        let head = RESPONSES
            .split("event: response.output_text.delta")
            .next()
            .unwrap();
        let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n";
        let bad = "event: response.output_text.delta\ndata: {\"delta\n\n";
        let stream = format!("{head}{delta}{bad}");
        for cut in [stream.len(), stream.len() - bad.len() + 10, 40] {
            // Fed as the relay feeds it: up to the first fault.
            let mut scanner = SseScanner::new(Dialect::Responses, false, 1 << 20);
            let mut out = Vec::new();
            let mut fault = None;
            for part in [&stream[..cut], &stream[cut..]] {
                let fed = scanner.feed(Bytes::copy_from_slice(part.as_bytes()));
                out.extend_from_slice(&fed.forward);
                if let Some(f) = fed.fault {
                    fault = Some(f);
                    break;
                }
            }
            assert_eq!(fault, Some(StreamFault::Malformed), "cut {cut}");
            assert!(scanner.dangling_event_name(), "cut {cut}");
            assert!(String::from_utf8(out)
                .unwrap()
                .ends_with("}\n\nevent: response.output_text.delta\n"));
        }
        // A whole event leaves no name dangling.
        let (_, fault, scanner) = scan(Dialect::Responses, &format!("{head}{delta}"), &[]);
        assert_eq!(fault, None);
        assert!(!scanner.dangling_event_name());
    }

    #[test]
    fn error_events_are_written_in_the_stream_s_dialect() {
        let body = br#"{"error":{"message":"m","type":"api_error","param":null,"code":"c"}}"#;
        let event =
            |d: Dialect| String::from_utf8(d.error_event("api_error", "c", "m", body)).unwrap();
        assert_eq!(
            event(Dialect::OpenAi),
            format!("data: {}\n\n", std::str::from_utf8(body).unwrap())
        );
        let data = |e: String| -> serde_json::Value {
            let line = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap()
                .to_owned();
            assert!(e.starts_with("event: error\n") && e.ends_with("\n\n"));
            serde_json::from_str(&line).unwrap()
        };
        let anthropic = data(event(Dialect::Anthropic));
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "api_error");
        assert_eq!(anthropic["error"]["message"], "m");
        let responses = data(event(Dialect::Responses));
        assert_eq!(
            (responses["type"].as_str(), responses["code"].as_str()),
            (Some("error"), Some("c"))
        );
    }

    proptest! {
        /// Arbitrary bytes cut anywhere: no panic, the held tail never exceeds the limit, and
        /// without stripping the client gets a prefix of what the upstream sent.
        #[test]
        fn arbitrary_input_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..600),
            split in proptest::collection::vec(0usize..600, 0..8),
            strip: bool,
            limit in 1usize..200,
        ) {
            let mut scanner = SseScanner::new(Dialect::OpenAi, strip, limit);
            let mut cuts: Vec<usize> = split.iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(input.len());
            let mut out = Vec::new();
            let mut start = 0;
            let mut fault = None;
            for end in cuts {
                let fed = scanner.feed(Bytes::copy_from_slice(&input[start..end]));
                out.extend_from_slice(&fed.forward);
                prop_assert!(scanner.partial.len() <= limit);
                start = end;
                if fed.fault.is_some() {
                    fault = fed.fault;
                    break;
                }
            }
            if fault.is_none() {
                out.extend_from_slice(&scanner.finish().forward);
            }
            if !strip {
                prop_assert!(input.starts_with(&out));
            }
        }

        /// Well-formed events with random content, cut anywhere: never a fault, bytes kept.
        #[test]
        fn well_formed_streams_are_never_faults(
            words in proptest::collection::vec("[a-zA-Z0-9 \\\\\"{}:,]{0,12}", 1..8),
            split in proptest::collection::vec(0usize..2000, 0..10),
        ) {
            let mut stream = String::new();
            for word in &words {
                let event = serde_json::json!({"choices": [{"delta": {"content": word}}]});
                stream.push_str(&format!("data: {event}\n\n"));
            }
            stream.push_str("data: [DONE]\n\n");
            let bytes = stream.as_bytes();
            let mut cuts: Vec<usize> = split.iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let mut scanner = SseScanner::new(Dialect::OpenAi, false, 1 << 20);
            let mut out = Vec::new();
            let mut start = 0;
            for end in cuts {
                let fed = scanner.feed(Bytes::copy_from_slice(&bytes[start..end]));
                prop_assert_eq!(fed.fault, None);
                out.extend_from_slice(&fed.forward);
                start = end;
            }
            out.extend_from_slice(&scanner.finish().forward);
            prop_assert_eq!(out, bytes);
            prop_assert!(scanner.done());
        }

        /// However the stream is cut into chunks, the scanner sees the same events and the
        /// client gets the same bytes.
        #[test]
        fn typed_streams_scan_the_same_however_chunked(split in proptest::collection::vec(0usize..2000, 0..12)) {
            for (dialect, stream) in [(Dialect::Anthropic, ANTHROPIC), (Dialect::Responses, RESPONSES)] {
                let (out, fault, scanner) = scan(dialect, stream, &split);
                let (_, _, whole) = scan(dialect, stream, &[]);
                prop_assert_eq!(out, stream.as_bytes());
                prop_assert_eq!(fault, None);
                prop_assert!(scanner.done());
                prop_assert_eq!(scanner.usage(), whole.usage());
            }
        }

        #[test]
        fn any_chunking_gives_the_same_result(split in proptest::collection::vec(0usize..400, 0..12), strip: bool) {
            let (out, scanner, firsts) = run(&split, strip);
            let (want, _, _) = run(&[], strip);
            prop_assert_eq!(out, want);
            prop_assert_eq!(scanner.usage(), Some(Usage { prompt_tokens: 7, completion_tokens: 2, cached_tokens: 0 }));
            prop_assert!(scanner.done());
            prop_assert_eq!(firsts.len(), 1);
        }
    }
}

/// The mock upstream's streams and fault modes, as the scanner sees them: each dialect's
/// faults are what the scanner catches (here, where the scanner may be imported; the mock may
/// not import it).
#[cfg(test)]
mod mock_streams {
    use super::{Dialect, SseScanner};
    use crate::config::Api;
    use crate::mock::server::StreamFaults;
    use crate::mock::MockRequest;
    use crate::providers::{StreamFault, Usage};

    const RESPONSES: &[u8] = br#"{"model":"r","instructions":"be brief","input":[{"role":"user","content":"first question"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"an answer"}]},{"role":"user","content":[{"type":"input_text","text":"hello there world"}]}],"stream":true}"#;

    /// A request of each dialect, streamed.
    fn requests() -> [MockRequest; 3] {
        let chat = br#"{"model":"m","messages":[{"role":"user","content":"a b c"}],"stream":true}"#;
        let anthropic = br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"a b c"}],"stream":true}"#;
        let responses = br#"{"model":"m","input":"a b c","stream":true}"#;
        [
            MockRequest::parse(Api::Chat, chat).unwrap(),
            MockRequest::parse_anthropic(anthropic).unwrap(),
            MockRequest::parse(Api::Responses, responses).unwrap(),
        ]
    }

    /// Scans `events` in `dialect`: the fault, and the index of the event carrying the first
    /// content.
    fn scan(
        dialect: Dialect,
        events: &[bytes::Bytes],
    ) -> (Option<StreamFault>, Option<usize>, bool) {
        let mut scanner = SseScanner::new(dialect, false, 1 << 16);
        let mut first = None;
        for (i, event) in events.iter().enumerate() {
            let fed = scanner.feed(event.clone());
            if fed.first_content {
                first = Some(i);
            }
            if fed.fault.is_some() {
                return (fed.fault, first, scanner.done());
            }
        }
        (scanner.finish().fault, first, scanner.done())
    }

    #[test]
    fn each_dialect_s_faults_are_what_its_scanner_sees() {
        for request in requests() {
            let dialect = request.dialect;
            let faults = StreamFaults::of(dialect);
            let events = request.stream_events("id", 1, 0);
            let (fault, first, done) = scan(dialect, &events);
            assert_eq!((fault, done), (None, true), "{dialect:?}");
            // The late faults follow the first content.
            assert_eq!(first, Some(faults.first_content - 1), "{dialect:?}");
            let late = |last: &'static [u8]| {
                let mut broken = events[..faults.first_content].to_vec();
                broken.push(bytes::Bytes::from_static(last));
                scan(dialect, &broken).0
            };
            assert_eq!(late(faults.malformed_late), Some(StreamFault::Malformed));
            assert_eq!(late(faults.error_event), Some(StreamFault::ErrorEvent));
            assert_eq!(late(faults.end), None, "{dialect:?}");
            let only = vec![bytes::Bytes::from_static(faults.malformed)];
            assert_eq!(scan(dialect, &only).0, Some(StreamFault::Malformed));
            let mut no_end = events.clone();
            no_end.pop();
            let (fault, _, done) = scan(dialect, &no_end);
            assert_eq!((fault, done), (None, false), "{dialect:?}");
            let mut ended = events[..faults.first_content].to_vec();
            ended.push(bytes::Bytes::from_static(faults.end));
            assert!(scan(dialect, &ended).2, "{dialect:?}");
        }
    }

    #[test]
    fn the_scanner_reads_the_mock_s_responses_stream() {
        let req = MockRequest::parse(Api::Responses, RESPONSES).unwrap();
        let mut scanner = SseScanner::new(Dialect::Responses, false, 1 << 16);
        for event in req.stream_events("resp_1", 1, 0) {
            let fed = scanner.feed(event.clone());
            assert_eq!((fed.fault, &fed.forward), (None, &event));
        }
        assert!(scanner.done());
        assert_eq!(
            scanner.usage(),
            Some(Usage {
                prompt_tokens: 21,
                completion_tokens: 5,
                cached_tokens: 0
            })
        );
        assert_eq!(scanner.model(), Some("r"));
    }
}
