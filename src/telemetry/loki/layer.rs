//! The `tracing` layer that turns each event into a [`Record`] and hands it to the shipper.
//!
//! Everything here runs on the thread that logs, so it does only CPU work: read the clock,
//! format one JSON line, and `try_send` on a bounded channel — no I/O, no lock held across I/O,
//! never a wait. A full channel drops the record and counts `dropped_full`; after shutdown
//! began, arrivals are counted `dropped_shutdown`. `queue_depth` is raised before the send
//! and lowered again if it fails, so the gauge never goes negative.
//!
//! Trace context comes from the span the logging thread works for ([`scope::ids`]: the request
//! being handled, or the attempt writing the line): its trace and span ids go into the line
//! and into the record. Events of the shipper itself, of OpenTelemetry
//! and of the HTTP stack are never shipped ([`is_excluded`]): the shipper never logs into
//! itself.
//!
//! A line is one JSON object with unique keys: `level`, `target`, `msg`, the event's fields,
//! `trace_id` and `span_id`. A field whose name the line already uses (`target = ...`), or
//! that could meet such a renamed field or an error's `NAME.sources`, is written as
//! `field.NAME` ([`FieldKey`]).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::{error::TrySendError, Sender};
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::batch::Record;
use crate::telemetry::line::{push_f64, Float};
use crate::telemetry::metrics::log_stats::LogStats;
use crate::telemetry::traces::{propagation, scope};

/// Target of the shipper's own diagnostics: stderr sees them, Loki never does.
pub const SELF_TARGET: &str = "gatewayz::loki_shipper";

/// Targets never shipped: ourselves, OpenTelemetry's internals and the HTTP stack the
/// shipper pushes with (their events would be caused by shipping and feed back into it).
const EXCLUDED: &[&str] = &[
    SELF_TARGET,
    "opentelemetry",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
];

/// Whether events of `target` stay out of Loki.
pub fn is_excluded(target: &str) -> bool {
    EXCLUDED.iter().any(|prefix| {
        target.starts_with(prefix)
            && matches!(
                target.as_bytes().get(prefix.len()),
                None | Some(b':' | b'_')
            )
    })
}

/// State the layer shares with the shipper.
#[derive(Debug)]
pub struct Shared {
    pub stats: Arc<LogStats>,
    /// Cleared when shutdown begins: later events are counted, not queued.
    pub accepting: AtomicBool,
    /// Wakes a gathering shipper early: the channel is more than half full.
    pub filling: tokio::sync::Notify,
}

/// The layer. Cheap to clone; all clones feed the same shipper.
#[derive(Clone)]
pub struct LokiLayer {
    /// `None`: the disabled layer (no `[telemetry.loki]`), which ignores every event.
    tx: Option<Sender<Record>>,
    shared: Arc<Shared>,
}

impl LokiLayer {
    pub(super) fn new(tx: Sender<Record>, shared: Arc<Shared>) -> Self {
        Self {
            tx: Some(tx),
            shared,
        }
    }

    /// A layer that ships nothing (no `[telemetry.loki]`).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            shared: Arc::new(Shared {
                stats: Arc::default(),
                accepting: AtomicBool::new(false),
                filling: tokio::sync::Notify::new(),
            }),
        }
    }

    fn hand_off(&self, tx: &Sender<Record>, record: Record) {
        let stats = &self.shared.stats;
        if !self.shared.accepting.load(Ordering::Relaxed) {
            stats.dropped_shutdown.fetch_add(1, Ordering::Relaxed);
            return;
        }
        stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        let sent = tx.try_send(record);
        if sent.is_ok() && tx.capacity() * 2 < tx.max_capacity() {
            self.shared.filling.notify_one();
        }
        if let Err(e) = sent {
            stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            let counter = match e {
                TrySendError::Full(_) => &stats.dropped_full,
                TrySendError::Closed(_) => &stats.dropped_shutdown,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S> Layer<S> for LokiLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(tx) = &self.tx else {
            return;
        };
        let meta = event.metadata();
        if is_excluded(meta.target()) {
            return;
        }
        let ids = scope::ids();
        let ts_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let level = level_name(*meta.level());
        // The visitor writes every member straight into this thread's buffer; the record gets
        // one allocation of the line's exact size (no growth on the way, no slack held in the
        // backlog).
        let mut line = crate::telemetry::line::buffer();
        let keys = Keys::of_callsite(meta);
        if *keys.target == *meta.target() {
            line.push_str(&keys.opening);
        } else {
            // Metadata built at run time with another target on the same callsite.
            Keys::open_into(&mut line, meta);
        }
        let mut visitor = LineVisitor { line, keys };
        event.record(&mut visitor);
        let mut line = visitor.line;
        if let Some((trace_id, span_id)) = ids {
            line.push_str(",\"trace_id\":\"");
            push_ascii(&mut line, &propagation::trace_id_hex(trace_id));
            line.push_str("\",\"span_id\":\"");
            push_ascii(&mut line, &propagation::span_id_hex(span_id));
            line.push('"');
        }
        line.push('}');
        let record = Record {
            ts_ns,
            level,
            line: line.as_str().to_owned(),
            ids,
        };
        crate::telemetry::line::keep(line);
        self.hand_off(tx, record);
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Keys every line has, or may have, besides the event's fields.
const FIXED_KEYS: &[&str] = &["level", "target", "msg", "trace_id", "span_id"];

/// The JSON key of an event field: the message is `msg`; a field named like a fixed key, or
/// starting with `field.`, or ending with `.sources` (the key of an error's causes) is
/// prefixed with `field.`, so no two members of a line share a key.
struct FieldKey<'a> {
    prefixed: bool,
    name: &'a str,
}

impl<'a> FieldKey<'a> {
    fn of(name: &'a str) -> Self {
        if name == "message" {
            return Self {
                prefixed: false,
                name: "msg",
            };
        }
        let prefixed =
            FIXED_KEYS.contains(&name) || name.starts_with("field.") || name.ends_with(".sources");
        Self { prefixed, name }
    }

    /// Writes the key, followed by `suffix`, as a JSON string.
    fn write(&self, out: &mut String, suffix: &str) {
        out.push('"');
        if self.prefixed {
            out.push_str("field.");
        }
        escape_into(out, self.name);
        out.push_str(suffix);
        out.push('"');
    }
}

/// Writes the message (as `msg`) and the other fields as `,"key":value` JSON members.
struct LineVisitor {
    line: String,
    /// The event's callsite's keys, rendered once.
    keys: Rc<Keys>,
}

impl LineVisitor {
    fn key(&mut self, field: &Field) {
        match self.keys.of(field) {
            Some(key) => self.line.push_str(key),
            None => Keys::render_into(&mut self.line, field.name()),
        }
    }
}

/// A callsite's field keys as they open a member, `,"name":`, in the fields' order: a field's
/// key is worked out ([`FieldKey`]) and escaped once per callsite and thread, not per event;
/// so is the line's opening, its level and target.
struct Keys {
    callsite: Identifier,
    /// `{"level":"info","target":"gatewayz::http::finish"`, for events of `target`.
    opening: Box<str>,
    target: Box<str>,
    keys: Box<[Box<str>]>,
}

/// How many callsites' keys a thread keeps (the access line's and a few others', met again
/// and again; the oldest goes first).
const KEYS_KEPT: usize = 8;

thread_local! {
    /// The keys of the callsites this thread logged from last, newest first.
    static KEYS: RefCell<Vec<Rc<Keys>>> = const { RefCell::new(Vec::new()) };
}

impl Keys {
    /// The keys of the fields of `meta`'s callsite: this thread's, or rendered now and kept.
    fn of_callsite(meta: &Metadata<'_>) -> Rc<Keys> {
        let callsite = meta.callsite();
        let kept = KEYS.try_with(|kept| {
            let mut kept = kept.try_borrow_mut().ok()?;
            if let Some(at) = kept.iter().position(|k| k.callsite == callsite) {
                return Some(kept[at].clone());
            }
            let keys = Rc::new(Self::render(meta));
            kept.insert(0, keys.clone());
            kept.truncate(KEYS_KEPT);
            Some(keys)
        });
        kept.ok()
            .flatten()
            .unwrap_or_else(|| Rc::new(Self::render(meta)))
    }

    fn render(meta: &Metadata<'_>) -> Self {
        let keys = meta
            .fields()
            .iter()
            .map(|field| {
                let mut key = String::new();
                Self::render_into(&mut key, field.name());
                key.into_boxed_str()
            })
            .collect();
        let mut opening = String::new();
        Self::open_into(&mut opening, meta);
        Self {
            callsite: meta.callsite(),
            opening: opening.into_boxed_str(),
            target: meta.target().into(),
            keys,
        }
    }

    /// A line's opening: `{"level":"info","target":"gatewayz::http::finish"`.
    fn open_into(out: &mut String, meta: &Metadata<'_>) {
        out.push_str("{\"level\":\"");
        out.push_str(level_name(*meta.level()));
        out.push_str("\",\"target\":");
        json_str(out, meta.target());
    }

    /// `,"name":` for a field called `name`.
    fn render_into(out: &mut String, name: &str) {
        out.push(',');
        FieldKey::of(name).write(out, "");
        out.push(':');
    }

    /// `field`'s rendered key, if it is one of this callsite's fields.
    fn of(&self, field: &Field) -> Option<&str> {
        if field.callsite() != self.callsite {
            return None;
        }
        self.keys.get(field.index()).map(|k| &**k)
    }
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_str(&mut self.line, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            push_f64(&mut self.line, value, Float::Display);
        } else {
            let _ = write!(self.line, "\"{value}\"");
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
        let mut next = value.source();
        if next.is_none() {
            return;
        }
        self.line.push(',');
        FieldKey::of(field.name()).write(&mut self.line, ".sources");
        self.line.push_str(":[");
        let mut first = true;
        while let Some(source) = next {
            if !first {
                self.line.push(',');
            }
            first = false;
            self.record_display_str(&format_args!("{source}"));
            next = source.source();
        }
        self.line.push(']');
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        self.record_display_str(&format_args!("{value:?}"));
    }
}

impl LineVisitor {
    /// Writes `args` as a JSON string, escaping on the fly (no intermediate `String`).
    fn record_display_str(&mut self, args: &std::fmt::Arguments<'_>) {
        self.line.push('"');
        let _ = JsonEscape(&mut self.line).write_fmt(*args);
        self.line.push('"');
    }
}

/// A `fmt::Write` that escapes what it is given for a JSON string.
struct JsonEscape<'a>(&'a mut String);

impl std::fmt::Write for JsonEscape<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// Appends hex digits (ASCII, so always UTF-8).
fn push_ascii(out: &mut String, hex: &[u8]) {
    out.push_str(std::str::from_utf8(hex).unwrap_or_default());
}

/// Whether `s` holds a byte a JSON string must escape: `"`, `\` or a control character.
/// Eight bytes at a time: a word has a byte below 0x20 when subtracting 0x20 from each byte
/// borrows into a byte whose top bit was clear, and a byte equal to `"` or `\` when its XOR
/// with that byte is zero (the same test, below 1); exact for "any byte", which is all this
/// asks.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH != 0;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_ne_bytes(bytes);
        if below(w, 0x20)
            || below(w ^ (ONES * u64::from(b'"')), 1)
            || below(w ^ (ONES * u64::from(b'\\')), 1)
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Appends `s` escaped for the inside of a JSON string.
fn escape_into(out: &mut String, s: &str) {
    // Field names and most values need no escape: one pass to see, one copy.
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_every_byte_that_needs_an_escape_wherever_it_is() {
        for len in 0..20 {
            for at in 0..len {
                for b in 0u8..=255 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let expected = b == b'"' || b == b'\\' || b < 0x20;
                    assert_eq!(needs_escape(&bytes), expected, "{b:#04x} at {at} of {len}");
                }
            }
            // Bytes next to the special ones (0x1f/0x20, 0x21/0x22/0x23, 0x5b/0x5c/0x5d) and
            // with the top bit set do not trip it.
            let near: Vec<u8> = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff]
                .into_iter()
                .cycle()
                .take(len)
                .collect();
            assert!(!needs_escape(&near), "{near:?}");
        }
    }

    #[test]
    fn escapes_json() {
        let mut out = String::new();
        json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
        // The no-escape fast path, and escapes at either end.
        for (raw, json) in [
            ("plain é ~", r#""plain é ~""#),
            ("\u{1f}x", r#""\u001fx""#),
            ("x\"", r#""x\"""#),
            ("", r#""""#),
        ] {
            let mut out = String::new();
            json_str(&mut out, raw);
            assert_eq!(out, json);
        }
    }

    /// A JSON object whose keys must be unique (serde_json's `Value` keeps the last).
    struct StrictObject(std::collections::BTreeMap<String, serde_json::Value>);

    impl<'de> serde::Deserialize<'de> for StrictObject {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Keys;
            impl<'de> serde::de::Visitor<'de> for Keys {
                type Value = StrictObject;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<StrictObject, A::Error> {
                    let mut out = std::collections::BTreeMap::new();
                    while let Some(key) = map.next_key::<String>()? {
                        let value = map.next_value()?;
                        if out.insert(key.clone(), value).is_some() {
                            return Err(serde::de::Error::custom(format!("duplicate key {key}")));
                        }
                    }
                    Ok(StrictObject(out))
                }
            }
            d.deserialize_map(Keys)
        }
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// The lines `emit` logs for a span with valid ids.
    fn lines_of(emit: impl FnOnce()) -> Vec<String> {
        use tracing_subscriber::layer::SubscriberExt;
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let layer = LokiLayer::new(
            tx,
            Arc::new(Shared {
                stats: Arc::default(),
                accepting: AtomicBool::new(true),
                filling: tokio::sync::Notify::new(),
            }),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            scope::with(
                &crate::telemetry::traces::span::tests::sampled_context(),
                emit,
            );
        });
        let mut lines = Vec::new();
        while let Ok(record) = rx.try_recv() {
            lines.push(record.line);
        }
        lines
    }

    #[test]
    fn fields_named_like_fixed_keys_are_prefixed_not_repeated() {
        let lines = lines_of(|| {
            let level = Outer(std::io::Error::other("inner"));
            let e = Outer(std::io::Error::other("cause"));
            tracing::info!(
                target = "t-field",
                level = &level as &dyn std::error::Error,
                msg = "m-field",
                trace_id = "tid-field",
                span_id = "sid-field",
                field.x = 1,
                e.sources = "s-field",
                e = &e as &dyn std::error::Error,
                "the message"
            );
        });
        assert_eq!(lines.len(), 1);
        let StrictObject(line) =
            serde_json::from_str(&lines[0]).unwrap_or_else(|err| panic!("{err}: {}", lines[0]));
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["level"], "info");
        assert_eq!(line["msg"], "the message");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
        assert_eq!(line["field.target"], "t-field");
        assert_eq!(line["field.level"], "outer");
        assert_eq!(line["field.level.sources"], serde_json::json!(["inner"]));
        assert_eq!(line["field.msg"], "m-field");
        assert_eq!(line["field.trace_id"], "tid-field");
        assert_eq!(line["field.span_id"], "sid-field");
        assert_eq!(line["field.field.x"], 1);
        assert_eq!(line["field.e.sources"], "s-field");
        assert_eq!(line["e"], "outer");
        assert_eq!(line["e.sources"], serde_json::json!(["cause"]));
    }

    /// A value whose formatting logs, while the outer event holds the thread's buffer
    /// (`line::buffer`).
    struct Logs;

    impl std::fmt::Debug for Logs {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            tracing::warn!(inner = 1, "logged while formatting");
            f.write_str("the value")
        }
    }

    #[test]
    fn a_value_that_logs_while_its_line_is_written_leaves_the_lines_whole() {
        let lines = lines_of(|| {
            tracing::info!(before = "b", value = ?Logs, after = "a", "outer");
            tracing::info!("next");
        });
        let parsed: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        // `tracing` drops the inner event (no dispatch inside a dispatch); the two others are
        // whole, the second not holding what was left of the first in the buffer.
        assert_eq!(parsed.len(), 2, "{lines:?}");
        assert_eq!(parsed[0]["msg"], "outer");
        assert_eq!(parsed[0]["value"], "the value");
        assert_eq!(
            (&parsed[0]["before"], &parsed[0]["after"]),
            (&"b".into(), &"a".into())
        );
        assert_eq!(parsed[1]["msg"], "next");
        assert_eq!(
            parsed[1].as_object().map(|o| o.len()),
            Some(5),
            "{}",
            lines[1]
        );
    }

    /// More callsites than a thread keeps the keys of, met in turn: each line has its own
    /// callsite's keys, whether they were kept, evicted or rendered anew.
    #[test]
    fn every_callsite_gets_its_own_keys_however_many_there_are() {
        macro_rules! callsites {
            ($($name:ident),*) => {
                [$(|| tracing::info!($name = stringify!($name), level = 1, "m"),)*]
            };
        }
        let emit: [fn(); 11] = callsites!(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10);
        assert!(emit.len() > KEYS_KEPT);
        let lines = lines_of(|| {
            for round in 0..3 {
                for (i, e) in emit.iter().enumerate() {
                    if round != 1 || i % 3 == 0 {
                        e();
                    }
                }
            }
        });
        let mut expected = Vec::new();
        for round in 0..3 {
            for i in 0..emit.len() {
                if round != 1 || i % 3 == 0 {
                    expected.push(format!("a{i}"));
                }
            }
        }
        assert_eq!(lines.len(), expected.len());
        for (line, name) in lines.iter().zip(&expected) {
            let StrictObject(line) =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(line[name.as_str()], name.as_str(), "{line:?}");
            assert_eq!(line["field.level"], 1);
            assert_eq!(
                (&line["msg"], &line["level"]),
                (&"m".into(), &"info".into())
            );
            assert_eq!(line.len(), 7, "{line:?}");
        }
    }

    #[test]
    fn the_strict_check_sees_a_repeated_key() {
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":1,"b":2}"#).is_ok());
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":1,"a":2}"#).is_err());
    }

    #[test]
    fn excludes_its_own_and_the_http_stack() {
        for (target, excluded) in [
            ("gatewayz::loki_shipper", true),
            ("gatewayz::telemetry::loki::tests", false),
            ("gatewayz::loki_shipper::push", true),
            ("opentelemetry_sdk", true),
            ("opentelemetry", true),
            ("hyper_util::client", true),
            ("reqwest::connect", true),
            ("gatewayz::router", false),
            ("h2o", false),
            ("towering", false),
        ] {
            assert_eq!(is_excluded(target), excluded, "{target}");
        }
    }
}
