//! OTLP's `ExportTraceServiceRequest`, written as protobuf bytes straight from the SDK's
//! finished spans.
//!
//! The SDK's exporter converts every span into the generated protobuf structs first (owned
//! strings for every name and attribute, one `Vec` per id), groups them into more structs, and
//! only then encodes: about 30,000 instructions per request on the exporter's thread. This
//! writes the same bytes in one pass over the borrowed spans. "The same bytes" is exact: the
//! fields go out in the order prost writes the generated structs (by field number, so a
//! span's `flags`, field 16, comes last, after `status`), proto3 defaults are left out as prost
//! leaves them out, and a message-typed field the SDK sets (`resource`, `scope`, `status`, an
//! attribute's `value`) is written even when empty. `tests` decodes the output with the
//! official definitions and compares it, byte for byte, with the SDK's encoding of the same
//! spans.
//!
//! Nested messages are length-prefixed: a message is written after a one-byte length
//! placeholder, and moved up by the few bytes a longer length needs once its size is known.

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

use crate::telemetry::wire::{field_len, varint, varint_len};

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags`: the span's context says whether its parent is remote (always), and whether it is.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// Encodes batches for one resource (the tracer provider's, handed to the exporter once).
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    /// The `Resource` message's body: its attributes.
    resource: Vec<u8>,
    resource_schema_url: String,
}

impl Encoder {
    pub fn new(resource: &Resource) -> Self {
        let mut body = Vec::new();
        for (key, value) in resource.iter() {
            message(&mut body, 1, |b| key_value(b, key.as_str(), value));
        }
        Self {
            resource: body,
            resource_schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }

    /// Appends the request for `spans` to `out`: one `ResourceSpans`, one `ScopeSpans` per
    /// instrumentation scope in the order the scopes first appear, each with its spans in
    /// batch order.
    pub fn encode(&self, spans: &[SpanData], out: &mut Vec<u8>) {
        let mut scopes: Vec<&InstrumentationScope> = Vec::new();
        for span in spans {
            if !scopes.contains(&&span.instrumentation_scope) {
                scopes.push(&span.instrumentation_scope);
            }
        }
        self.request(out, &scopes, |ss, i| {
            for span in spans
                .iter()
                .filter(|s| &s.instrumentation_scope == scopes[i])
            {
                span_field(ss, span);
            }
        });
    }

    /// Appends a request with one `ScopeSpans` per scope of `scopes`, in that order, whose
    /// spans `spans_of` writes (as [`span_field`]s), given the scope's index in `scopes`.
    pub fn request(
        &self,
        out: &mut Vec<u8>,
        scopes: &[&InstrumentationScope],
        mut spans_of: impl FnMut(&mut Vec<u8>, usize),
    ) {
        message(out, 1, |rs| {
            // resource = 1
            message(rs, 1, |r| r.extend_from_slice(&self.resource));
            // scope_spans = 2
            for (i, scope) in scopes.iter().enumerate() {
                message(rs, 2, |ss| {
                    message(ss, 1, |s| instrumentation_scope(s, scope));
                    spans_of(ss, i);
                    string(ss, 3, scope.schema_url().unwrap_or_default());
                });
            }
            // schema_url = 3
            string(rs, 3, &self.resource_schema_url);
        });
    }
}

/// Appends `span` as a `ScopeSpans` message's `spans = 2` field: what a request holds of it.
pub fn span_field(out: &mut Vec<u8>, span: &SpanData) {
    message(out, 2, |s| encode_span(s, span));
}

fn instrumentation_scope(b: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(b, 1, scope.name());
    string(b, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        attribute(b, 3, kv);
    }
}

fn encode_span(b: &mut Vec<u8>, span: &SpanData) {
    head(
        b,
        &span.span_context,
        span.parent_span_id,
        &span.name,
        &span.span_kind,
        [span.start_time, span.end_time],
    );
    for kv in &span.attributes {
        attribute(b, 9, kv);
    }
    uint(b, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(b, 11, |e| {
            fixed64(e, 1, nanos(event.timestamp));
            string(e, 2, &event.name);
            for kv in &event.attributes {
                attribute(e, 3, kv);
            }
            uint(e, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint(b, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        message(b, 13, |l| {
            let context = &link.span_context;
            bytes(l, 1, &context.trace_id().to_bytes());
            bytes(l, 2, &context.span_id().to_bytes());
            trace_state(l, 3, context);
            for kv in &link.attributes {
                attribute(l, 4, kv);
            }
            uint(l, 5, u64::from(link.dropped_attributes_count));
            fixed32(l, 6, flags(context.is_remote(), context));
        });
    }
    uint(b, 14, u64::from(span.links.dropped_count));
    status(b, &span.status);
    fixed32(b, 16, flags(span.parent_span_is_remote, &span.span_context));
}

/// A span the gateway recorded itself ([`crate::telemetry::traces::span`]): no events, no
/// links, nothing dropped, its attributes already encoded as they were set.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub context: &'a SpanContext,
    pub parent: SpanId,
    pub parent_is_remote: bool,
    pub kind: &'a SpanKind,
    pub name: &'a str,
    pub start: std::time::SystemTime,
    pub end: std::time::SystemTime,
    /// `Span.attributes` fields back to back, as [`span_attribute`] writes them.
    pub attributes: &'a [u8],
    pub status: &'a Status,
}

/// Appends `span` as a `ScopeSpans` message's `spans = 2` field: the bytes [`span_field`]
/// writes for the same span's `SpanData`.
///
/// Its length is worked out first ([`recorded_len`]) and written before the body, so the body
/// is not moved up after it (a span is ~400 bytes; [`message`] moves any body of 128 or more).
pub fn recorded_field(out: &mut Vec<u8>, span: &Recorded<'_>) {
    sized_message(out, 2, recorded_len(span), |b| {
        head(
            b,
            span.context,
            span.parent,
            span.name,
            span.kind,
            [span.start, span.end],
        );
        b.extend_from_slice(span.attributes);
        status(b, span.status);
        fixed32(b, 16, flags(span.parent_is_remote, span.context));
    });
}

/// The length of the body [`recorded_field`] writes for `span`, field by field as [`head`],
/// [`status`] and the flags write them. A trace state (nearly never there) is left out: the
/// length is then short and [`sized_message`] corrects it.
fn recorded_len(span: &Recorded<'_>) -> usize {
    let present = |nonzero: bool, len: usize| if nonzero { len } else { 0 };
    let string = |s: &str| present(!s.is_empty(), field_len(s.len()));
    let id_fields = field_len(16) + field_len(8);
    let parent = present(span.parent != SpanId::INVALID, field_len(8));
    // `nanos` is 0 (and the field left out) for a time at or before the epoch.
    let after_epoch = |t: std::time::SystemTime| t > std::time::UNIX_EPOCH;
    let times = present(after_epoch(span.start), 9) + present(after_epoch(span.end), 9);
    let status_body = match span.status {
        Status::Unset => 0,
        Status::Ok => 2,
        Status::Error { description } => string(description) + 2,
    };
    // The kind is never 0; the flags always hold `CONTEXT_HAS_IS_REMOTE` (field 16: a
    // two-byte tag, then four bytes).
    id_fields
        + parent
        + string(span.name)
        + 2
        + times
        + span.attributes.len()
        + field_len(status_body)
        + 6
}

/// Appends one `Span.attributes = 9` field.
pub fn span_attribute(b: &mut Vec<u8>, key: &str, value: Scalar<'_>) {
    scalar_attribute(b, 9, key, value);
}

/// A span's fields 1 to 8: ids, trace state, parent, name, kind, start and end.
fn head(
    b: &mut Vec<u8>,
    context: &SpanContext,
    parent: SpanId,
    name: &str,
    span_kind: &SpanKind,
    [start, end]: [std::time::SystemTime; 2],
) {
    bytes(b, 1, &context.trace_id().to_bytes());
    bytes(b, 2, &context.span_id().to_bytes());
    trace_state(b, 3, context);
    if parent != SpanId::INVALID {
        bytes(b, 4, &parent.to_bytes());
    }
    string(b, 5, name);
    uint(b, 6, kind(span_kind));
    fixed64(b, 7, nanos(start));
    fixed64(b, 8, nanos(end));
}

/// `Span.status = 15`, always present (the SDK sets it).
fn status(b: &mut Vec<u8>, status: &Status) {
    message(b, 15, |s| match status {
        Status::Unset => {}
        Status::Ok => uint(s, 3, 1),
        Status::Error { description } => {
            string(s, 2, description);
            uint(s, 3, 2);
        }
    });
}

fn trace_state(b: &mut Vec<u8>, field: u32, context: &SpanContext) {
    let state = context.trace_state();
    // The header is built only when there is one (nearly never).
    if *state != opentelemetry::trace::TraceState::NONE {
        string(b, field, &state.header());
    }
}

fn flags(parent_is_remote: bool, context: &SpanContext) -> u32 {
    let mut flags = u32::from(context.trace_flags().to_u8()) | CONTEXT_HAS_IS_REMOTE;
    if parent_is_remote {
        flags |= CONTEXT_IS_REMOTE;
    }
    flags
}

/// `Span.SpanKind`'s numbers.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A scalar attribute value, borrowed: every attribute of the gateway's own spans is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    I64(i64),
    F64(f64),
}

impl<'a> Scalar<'a> {
    /// `None` for an array or a kind a later API adds.
    fn of(value: &'a Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::Str(s.as_str())),
            Value::Bool(v) => Some(Self::Bool(*v)),
            Value::I64(v) => Some(Self::I64(*v)),
            Value::F64(v) => Some(Self::F64(*v)),
            _ => None,
        }
    }

    /// The length of its `AnyValue` body as [`Scalar::write`] writes it (its field numbers
    /// fit one tag byte).
    fn len(self) -> usize {
        match self {
            Self::Str(s) => 1 + varint_len(s.len() as u64) + s.len(),
            Self::Bool(_) => 2,
            Self::I64(v) => 1 + varint_len(v as u64),
            Self::F64(_) => 9,
        }
    }

    /// Its `AnyValue` body: the one field of the `oneof`, written even when it holds the
    /// default.
    fn write(self, b: &mut Vec<u8>) {
        match self {
            Self::Str(s) => always_string(b, 1, s),
            Self::Bool(v) => {
                tag(b, 2, VARINT);
                varint(b, u64::from(v));
            }
            Self::I64(v) => {
                tag(b, 3, VARINT);
                varint(b, v as u64);
            }
            Self::F64(v) => {
                tag(b, 4, FIXED64);
                b.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    }
}

/// A `KeyValue` message as field `field`.
fn attribute(b: &mut Vec<u8>, field: u32, kv: &KeyValue) {
    match Scalar::of(&kv.value) {
        Some(value) => scalar_attribute(b, field, kv.key.as_str(), value),
        // An array's body is written first and its length put before it (`message`).
        None => message(b, field, |m| key_value(m, kv.key.as_str(), &kv.value)),
    }
}

/// A `KeyValue` message with a scalar value, in one pass: its lengths are known before it.
/// The tags and lengths around the key go into a stack buffer first, so the vector sees three
/// or four appends (a push each cost a capacity check; ~11 attributes a request).
fn scalar_attribute(b: &mut Vec<u8>, field: u32, key: &str, value: Scalar<'_>) {
    let any_len = value.len();
    let key_field = if key.is_empty() {
        0
    } else {
        1 + varint_len(key.len() as u64) + key.len()
    };
    let body = key_field + 1 + varint_len(any_len as u64) + any_len;
    b.reserve(body + 6);
    let mut head = Head::default();
    head.varint(u64::from(field << 3 | LEN));
    head.varint(body as u64);
    if !key.is_empty() {
        head.varint(u64::from(1 << 3 | LEN));
        head.varint(key.len() as u64);
    }
    b.extend_from_slice(head.bytes());
    b.extend_from_slice(key.as_bytes());
    let mut head = Head::default();
    head.varint(u64::from(2 << 3 | LEN));
    head.varint(any_len as u64);
    match value {
        Scalar::Str(s) => {
            head.varint(u64::from(1 << 3 | LEN));
            head.varint(s.len() as u64);
            b.extend_from_slice(head.bytes());
            b.extend_from_slice(s.as_bytes());
        }
        Scalar::Bool(v) => {
            head.varint(u64::from(2 << 3 | VARINT));
            head.varint(u64::from(v));
            b.extend_from_slice(head.bytes());
        }
        Scalar::I64(v) => {
            head.varint(u64::from(3 << 3 | VARINT));
            head.varint(v as u64);
            b.extend_from_slice(head.bytes());
        }
        Scalar::F64(v) => {
            head.varint(u64::from(4 << 3 | FIXED64));
            b.extend_from_slice(head.bytes());
            b.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
}

/// Up to four varints (tags and lengths), gathered before they are appended.
#[derive(Default)]
struct Head {
    bytes: [u8; 30],
    len: usize,
}

impl Head {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes[self.len] = (v as u8) | 0x80;
            self.len += 1;
            v >>= 7;
        }
        self.bytes[self.len] = v as u8;
        self.len += 1;
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A `KeyValue`'s body: `key = 1`, `value = 2` (always present, as the SDK sets it).
fn key_value(b: &mut Vec<u8>, key: &str, value: &Value) {
    string(b, 1, key);
    message(b, 2, |v| any_value(v, value));
}

/// An `AnyValue`'s body: the one field of its `oneof`, written even when it holds the default.
fn any_value(b: &mut Vec<u8>, value: &Value) {
    if let Some(scalar) = Scalar::of(value) {
        scalar.write(b);
    } else if let Value::Array(array) = value {
        message(b, 5, |a| match array {
            Array::Bool(vs) => each(a, vs, |v| Value::Bool(*v)),
            Array::I64(vs) => each(a, vs, |v| Value::I64(*v)),
            Array::F64(vs) => each(a, vs, |v| Value::F64(*v)),
            Array::String(vs) => {
                for v in vs {
                    message(a, 1, |m| always_string(m, 1, StringValue::as_str(v)));
                }
            }
            // A kind of array a later API adds: an empty array rather than a wrong value.
            _ => {}
        });
    }
    // Else a kind of value a later API adds: an `AnyValue` with no value, which OTLP allows.
}

/// An `ArrayValue`'s `values = 1`.
fn each<T>(b: &mut Vec<u8>, values: &[T], value: impl Fn(&T) -> Value) {
    for v in values {
        message(b, 1, |m| any_value(m, &value(v)));
    }
}

fn tag(b: &mut Vec<u8>, field: u32, wire: u32) {
    varint(b, u64::from(field << 3 | wire));
}

/// A proto3 scalar: left out when zero.
fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, VARINT);
        varint(b, v);
    }
}

fn fixed32(b: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(b, field, FIXED32);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(b, field, FIXED64);
        b.extend_from_slice(&v.to_le_bytes());
    }
}

/// A proto3 string: left out when empty.
fn string(b: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        always_string(b, field, s);
    }
}

/// A `oneof` member: written even when empty.
fn always_string(b: &mut Vec<u8>, field: u32, s: &str) {
    bytes_always(b, field, s.as_bytes());
}

/// Proto3 bytes: left out when empty.
fn bytes(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        bytes_always(b, field, v);
    }
}

fn bytes_always(b: &mut Vec<u8>, field: u32, v: &[u8]) {
    tag(b, field, LEN);
    varint(b, v.len() as u64);
    b.extend_from_slice(v);
}

/// A nested message as field `field` whose body `body` writes in `expected` bytes. If it
/// wrote another number (a field the estimate does not know), the length is rewritten and the
/// body moved after it.
fn sized_message(b: &mut Vec<u8>, field: u32, expected: usize, body: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    let at = b.len();
    varint(b, expected as u64);
    let start = b.len();
    body(b);
    let len = b.len() - start;
    if len != expected {
        let written = b.split_off(start);
        b.truncate(at);
        varint(b, len as u64);
        b.extend_from_slice(&written);
    }
}

/// A nested message as field `field`, its body written by `body`. The length goes in a
/// one-byte placeholder; a body of 128 bytes or more moves up by the bytes its length needs.
fn message(b: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    let at = b.len();
    b.push(0);
    body(b);
    let len = b.len() - at - 1;
    let width = varint_len(len as u64);
    if width > 1 {
        let end = b.len();
        b.resize(end + width - 1, 0);
        b.copy_within(at + 1..end, at + width);
    }
    let mut prefix = Head::default();
    prefix.varint(len as u64);
    b[at..at + width].copy_from_slice(prefix.bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;
    use std::time::{Duration, UNIX_EPOCH};

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;

    use super::*;

    fn at(nanos: u64) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    fn context(
        trace: u128,
        span: u64,
        flags: TraceFlags,
        remote: bool,
        state: &str,
    ) -> SpanContext {
        let state = if state.is_empty() {
            TraceState::NONE
        } else {
            state.parse().unwrap()
        };
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            remote,
            state,
        )
    }

    /// Spans of every shape the encoder handles: the gateway's (a server span with a remote
    /// parent, a client span under it), and one with everything else a span can hold.
    pub(crate) fn spans() -> Vec<SpanData> {
        let gateway = InstrumentationScope::builder("gatewayz").build();
        let other = InstrumentationScope::builder("other")
            .with_version("2.1.0")
            .with_schema_url("https://example.com/scope/1")
            .with_attributes([KeyValue::new("scope.attr", true)])
            .build();
        let server = SpanData {
            span_context: context(
                0x0af7651916cd43dd8448eb211c80319c,
                0xb7ad6b7169203331,
                TraceFlags::SAMPLED,
                false,
                "",
            ),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("POST /v1/chat/completions"),
            start_time: at(1_765_000_000_123_456_789),
            end_time: at(1_765_000_000_124_000_000),
            attributes: vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/v1/chat/completions"),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("gatewayz.model", ""),
                KeyValue::new("gatewayz.stream", false),
                KeyValue::new("gatewayz.overhead_ms", 0.25_f64),
                KeyValue::new("negative", -3_i64),
                KeyValue::new("long", "x".repeat(300)),
                // An empty key, a zero, the largest integer: the edges of the one-pass lengths.
                KeyValue::new("", ""),
                KeyValue::new("zero", 0_i64),
                KeyValue::new("max", i64::MAX),
                KeyValue::new(
                    "a key of more than a hundred and twenty-seven bytes ".repeat(3),
                    1.5,
                ),
            ],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: gateway.clone(),
        };
        let client = SpanData {
            span_context: context(
                0x0af7651916cd43dd8448eb211c80319c,
                0x1111111111111111,
                TraceFlags::SAMPLED,
                false,
                "",
            ),
            parent_span_id: SpanId::from(0xb7ad6b7169203331),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned("chat mock-a".into()),
            start_time: at(1_765_000_000_123_500_000),
            end_time: at(1_765_000_000_123_900_000),
            attributes: vec![KeyValue::new("gatewayz.provider", "mock-a")],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::error("upstream answered 503"),
            instrumentation_scope: gateway.clone(),
        };
        let mut events = SpanEvents::default();
        events.events = vec![
            Event::new(
                "exception",
                at(1_500),
                vec![KeyValue::new("handled", false)],
                3,
            ),
            Event::new("", UNIX_EPOCH, vec![], 0),
        ];
        events.dropped_count = 4;
        let mut links = SpanLinks::default();
        links.links = vec![Link::new(
            context(
                0x22334455667788990011,
                0x2030405060708090,
                TraceFlags::SAMPLED,
                true,
                "vendor=link",
            ),
            vec![KeyValue::new("link.attr", "linked")],
            5,
        )];
        links.dropped_count = 6;
        let everything = SpanData {
            span_context: context(1, 2, TraceFlags::default(), false, "vendor=span,other=x"),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(""),
            start_time: UNIX_EPOCH,
            end_time: at(2_500),
            attributes: vec![
                KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
                KeyValue::new("ints", Value::Array(Array::I64(vec![0, 1, -1, i64::MAX]))),
                KeyValue::new("floats", Value::Array(Array::F64(vec![0.0, 1.5]))),
                KeyValue::new(
                    "strings",
                    Value::Array(Array::String(vec!["".into(), "a".into()])),
                ),
                KeyValue::new("empty", Value::Array(Array::I64(vec![]))),
            ],
            dropped_attributes_count: 2,
            events,
            links,
            status: Status::Ok,
            instrumentation_scope: other,
        };
        let mut producer = client.clone();
        producer.span_kind = SpanKind::Producer;
        let mut consumer = client.clone();
        consumer.span_kind = SpanKind::Consumer;
        // Scopes interleaved: grouping keeps first-appearance order.
        vec![server, everything, client, producer, consumer]
    }

    pub(crate) fn sdk_encoding(spans: Vec<SpanData>, resource: &Resource) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(resource),
            ),
        }
        .encode_to_vec()
    }

    fn ours(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new(resource).encode(spans, &mut out);
        out
    }

    #[test]
    fn the_bytes_are_the_sdk_exporters() {
        let resource = Resource::builder()
            .with_service_name("gatewayz")
            .with_attribute(KeyValue::new("service.version", "0.1.0"))
            .with_attribute(KeyValue::new("deployment.environment", "test"))
            .build();
        let spans = spans();
        let got = ours(&spans, &resource);
        let want = sdk_encoding(spans.clone(), &resource);
        // Decoded with the official definitions, field by field first (a readable diff)...
        let decoded = ExportTraceServiceRequest::decode(got.as_slice()).unwrap();
        let expected = ExportTraceServiceRequest::decode(want.as_slice()).unwrap();
        assert_eq!(decoded, expected);
        let scopes = &decoded.resource_spans[0].scope_spans;
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0].spans.len(), 4);
        assert_eq!(scopes[1].scope.as_ref().unwrap().version, "2.1.0");
        // ...then byte for byte.
        assert_eq!(got, want);
        // One span alone, and an empty batch.
        assert_eq!(
            ours(&spans[..1], &resource),
            sdk_encoding(spans[..1].to_vec(), &resource)
        );
        assert_eq!(ours(&[], &resource), sdk_encoding(vec![], &resource));
    }

    /// The gateway's own spans (written as they are recorded) are the bytes of the same
    /// spans' `SpanData`: every span of `spans` without events, links or arrays.
    #[test]
    fn a_recorded_span_is_the_field_of_its_span_data() {
        let mut spans = spans();
        // A trace state, carried from a caller, on one of them.
        spans[2].span_context = context(7, 8, TraceFlags::SAMPLED, false, "vendor=a");
        let mut checked = 0;
        for span in &spans {
            let scalars: Option<Vec<_>> = span
                .attributes
                .iter()
                .map(|kv| Scalar::of(&kv.value).map(|v| (kv.key.as_str(), v)))
                .collect();
            let Some(scalars) = scalars.filter(|_| span.events.is_empty()) else {
                continue;
            };
            let mut attributes = Vec::new();
            for (key, value) in scalars {
                span_attribute(&mut attributes, key, value);
            }
            let recorded = Recorded {
                context: &span.span_context,
                parent: span.parent_span_id,
                parent_is_remote: span.parent_span_is_remote,
                kind: &span.span_kind,
                name: &span.name,
                start: span.start_time,
                end: span.end_time,
                attributes: &attributes,
                status: &span.status,
            };
            let mut got = Vec::new();
            recorded_field(&mut got, &recorded);
            let mut want = Vec::new();
            span_field(&mut want, span);
            assert_eq!(got, want, "{}", span.name);
            // The length worked out beforehand is the body's (so nothing moves), but for a
            // trace state, which it leaves out.
            let estimated = field_len(recorded_len(&recorded));
            if *span.span_context.trace_state() == opentelemetry::trace::TraceState::NONE {
                assert_eq!(estimated, got.len(), "{}", span.name);
            } else {
                assert!(estimated < got.len(), "{}", span.name);
            }
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn a_sized_message_of_another_length_is_the_message() {
        for (len, expected) in [(0, 0), (5, 3), (5, 200), (127, 128), (128, 127), (300, 300)] {
            let body = |b: &mut Vec<u8>| b.extend(std::iter::repeat_n(7u8, len));
            let (mut sized, mut plain) = (vec![1u8], vec![1u8]);
            sized_message(&mut sized, 2, expected, body);
            message(&mut plain, 2, body);
            assert_eq!(sized, plain, "{len} bytes, {expected} expected");
        }
    }

    #[test]
    fn a_large_batch_and_a_schema_url_encode_alike() {
        let resource = Resource::builder_empty()
            .with_schema_url(
                [KeyValue::new("a", 1_i64)],
                "https://opentelemetry.io/schemas/1.30.0",
            )
            .build();
        // 600 spans: the outer lengths need three varint bytes.
        let spans: Vec<SpanData> = spans().into_iter().cycle().take(600).collect();
        let got = ours(&spans, &resource);
        assert!(got.len() > 1 << 14, "{}", got.len());
        assert_eq!(got, sdk_encoding(spans, &resource));
    }
}
