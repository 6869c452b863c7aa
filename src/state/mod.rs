//! Per-key and per-team limits and budgets: the state the request path checks before it
//! routes, and settles when the request ends.
//!
//! The decisions are plain state machines with the clock as a parameter — a GCRA rate
//! limiter for requests and tokens ([`rate`]), a gauge of requests in flight ([`parallel`]),
//! a budget per period ([`budget`]) — so each is tested with a fake clock in microseconds.
//! [`limits`] is the one interface the HTTP edge uses (`admit`, `settle`, the [`Permit`]
//! guard that settles once); [`local`] keeps the counters in this process, the default.
//! [`shared`] keeps them in Redis for every replica (`[state] redis_url`), with
//! `telemetry::reach` saying whether it answers; [`Store`] is either.

pub mod budget;
pub mod limits;
pub mod local;
pub mod parallel;
pub mod rate;
pub mod shared;

pub use limits::{estimate, Now, Permit, Reason, Refusal, Spend, Store};
pub use local::{BudgetNow, InProcess};
pub use shared::Shared;
