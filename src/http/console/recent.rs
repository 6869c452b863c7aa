//! The console's Logs page: the last request lines, kept in memory while the console is on.
//!
//! Each routed request's end pushes one [`Line`] (what its access line says) into a bounded
//! ring; the oldest goes first. Only when an admin token is set (the console exists);
//! otherwise the request path never builds one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::http::header::HeaderValue;
use opentelemetry::TraceId;
use serde::{Serialize, Serializer};

/// How many lines the ring keeps.
pub const CAPACITY: usize = 500;

/// One request, as its access line has it. No prompt, no secret: the key's name only. Names
/// are the catalogue's and the key's shared strings, ids are kept as they came: a line costs
/// the request no string, and is formatted when the Logs page reads it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    /// Unix time of the request's end, in seconds.
    pub at: f64,
    pub api: &'static str,
    pub status: &'static str,
    #[serde(serialize_with = "shared")]
    pub model: Arc<str>,
    #[serde(serialize_with = "shared_opt")]
    pub provider: Option<Arc<str>>,
    #[serde(serialize_with = "shared_opt")]
    pub key: Option<Arc<str>>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Lowercase hex, as `x-trace-id`.
    #[serde(serialize_with = "trace_hex")]
    pub trace_id: Option<TraceId>,
    #[serde(serialize_with = "header_text")]
    pub request_id: Option<HeaderValue>,
}

fn shared<S: Serializer>(value: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

fn shared_opt<S: Serializer>(value: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_some(&**v),
        None => s.serialize_none(),
    }
}

fn trace_hex<S: Serializer>(value: &Option<TraceId>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(id) => {
            let hex = crate::telemetry::traces::propagation::trace_id_hex(*id);
            s.serialize_some(std::str::from_utf8(&hex).unwrap_or("-"))
        }
        None => s.serialize_none(),
    }
}

fn header_text<S: Serializer>(value: &Option<HeaderValue>, s: S) -> Result<S::Ok, S::Error> {
    match value.as_ref().and_then(|v| v.to_str().ok()) {
        Some(text) => s.serialize_some(text),
        None => s.serialize_none(),
    }
}

/// What the Logs page filters on (each `None`: any).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
}

impl Filter {
    fn keeps(&self, line: &Line) -> bool {
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .is_none_or(|w| w.is_empty() || Some(w) == have)
        };
        is(&self.model, Some(&*line.model))
            && is(&self.provider, line.provider.as_deref())
            && is(&self.status, Some(line.status))
    }
}

/// The ring of recent lines.
#[derive(Debug, Default)]
pub struct Recent {
    lines: Mutex<VecDeque<Line>>,
}

impl Recent {
    pub fn push(&self, line: Line) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == CAPACITY {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The lines `filter` keeps, newest first, at most `filter.limit` (default 100).
    pub fn newest(&self, filter: &Filter) -> Vec<Line> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .rev()
            .filter(|l| filter.keeps(l))
            .take(filter.limit.unwrap_or(100).min(CAPACITY))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, model: &str, status: &'static str) -> Line {
        Line {
            at: n as f64,
            api: "chat",
            status,
            model: model.into(),
            provider: Some("p".into()),
            key: None,
            latency_ms: 1.0,
            ttft_ms: None,
            input_tokens: 1,
            output_tokens: 1,
            trace_id: None,
            request_id: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters() {
        let recent = Recent::default();
        for n in 0..CAPACITY + 10 {
            let status = if n % 2 == 0 {
                "success"
            } else {
                "upstream_error"
            };
            recent.push(line(n, if n % 3 == 0 { "a" } else { "b" }, status));
        }
        let all = recent.newest(&Filter {
            limit: Some(CAPACITY * 2),
            ..Filter::default()
        });
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].at, (CAPACITY + 9) as f64, "newest first");
        let failed_a = recent.newest(&Filter {
            model: Some("a".into()),
            status: Some("upstream_error".into()),
            ..Filter::default()
        });
        assert!(!failed_a.is_empty());
        assert!(failed_a
            .iter()
            .all(|l| &*l.model == "a" && l.status == "upstream_error"));
        assert_eq!(recent.newest(&Filter::default()).len(), 100);
    }

    /// The Logs page's JSON: names as strings, the trace id in hex, the request id as sent.
    #[test]
    fn a_line_serializes_its_ids_as_text() {
        let mut l = line(1, "m", "success");
        l.trace_id = Some(TraceId::from_bytes([0xab; 16]));
        l.request_id = Some(HeaderValue::from_static("req_1"));
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["model"], "m");
        assert_eq!(json["provider"], "p");
        assert_eq!(json["key"], serde_json::Value::Null);
        assert_eq!(json["trace_id"], "ab".repeat(16));
        assert_eq!(json["request_id"], "req_1");
    }
}
