//! Per-key and per-team limits and budgets: the state the request path checks before it
//! routes, and settles when the request ends.
//!
//! The decisions are plain state machines with the clock as a parameter — a GCRA rate
//! limiter for requests and tokens ([`rate`]), a gauge of requests in flight ([`parallel`]),
//! a budget per period ([`budget`]) — so each is tested with a fake clock in microseconds.
//! [`limits`] is the one interface the HTTP edge uses (`admit`, `settle`, the [`Permit`]
//! guard that settles once); [`local`] keeps the counters in this process, the default.
//! A store shared by replicas (Redis) is another implementation of the same trait.

pub mod budget;
pub mod limits;
pub mod local;
pub mod parallel;
pub mod rate;

pub use limits::{estimate, Limits, Now, Permit, Reason, Refusal, Spend, Store};
pub use local::InProcess;
