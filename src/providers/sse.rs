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

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{StreamFault, Usage};

/// What the scanner reads of one event (the rest is skipped).
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
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
    /// The unterminated tail of the chunks so far: at most `max_line` bytes.
    partial: Vec<u8>,
    max_line: usize,
    strip_usage: bool,
    skip_blank: bool,
    seen_content: bool,
    usage: Option<Usage>,
    model: Option<String>,
    done: bool,
    events: u64,
}

impl SseScanner {
    /// `strip_usage`: drop usage-only events (the client did not ask for them); `max_line`:
    /// the longest line (event) accepted.
    pub fn new(strip_usage: bool, max_line: usize) -> Self {
        Self {
            partial: Vec::new(),
            max_line,
            strip_usage,
            skip_blank: false,
            seen_content: false,
            usage: None,
            model: None,
            done: false,
            events: 0,
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The response model: the first parsed event naming one (upstreams name it in every
    /// event, and the first event is always parsed).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// `[DONE]` was seen: the stream completed normally.
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
            return if std::mem::take(&mut self.skip_blank) {
                Line::Strip
            } else {
                Line::Keep
            };
        }
        self.skip_blank = false;
        let verdict = self.inspect(line);
        self.skip_blank = verdict == Line::Strip;
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
        if data == b"[DONE]" {
            self.done = true;
            return Line::Keep;
        }
        // Once content was seen only a usage event matters: a line without the key needs no
        // parse (most of a stream's events; a key spelled with escapes would be missed, and no
        // OpenAI-compatible upstream writes one), only its framing is checked.
        if self.seen_content && USAGE_KEY.find(data).is_none() {
            let framed = data.first() == Some(&b'{') && data.last() == Some(&b'}');
            return if framed {
                Line::Keep
            } else {
                Line::Bad(StreamFault::Malformed)
            };
        }
        let Ok(event) = serde_json::from_slice::<EventHead<'_>>(data) else {
            return Line::Bad(StreamFault::Malformed);
        };
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
        let mut scanner = SseScanner::new(strip, 1 << 20);
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
    fn passes_through_and_reads_usage() {
        let (out, scanner, firsts) = run(&[], false);
        assert_eq!(out, STREAM);
        assert_eq!(
            scanner.usage(),
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 2
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
            let mut scanner = SseScanner::new(strip, 1 << 20);
            let fed = scanner.feed(Bytes::from_static(stream.as_bytes()));
            assert!(fed.first_content);
            // Usage riding on a content event is never cut out.
            assert_eq!(fed.forward, stream.as_bytes());
            assert_eq!(
                scanner.usage(),
                Some(Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4
                })
            );
            assert_eq!(scanner.events(), 4);
            assert!(scanner.done());
        }
    }

    #[test]
    fn the_response_model_is_the_first_event_s() {
        let mut scanner = SseScanner::new(false, 1 << 20);
        scanner.feed(Bytes::from_static(
            b"data: {\"id\":\"x\",\"model\":\"m-1\",\"choices\":[]}\n\ndata: {\"model\":\"m-2\"}\n\n",
        ));
        assert_eq!(scanner.model(), Some("m-1"));
        let mut scanner = SseScanner::new(false, 1 << 20);
        scanner.feed(Bytes::from_static(b": comment\n\ndata: [DONE]\n\n"));
        assert_eq!(scanner.model(), None);
        let mut scanner = SseScanner::new(false, 1 << 20);
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
        let mut scanner = SseScanner::new(false, 1 << 20);
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
            let mut scanner = SseScanner::new(false, 1 << 20);
            let (out, fault) = feed_all(&mut scanner, &[stream.as_bytes()]);
            assert_eq!(fault, Some(StreamFault::Malformed), "{stream}");
            assert_eq!(String::from_utf8(out).unwrap(), before, "{stream}");
        }
    }

    /// A line that never ends is cut at the limit: the held bytes stay bounded.
    #[test]
    fn a_line_past_the_limit_is_too_large() {
        let mut scanner = SseScanner::new(false, 1024);
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
        let mut scanner = SseScanner::new(false, 16);
        let fed = scanner.feed(Bytes::from_static(
            b"data: {\"a\":\"0123456789abcdef\"}\n\n",
        ));
        assert_eq!(fed.fault, Some(StreamFault::TooLarge));
    }

    #[test]
    fn a_stream_without_done_is_told_apart() {
        let mut scanner = SseScanner::new(false, 1 << 20);
        let (out, fault) = feed_all(&mut scanner, &[&STREAM.as_bytes()[..STREAM.len() - 14]]);
        assert_eq!(fault, None);
        assert!(!scanner.done());
        assert!(String::from_utf8(out).unwrap().ends_with("\n\n"));
        // An unterminated `[DONE]` at the very end still counts.
        let mut scanner = SseScanner::new(false, 1 << 20);
        let (out, _) = feed_all(&mut scanner, &[STREAM.trim_end().as_bytes()]);
        assert!(scanner.done());
        assert_eq!(String::from_utf8(out).unwrap(), STREAM.trim_end());
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
            let mut scanner = SseScanner::new(strip, limit);
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
            let mut scanner = SseScanner::new(false, 1 << 20);
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
        fn any_chunking_gives_the_same_result(split in proptest::collection::vec(0usize..400, 0..12), strip: bool) {
            let (out, scanner, firsts) = run(&split, strip);
            let (want, _, _) = run(&[], strip);
            prop_assert_eq!(out, want);
            prop_assert_eq!(scanner.usage(), Some(Usage { prompt_tokens: 7, completion_tokens: 2 }));
            prop_assert!(scanner.done());
            prop_assert_eq!(firsts.len(), 1);
        }
    }
}
