//! W3C Trace Context in and out: `traceparent` / `tracestate` read from a client's request
//! (so the server span joins the caller's trace) and written onto each upstream request
//! (from the attempt's client span, so the provider's spans nest under it).
//!
//! The propagator is used directly rather than through OpenTelemetry's global: W3C is the one
//! format the gateway speaks, and a direct call skips a lock and a dynamic dispatch per request.

use actix_web::http::header::HeaderMap as ActixHeaders;
use hyper::header::HeaderValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::span::Span;

/// The caller's span context, from its request headers (empty when it sent none or an invalid
/// one).
pub fn extract(headers: &ActixHeaders) -> SpanContext {
    if !headers.contains_key("traceparent") {
        return SpanContext::empty_context();
    }
    TraceContextPropagator::new()
        .extract(&Incoming(headers))
        .span()
        .span_context()
        .clone()
}

/// The trace headers to send upstream for one attempt.
#[derive(Debug, Default, Clone)]
pub struct UpstreamTrace {
    pub traceparent: Option<HeaderValue>,
    pub tracestate: Option<HeaderValue>,
}

impl UpstreamTrace {
    /// The headers that make the upstream's spans children of `span`. Empty when `span` has no
    /// valid context (no tracer installed).
    pub fn of(span: &Span) -> Self {
        Self::of_span_context(span.context())
    }

    /// What the W3C propagator would inject for `sc`, written straight into header values
    /// (the propagator formats and allocates a string per header).
    pub fn of_span_context(sc: &SpanContext) -> Self {
        if !sc.is_valid() {
            return Self::default();
        }
        let mut parent = [0u8; 55];
        parent[..3].copy_from_slice(b"00-");
        hex(&sc.trace_id().to_bytes(), &mut parent[3..35]);
        parent[35] = b'-';
        hex(&sc.span_id().to_bytes(), &mut parent[36..52]);
        parent[52] = b'-';
        hex(
            &[(sc.trace_flags() & TraceFlags::SAMPLED).to_u8()],
            &mut parent[53..],
        );
        let state = sc.trace_state().header();
        Self {
            traceparent: HeaderValue::from_bytes(&parent).ok(),
            tracestate: (!state.is_empty())
                .then(|| HeaderValue::from_str(&state).ok())
                .flatten(),
        }
    }
}

/// The trace id in lowercase hex (the `x-trace-id` value), without a formatter.
pub fn trace_id_hex(id: TraceId) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex(&id.to_bytes(), &mut out);
    out
}

/// The span id in lowercase hex (log correlation), without a formatter.
pub fn span_id_hex(id: SpanId) -> [u8; 16] {
    let mut out = [0u8; 16];
    hex(&id.to_bytes(), &mut out);
    out
}

/// Lowercase hex of `bytes` into `out` (twice as long), four bytes at a time in a word (ids
/// are 8 and 16 bytes; a digit table costs a load and two bounds checks per nibble, and ids
/// are written several times a request: the access line, Loki's line and metadata, headers).
fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let quads = bytes.chunks_exact(4);
    let rest = quads.remainder();
    let (words, tail) = out.split_at_mut(bytes.len() / 4 * 8);
    for (quad, digits) in quads.zip(words.chunks_exact_mut(8)) {
        digits.copy_from_slice(&hex_quad([quad[0], quad[1], quad[2], quad[3]]));
    }
    for (byte, pair) in rest.iter().zip(tail.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Eight lowercase hex digits of four bytes: each nibble spread into a byte of its own
/// (most significant first), then `'0'` added, and `'a' - '0' - 10` more where the nibble
/// is 10 or above (adding 6 carries it into bit 4; no byte overflows).
fn hex_quad(quad: [u8; 4]) -> [u8; 8] {
    const BYTES: u64 = 0x0101_0101_0101_0101;
    let x = u64::from(u32::from_be_bytes(quad));
    let mut n = (x & 0xffff_0000) << 16 | x & 0xffff;
    n = (n & 0x0000_ff00_0000_ff00) << 8 | n & 0x0000_00ff_0000_00ff;
    n = (n & 0x00f0_00f0_00f0_00f0) << 4 | n & 0x000f_000f_000f_000f;
    let letters = ((n + 6 * BYTES) >> 4) & BYTES;
    (n + u64::from(b'0') * BYTES + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

struct Incoming<'a>(&'a ActixHeaders);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue as ActixValue};

    #[test]
    fn ids_in_hex_are_the_formatters_for_every_byte_in_every_place() {
        for byte in 0..=255u8 {
            for at in 0..16 {
                let mut id = [0x5au8; 16];
                id[at] = byte;
                let expected: String = id.iter().map(|b| format!("{b:02x}")).collect();
                let trace = trace_id_hex(TraceId::from_bytes(id));
                assert_eq!(std::str::from_utf8(&trace).unwrap(), expected);
                let span: [u8; 8] = id[..8].try_into().unwrap();
                let hex = span_id_hex(SpanId::from_bytes(span));
                assert_eq!(std::str::from_utf8(&hex).unwrap(), &expected[..16]);
                let mut odd = [0u8; 14];
                super::hex(&id[..7], &mut odd);
                assert_eq!(std::str::from_utf8(&odd).unwrap(), &expected[..14]);
            }
        }
    }

    #[test]
    fn extracts_a_valid_traceparent_and_ignores_garbage() {
        let mut headers = ActixHeaders::new();
        headers.insert(
            HeaderName::from_static("traceparent"),
            ActixValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        let sc = extract(&headers);
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );

        headers.insert(
            HeaderName::from_static("traceparent"),
            ActixValue::from_static("00-not-a-trace"),
        );
        assert!(!extract(&headers).is_valid());
        assert!(!extract(&ActixHeaders::new()).is_valid());
    }

    /// Hand-written injection equals the SDK propagator's, flags and trace state included.
    #[test]
    fn injection_matches_the_w3c_propagator() {
        use opentelemetry::propagation::Injector;
        use opentelemetry::trace::TraceState;
        use std::collections::HashMap;

        struct Map(HashMap<String, String>);
        impl Injector for Map {
            fn set(&mut self, key: &str, value: String) {
                self.0.insert(key.to_owned(), value);
            }
        }
        let states = [
            TraceState::default(),
            TraceState::from_key_value([("vendor", "x1"), ("other", "y-2")]).unwrap(),
        ];
        let ids = [
            (
                0x0af7651916cd43dd8448eb211c80319c_u128,
                0xb7ad6b7169203331_u64,
            ),
            (1, 1),
            (u128::MAX, u64::MAX),
            (
                0x00f0_0000_0000_0000_0000_0000_0000_000f,
                0x0100_0000_0000_0010,
            ),
        ];
        for (trace, span) in ids {
            for flags in [
                TraceFlags::default(),
                TraceFlags::SAMPLED,
                TraceFlags::new(0xff),
            ] {
                for state in &states {
                    let sc = SpanContext::new(
                        TraceId::from(trace),
                        SpanId::from(span),
                        flags,
                        false,
                        state.clone(),
                    );
                    let mut sdk = Map(HashMap::new());
                    let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
                    TraceContextPropagator::new().inject_context(&cx, &mut sdk);
                    let ours = UpstreamTrace::of_span_context(&sc);
                    let text = |v: &Option<HeaderValue>| {
                        v.as_ref().map(|v| v.to_str().unwrap().to_owned())
                    };
                    assert_eq!(text(&ours.traceparent), sdk.0.get("traceparent").cloned());
                    assert_eq!(
                        text(&ours.tracestate),
                        sdk.0.get("tracestate").filter(|s| !s.is_empty()).cloned()
                    );
                }
            }
            assert_eq!(
                std::str::from_utf8(&trace_id_hex(TraceId::from(trace))).unwrap(),
                TraceId::from(trace).to_string()
            );
            let sc = SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            assert_eq!(
                std::str::from_utf8(&span_id_hex(sc.span_id())).unwrap(),
                sc.span_id().to_string()
            );
        }
        assert!(
            UpstreamTrace::of_span_context(&SpanContext::empty_context())
                .traceparent
                .is_none()
        );
    }

    #[test]
    fn no_tracer_no_headers() {
        let trace = UpstreamTrace::of(&Span::none());
        assert!(trace.traceparent.is_none() && trace.tracestate.is_none());
    }
}
