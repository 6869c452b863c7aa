//! The console's rolling window: what the overview charts, with no Prometheus.
//!
//! Every few seconds a sampler gathers the registry `/metrics` serves (off the request path:
//! the meters record as they always do) and pushes a [`Point`]: the totals of client requests
//! and errors, and the merged buckets of request duration, time to first token and gateway
//! overhead. Consecutive points give an [`Interval`]: requests per second, error rate and
//! percentiles over that interval alone, as `rate()` and `histogram_quantile()` would. A plain
//! state machine: points carry their time, tests make them by hand.

use std::collections::VecDeque;

use prometheus::proto::MetricFamily;
use serde::Serialize;

use super::super::summary::{counter_sum, label, quantile, series};
use crate::telemetry::metrics::catalogue as cat;

/// Cumulative `(upper bound, count)` buckets, merged over a family's series, and the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<(f64, u64)>,
    pub count: u64,
}

impl Buckets {
    fn read(families: &[MetricFamily], name: &str) -> Self {
        let mut merged = Self::default();
        for metric in series(families, name) {
            let h = metric.get_histogram();
            merged.count += h.get_sample_count();
            for (i, b) in h.get_bucket().iter().enumerate() {
                match merged.bounds.get_mut(i) {
                    Some(slot) if slot.0 == b.upper_bound() => slot.1 += b.cumulative_count(),
                    Some(_) => {}
                    None => merged.bounds.push((b.upper_bound(), b.cumulative_count())),
                }
            }
        }
        merged
    }

    /// What `self` holds beyond `earlier` (same bounds; a counter reset gives zeros).
    fn since(&self, earlier: &Self) -> Self {
        let bounds = self
            .bounds
            .iter()
            .enumerate()
            .map(|(i, &(le, n))| {
                let before = earlier.bounds.get(i).map_or(0, |b| b.1);
                (le, n.saturating_sub(before))
            })
            .collect();
        Self {
            bounds,
            count: self.count.saturating_sub(earlier.count),
        }
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        quantile(q, &self.bounds, self.count)
    }
}

/// The gateway's totals at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Unix time in seconds.
    pub at: f64,
    pub requests: f64,
    pub errors: f64,
    pub duration: Buckets,
    pub ttft: Buckets,
    pub overhead: Buckets,
}

impl Point {
    /// The totals in gathered `families` at `at`.
    pub fn read(families: &[MetricFamily], at: f64) -> Self {
        Self {
            at,
            requests: counter_sum(families, cat::MODEL_REQUESTS, |_| true),
            errors: counter_sum(families, cat::MODEL_REQUESTS, |m| {
                label(m, "status") != Some("success")
            }),
            duration: Buckets::read(families, cat::MODEL_DURATION),
            ttft: Buckets::read(families, cat::TIME_TO_FIRST_TOKEN),
            overhead: Buckets::read(families, cat::OVERHEAD),
        }
    }
}

/// Percentiles of one interval, in seconds (`None` without samples).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(b: &Buckets) -> Self {
        Self {
            p50: b.quantile(0.5),
            p99: b.quantile(0.99),
        }
    }
}

/// One interval between two points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    /// Unix time of its end, in seconds.
    pub at: f64,
    pub requests_per_second: f64,
    /// `None` without requests.
    pub error_rate: Option<f64>,
    pub latency_seconds: Percentiles,
    pub ttft_seconds: Percentiles,
    pub overhead_seconds: Percentiles,
}

/// The last points, oldest first.
#[derive(Debug)]
pub struct Window {
    points: VecDeque<Point>,
    capacity: usize,
}

impl Window {
    /// A window of `intervals` intervals.
    pub fn new(intervals: usize) -> Self {
        Self {
            points: VecDeque::with_capacity(intervals + 1),
            capacity: intervals + 1,
        }
    }

    pub fn push(&mut self, point: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// Every interval, oldest first.
    pub fn intervals(&self) -> Vec<Interval> {
        let points: Vec<&Point> = self.points.iter().collect();
        points
            .windows(2)
            .map(|pair| {
                let (a, b) = (pair[0], pair[1]);
                let seconds = (b.at - a.at).max(1e-9);
                let requests = (b.requests - a.requests).max(0.0);
                let errors = (b.errors - a.errors).max(0.0);
                Interval {
                    at: b.at,
                    requests_per_second: requests / seconds,
                    error_rate: (requests > 0.0).then(|| errors / requests),
                    latency_seconds: Percentiles::of(&b.duration.since(&a.duration)),
                    ttft_seconds: Percentiles::of(&b.ttft.since(&a.ttft)),
                    overhead_seconds: Percentiles::of(&b.overhead.since(&a.overhead)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(counts: &[u64]) -> Buckets {
        let bounds = [0.1, 1.0, f64::INFINITY];
        Buckets {
            bounds: bounds.iter().copied().zip(counts.iter().copied()).collect(),
            count: *counts.last().unwrap_or(&0),
        }
    }

    fn point(at: f64, requests: f64, errors: f64, duration: &[u64]) -> Point {
        Point {
            at,
            requests,
            errors,
            duration: buckets(duration),
            ttft: Buckets::default(),
            overhead: Buckets::default(),
        }
    }

    /// Each interval sees only its own requests: rate, error rate and percentiles of the
    /// difference between its two points.
    #[test]
    fn intervals_are_differences_of_consecutive_points() {
        let mut w = Window::new(2);
        w.push(point(0.0, 0.0, 0.0, &[0, 0, 0]));
        w.push(point(5.0, 50.0, 5.0, &[50, 50, 50]));
        // 10 more requests, all slow (between 0.1 and 1 s).
        w.push(point(10.0, 60.0, 5.0, &[50, 60, 60]));
        let got = w.intervals();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].requests_per_second, 10.0);
        assert_eq!(got[0].error_rate, Some(0.1));
        assert_eq!(got[0].latency_seconds.p50, Some(0.05));
        assert_eq!(got[1].requests_per_second, 2.0);
        assert_eq!(got[1].error_rate, Some(0.0));
        assert_eq!(got[1].latency_seconds.p50, Some(0.55));
        assert_eq!(got[1].ttft_seconds.p50, None);
        // The oldest point leaves once the window is full.
        w.push(point(15.0, 60.0, 5.0, &[50, 60, 60]));
        let got = w.intervals();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].at, 10.0);
        assert_eq!(got[1].error_rate, None, "no requests");
    }
}
