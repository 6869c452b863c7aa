//! The console's Logs page: the last request lines, kept in memory while the console is on.
//!
//! Each routed request's end pushes one [`Line`] (what its access line says) into a bounded
//! ring; the oldest goes first. Only when an admin token is set (the console exists);
//! otherwise the request path never builds one.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// How many lines the ring keeps.
pub const CAPACITY: usize = 500;

/// One request, as its access line has it. No prompt, no secret: the key's name only.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    /// Unix time of the request's end, in seconds.
    pub at: f64,
    pub api: &'static str,
    pub status: &'static str,
    pub model: String,
    pub provider: Option<String>,
    pub key: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
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
        is(&self.model, Some(&line.model))
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
            .all(|l| l.model == "a" && l.status == "upstream_error"));
        assert_eq!(recent.newest(&Filter::default()).len(), 100);
    }
}
