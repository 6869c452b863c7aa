//! Whether a backend the gateway depends on answers (the shared limit store, the ledger's
//! database), as the request path and the log see it.
//!
//! The request path reads one flag: while it is down, the shared store's admissions follow
//! the failure policy without trying it, so an outage costs no request a timeout. The flag goes down on
//! the first failed call and up on the first call that succeeds (the store's own task tries
//! every `retry_interval` while it is down; the ledger's writer retries its batch). Failures are logged at most once per
//! [`LOG_EVERY`], with the number of failures since the previous line; the way back is
//! always logged. The clock is a parameter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest silence about a store that keeps failing.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the log should say after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The store stopped answering (first failure after it answered).
    Down,
    /// Still failing: `failures` calls failed since the previous line.
    StillDown { failures: u64 },
    /// It answers again, after `failures` failed calls over `after`.
    Back { failures: u64, after: Duration },
}

/// The log's memory: when it last spoke and what it has not said yet.
#[derive(Debug, Default)]
struct Memory {
    /// When the current outage began.
    since: Option<Instant>,
    /// When the last line about it was written.
    logged: Option<Instant>,
    /// Failures since that line.
    unlogged: u64,
    /// Failures since the outage began.
    failures: u64,
}

/// The store's reachability.
#[derive(Debug)]
pub struct Reach {
    up: AtomicBool,
    memory: Mutex<Memory>,
}

impl Default for Reach {
    /// Up until a call fails: start-up does not wait for the store.
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            memory: Mutex::default(),
        }
    }
}

impl Reach {
    /// Whether calls should go to the store (one relaxed load: the request path's check).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A call failed at `now`.
    pub fn failed(&self, now: Instant) -> Option<Note> {
        let mut m = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        self.up.store(false, Ordering::Relaxed);
        m.failures += 1;
        m.unlogged += 1;
        let note = match (m.since, m.logged) {
            (None, _) => {
                m.since = Some(now);
                Some(Note::Down)
            }
            (Some(_), Some(at)) if now.saturating_duration_since(at) < LOG_EVERY => None,
            (Some(_), _) => Some(Note::StillDown {
                failures: m.unlogged,
            }),
        };
        if note.is_some() {
            m.logged = Some(now);
            m.unlogged = 0;
        }
        note
    }

    /// A call succeeded at `now`.
    pub fn succeeded(&self, now: Instant) -> Option<Note> {
        if self.is_up() {
            return None;
        }
        let mut m = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        self.up.store(true, Ordering::Relaxed);
        let since = m.since.take()?;
        let note = Note::Back {
            failures: m.failures,
            after: now.saturating_duration_since(since),
        };
        *m = Memory::default();
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn an_outage_is_logged_once_then_every_ten_seconds_then_its_end() {
        let t0 = Instant::now();
        let reach = Reach::default();
        assert!(reach.is_up());
        assert_eq!(reach.succeeded(t0), None);
        assert_eq!(reach.failed(t0), Some(Note::Down));
        assert!(!reach.is_up());
        for i in 1..=9 {
            assert_eq!(reach.failed(t0 + i * S), None, "{i}");
        }
        assert_eq!(
            reach.failed(t0 + 10 * S),
            Some(Note::StillDown { failures: 10 })
        );
        assert_eq!(reach.failed(t0 + 11 * S), None);
        assert_eq!(
            reach.succeeded(t0 + 12 * S),
            Some(Note::Back {
                failures: 12,
                after: 12 * S
            })
        );
        assert!(reach.is_up());
        assert_eq!(reach.succeeded(t0 + 13 * S), None);
        // The next outage starts its own count.
        assert_eq!(reach.failed(t0 + 14 * S), Some(Note::Down));
        assert_eq!(
            reach.succeeded(t0 + 15 * S),
            Some(Note::Back {
                failures: 1,
                after: S
            })
        );
    }
}
