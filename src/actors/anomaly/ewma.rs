//! EWMA mean / variance detectors, one per provider and signal, as pure state.
//!
//! Each sample is scored against the baseline *before* it is folded in:
//! `z = (x − mean) / sd`. After `warmup` samples, a sample with `z > z_threshold` **and**
//! `x − mean > floor` (so noise on a quiet provider is not an anomaly) starts an episode and
//! reports once; the episode lasts until a sample falls back under `z_threshold / 2` or under
//! the floor (hysteresis), so a sustained spike is one anomaly, not one per request. Only rises
//! are anomalies. The baseline keeps learning during an episode, so a lasting level shift
//! becomes the new normal.

use crate::board::Signal;
use crate::config::AnomalyConfig;

/// Thresholds of one detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub alpha: f64,
    pub warmup: u32,
    pub z: f64,
    pub floor: f64,
}

impl Thresholds {
    pub fn for_signal(config: &AnomalyConfig, signal: Signal) -> Self {
        Self {
            alpha: config.alpha,
            warmup: config.warmup,
            z: config.z_threshold,
            floor: match signal {
                Signal::LatencySpike => config.latency_floor.as_secs_f64(),
                Signal::ErrorRateSpike => config.error_rate_floor,
                Signal::CostSpike => config.cost_floor_usd,
            },
        }
    }
}

/// A sample that started an episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub value: f64,
    pub mean: f64,
    pub z: f64,
}

/// One EWMA detector.
#[derive(Debug, Clone)]
pub struct Detector {
    t: Thresholds,
    mean: f64,
    var: f64,
    samples: u32,
    in_episode: bool,
}

impl Detector {
    pub fn new(t: Thresholds) -> Self {
        Self {
            t,
            mean: 0.0,
            var: 0.0,
            samples: 0,
            in_episode: false,
        }
    }

    pub fn in_episode(&self) -> bool {
        self.in_episode
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Scores `x`, folds it into the baseline, and returns the spike that opened an episode.
    pub fn observe(&mut self, x: f64) -> Option<Spike> {
        if !x.is_finite() {
            return None;
        }
        let rise = x - self.mean;
        let sd = self.var.sqrt();
        let z = if sd > 0.0 {
            rise / sd
        } else if rise > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        let warm = self.samples >= self.t.warmup;
        let mut spike = None;
        if warm && z > self.t.z && rise > self.t.floor {
            if !self.in_episode {
                self.in_episode = true;
                spike = Some(Spike {
                    value: x,
                    mean: self.mean,
                    z,
                });
            }
        } else if self.in_episode && (z < self.t.z / 2.0 || rise <= self.t.floor) {
            self.in_episode = false;
        }
        if self.samples == 0 {
            self.mean = x;
        } else {
            let incr = self.t.alpha * rise;
            self.mean += incr;
            self.var = (1.0 - self.t.alpha) * (self.var + rise * incr);
        }
        self.samples = self.samples.saturating_add(1);
        spike
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn detector() -> Detector {
        Detector::new(Thresholds {
            alpha: 0.1,
            warmup: 10,
            z: 4.0,
            floor: 0.15,
        })
    }

    fn jitter(i: usize) -> f64 {
        0.01 + (i % 3) as f64 * 0.002
    }

    #[test]
    fn table() {
        // (name, warm-up samples, then these samples, expected spikes)
        let cases: &[(&str, usize, &[f64], usize)] = &[
            ("quiet noise", 30, &[0.02, 0.011, 0.03], 0),
            ("one sustained spike is one episode", 30, &[0.5; 20], 1),
            ("below the floor is not a spike", 30, &[0.14; 5], 0),
            (
                "two separate spikes",
                30,
                &[
                    0.5, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01,
                    0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01,
                    0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01,
                    0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01,
                    0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.9,
                ],
                2,
            ),
            ("no report during warm-up", 5, &[0.5], 0),
            ("drops are not anomalies", 30, &[0.0; 5], 0),
        ];
        for (name, warm, samples, expected) in cases {
            let mut d = detector();
            for i in 0..*warm {
                assert!(d.observe(jitter(i)).is_none(), "{name}: warm-up");
            }
            let spikes = samples.iter().filter_map(|x| d.observe(*x)).count();
            assert_eq!(spikes, *expected, "{name}");
        }
    }

    proptest! {
        /// However long a spike lasts, it is reported once.
        #[test]
        fn one_anomaly_per_episode(base in 0.0f64..1.0, len in 1usize..500, height in 1.0f64..100.0) {
            let mut d = detector();
            for i in 0..50 {
                d.observe(base + jitter(i));
            }
            let spikes = (0..len).filter(|_| d.observe(base + height).is_some()).count();
            prop_assert_eq!(spikes, 1);
        }

        /// Values at or under the baseline plus the floor never report.
        #[test]
        fn floor_guards_quiet_providers(xs in proptest::collection::vec(0.0f64..0.15, 1..300)) {
            let mut d = detector();
            prop_assert!(xs.iter().all(|x| d.observe(*x).is_none()));
        }
    }
}
