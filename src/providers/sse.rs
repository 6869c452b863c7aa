//! A side scanner over a relayed SSE stream.
//!
//! The stream goes to the client as it arrives; the scanner only looks at complete `data:`
//! lines to note the first content chunk (time to first token), the usage chunk, and
//! `[DONE]`. When the gateway itself asked the upstream for usage (the client did not), the
//! usage-only event is cut out so the client sees exactly the stream it asked for; only then
//! are bytes held back, and only up to the end of the current line.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Usage;

#[derive(Deserialize)]
struct Event<'a> {
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

/// What one fed chunk produced.
pub struct Fed {
    /// Bytes to send to the client now (the chunk itself unless stripping).
    pub forward: Bytes,
    /// This chunk carried the first content.
    pub first_content: bool,
}

/// The scanner's state across chunks.
#[derive(Default)]
pub struct SseScanner {
    partial: Vec<u8>,
    strip_usage: bool,
    skip_blank: bool,
    seen_content: bool,
    usage: Option<Usage>,
    model: Option<String>,
    done: bool,
    events: u64,
}

impl SseScanner {
    /// `strip_usage`: drop usage-only events (the client did not ask for them).
    pub fn new(strip_usage: bool) -> Self {
        Self {
            strip_usage,
            ..Self::default()
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

    /// Number of `data:` events seen.
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn feed(&mut self, chunk: Bytes) -> Fed {
        let seen_before = self.seen_content;
        let forward = if self.strip_usage {
            self.feed_stripping(&chunk)
        } else {
            self.feed_lines(&chunk);
            chunk
        };
        Fed {
            forward,
            first_content: !seen_before && self.seen_content,
        }
    }

    /// Whatever is held back at the end of the stream (an unterminated last line).
    pub fn finish(&mut self) -> Bytes {
        if self.strip_usage && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            if !self.inspect(&line) {
                return Bytes::from(line);
            }
        }
        Bytes::new()
    }

    fn feed_lines(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if self.partial.is_empty() {
                self.inspect(&rest[..nl]);
            } else {
                self.partial.extend_from_slice(&rest[..nl]);
                let line = std::mem::take(&mut self.partial);
                self.inspect(&line);
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    fn feed_stripping(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(chunk.len() + self.partial.len());
        let mut rest = chunk;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let blank = line.iter().all(|b| *b == b'\r');
            if blank && self.skip_blank {
                self.skip_blank = false;
                continue;
            }
            self.skip_blank = false;
            if self.inspect(&line) {
                self.skip_blank = true;
                continue;
            }
            out.extend_from_slice(&line);
            out.extend_from_slice(b"\n");
        }
        self.partial.extend_from_slice(rest);
        out.freeze()
    }

    /// Looks at one complete line; true when it is a usage-only event to strip.
    fn inspect(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return false;
        };
        let data = data.trim_ascii();
        self.events += 1;
        if data == b"[DONE]" {
            self.done = true;
            return false;
        }
        // Once content was seen only a usage event matters: a line without the key needs no
        // parse (most of a stream's events; a key spelled with escapes would be missed, and no
        // OpenAI-compatible upstream writes one).
        if self.seen_content && USAGE_KEY.find(data).is_none() {
            return false;
        }
        let Ok(event) = serde_json::from_slice::<Event<'_>>(data) else {
            return false;
        };
        if self.model.is_none() {
            self.model = event.model.map(std::borrow::Cow::into_owned);
        }
        let choices = event.choices.unwrap_or_default();
        if !self.seen_content && choices.iter().any(has_content) {
            self.seen_content = true;
        }
        if let Some(usage) = event.usage {
            self.usage = Some(usage);
            return self.strip_usage && choices.is_empty();
        }
        false
    }
}

fn has_content(choice: &Choice<'_>) -> bool {
    let Some(delta) = &choice.delta else {
        return false;
    };
    let non_empty =
        |v: &Option<&RawValue>| v.is_some_and(|raw| !matches!(raw.get(), "null" | "\"\"" | "[]"));
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
        let mut scanner = SseScanner::new(strip);
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
        out.extend_from_slice(&scanner.finish());
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
            let mut scanner = SseScanner::new(strip);
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
        let mut scanner = SseScanner::new(false);
        scanner.feed(Bytes::from_static(
            b"data: {\"id\":\"x\",\"model\":\"m-1\",\"choices\":[]}\n\ndata: {\"model\":\"m-2\"}\n\n",
        ));
        assert_eq!(scanner.model(), Some("m-1"));
        let mut scanner = SseScanner::new(false);
        scanner.feed(Bytes::from_static(b": comment\n\ndata: [DONE]\n\n"));
        assert_eq!(scanner.model(), None);
        let mut scanner = SseScanner::new(false);
        scanner.feed(Bytes::from_static(b"data: {\"model\":\"par"));
        assert_eq!(scanner.model(), None);
    }

    proptest! {
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
