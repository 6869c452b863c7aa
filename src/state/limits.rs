//! The interface the request path uses against per-key and per-team limits, whatever holds
//! the counters: [`Limits::admit`] before routing, [`Limits::settle`] when the request ends.
//!
//! The handler admits a request after authenticating it and parsing its body, with a token
//! estimate ([`estimate`]). An admission comes back as a [`Permit`]: the guard that settles
//! exactly once — with the answer's real usage and cost when the router's `Ending` tells it
//! the record (see `outcome::Settle`), or with nothing when dropped unsettled (a request
//! refused before routing, a client gone). Settlement runs where the request ends, after the
//! answer, and is never awaited by the client. A refusal says why, for how long, and the
//! quotas for the `x-ratelimit-*` headers.
//!
//! The counters live in the process ([`super::local::InProcess`]) or, with `[state]
//! redis_url`, in Redis shared by every replica ([`super::shared::Shared`]): [`Store`] is
//! either, and admission awaits only the shared one's round trip.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::board::ModelId;
use crate::errors::{ApiError, Quotas, RateLimit};
use crate::outcome::{CompletionRecord, Settle};

use super::local::InProcess;
use super::shared::Shared;

/// Tokens reserved for the answer when the client declares no ceiling (chat, completions,
/// responses, messages; embeddings have no output).
pub const OUTPUT_ALLOWANCE: u64 = 256;

/// The tokens a request reserves: its input estimated as a token per 4 bytes of body, plus
/// its declared output ceiling or [`OUTPUT_ALLOWANCE`] when the API answers with text.
pub fn estimate(body_len: usize, declared_output: Option<u64>, has_output: bool) -> u64 {
    let input = (body_len as u64).div_ceil(4);
    let output = match (declared_output, has_output) {
        (Some(declared), _) => declared,
        (None, true) => OUTPUT_ALLOWANCE,
        (None, false) => 0,
    };
    input.saturating_add(output)
}

/// The moment of a decision, both clocks read once by the caller: the monotonic one for
/// rates, the wall clock for budget periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// Reads both clocks (the request path's; tests pass their own).
    pub fn read() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Why a request was refused: the `reason` label of `gatewayz_limit_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rpm,
    Tpm,
    Parallel,
    Budget,
    ModelNotAllowed,
    /// The shared store is unreachable and the policy is `fail_closed`.
    Unavailable,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Self::Rpm,
        Self::Tpm,
        Self::Parallel,
        Self::Budget,
        Self::ModelNotAllowed,
        Self::Unavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::Parallel => "parallel",
            Self::Budget => "budget",
            Self::ModelNotAllowed => "model_not_allowed",
            Self::Unavailable => "store_unavailable",
        }
    }
}

/// Whose limit refused: the key's own, or its team's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    Team,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub scope: Scope,
    /// When a retry may pass (`Retry-After`).
    pub retry_after: Duration,
    /// The quotas as they stand (`x-ratelimit-*`).
    pub quotas: Quotas,
}

/// How long a client refused for parallelism is told to wait: a request in flight may end
/// at any moment.
pub const PARALLEL_RETRY: Duration = Duration::from_secs(1);

impl Refusal {
    /// The client's answer; `model` is the id the client asked for.
    pub fn into_error(self, model: &str) -> ApiError {
        let whose = match self.scope {
            Scope::Key => "this API key",
            Scope::Team => "this API key's team",
        };
        let limit = |message: String| RateLimit {
            message,
            retry_after: self.retry_after,
            quotas: self.quotas,
        };
        match self.reason {
            Reason::ModelNotAllowed => ApiError::ModelNotAllowed(shorten(model)),
            Reason::Unavailable => ApiError::LimitsUnavailable,
            Reason::Budget => ApiError::BudgetExceeded(limit(format!(
                "{whose} has spent its budget for this period; retry when the next one begins"
            ))),
            Reason::Rpm => ApiError::RateLimited(limit(format!(
                "rate limit exceeded for {whose}: requests per minute; retry later"
            ))),
            Reason::Tpm => ApiError::RateLimited(limit(format!(
                "rate limit exceeded for {whose}: tokens per minute; retry later"
            ))),
            Reason::Parallel => ApiError::RateLimited(limit(format!(
                "too many requests in flight for {whose}; retry when one has ended"
            ))),
        }
    }
}

/// A model id as echoed in an error: at most 200 characters.
fn shorten(model: &str) -> String {
    match model.char_indices().nth(200) {
        Some((cut, _)) => model[..cut].to_owned(),
        None => model.to_owned(),
    }
}

/// What an admitted request holds until it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Tokens reserved against the token limits.
    pub reserved: u64,
    /// The quotas after this request (`x-ratelimit-*` on the answer).
    pub quotas: Quotas,
    /// Admitted by the shared store, under this lease number (its settlement goes there);
    /// `None`: by this process's counters.
    pub lease: Option<u64>,
    /// The generation of the key's in-process limiters that admitted it (a key whose limits
    /// changed since has new ones, which took nothing for this request).
    pub generation: u64,
}

impl Admission {
    /// Admitted by this process's counters.
    pub fn local(reserved: u64, quotas: Quotas, generation: u64) -> Self {
        Self {
            reserved,
            quotas,
            lease: None,
            generation,
        }
    }
}

/// What a request used, as its end tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// No provider answered: the reservation is given back whole.
    Nothing,
    /// A provider answered without usage: the reservation stands, nothing is priced.
    Unknown,
    /// A provider reported usage: the reservation is corrected, the tokens priced.
    Tokens {
        model: ModelId,
        input: u64,
        output: u64,
    },
}

impl Spend {
    /// What the record of a request's end says it used.
    pub fn of(record: &CompletionRecord) -> Self {
        match (record.answered, record.usage) {
            (false, _) => Self::Nothing,
            (true, None) => Self::Unknown,
            (true, Some(usage)) => Self::Tokens {
                model: record.model,
                input: usage.prompt_tokens,
                output: usage.completion_tokens,
            },
        }
    }
}

/// The limit counters as the request path holds them: this process's, or shared by every
/// replica.
#[derive(Clone)]
pub enum Store {
    Local(Arc<InProcess>),
    Shared(Arc<Shared>),
}

impl Store {
    /// Admits a request of key `key` (its index in `[[keys]]`) for `model` (`None`: not a
    /// configured model, left for the router to refuse) reserving `estimate` tokens, or
    /// refuses it. In process it never waits; shared, at most `[state] timeout`.
    pub async fn admit(
        &self,
        key: usize,
        model: Option<ModelId>,
        estimate: u64,
        now: Now,
    ) -> Result<Admission, Refusal> {
        match self {
            Self::Local(local) => local.admit(key, model, estimate, now),
            // Boxed: the round trip's future (a timer, a channel) is large, and the request
            // handler's future would otherwise carry its size on every path, keyless too.
            Self::Shared(shared) => Box::pin(shared.admit(key, model, estimate, now)).await,
        }
    }

    /// Settles an admitted request: gives its place back, corrects its reservation with what
    /// it used and adds its cost to the budgets. Called once per admission; never waits.
    pub fn settle(&self, key: usize, admission: &Admission, spend: Spend, now: Now) {
        match self {
            Self::Local(local) => local.settle(key, admission, spend, now),
            Self::Shared(shared) => shared.settle(key, admission, spend, now),
        }
    }

    /// Sets the limits of the key in `slot`, a key made or changed at run time (the next
    /// slot for a new key). Requests admitted before settle their spend against it.
    pub fn set_key(&self, slot: usize, policy: &crate::config::KeyPolicy, now: SystemTime) {
        match self {
            Self::Local(local) => local.set_key(slot, policy, now),
            Self::Shared(shared) => shared.set_key(slot, policy, now),
        }
    }

    /// Counts spend, tokens, refusals (and the shared store's figures) into `meters` from
    /// now on.
    pub fn attach_meters(&self, meters: Arc<crate::telemetry::metrics::Meters>) {
        match self {
            Self::Local(local) => local.attach_meters(meters),
            Self::Shared(shared) => shared.attach_meters(meters),
        }
    }

    /// This process's counters (a shared store keeps them as its fallback and its mirror of
    /// the budgets).
    pub fn local(&self) -> &Arc<InProcess> {
        match self {
            Self::Local(local) => local,
            Self::Shared(shared) => shared.local(),
        }
    }
}

/// An admitted request: settles once, when the router's `Ending` tells it the record or when
/// dropped (with [`Spend::Nothing`]).
pub struct Permit {
    store: Store,
    key: usize,
    admission: Admission,
    spend: Spend,
}

impl Permit {
    /// Admits a request (see [`Store::admit`]).
    pub async fn admit(
        store: &Store,
        key: usize,
        model: Option<ModelId>,
        estimate: u64,
        now: Now,
    ) -> Result<Self, Refusal> {
        let admission = store.admit(key, model, estimate, now).await?;
        Ok(Self {
            store: store.clone(),
            key,
            admission,
            spend: Spend::Nothing,
        })
    }

    /// The quotas after this request, for the answer's headers.
    pub fn quotas(&self) -> Quotas {
        self.admission.quotas
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.store
            .settle(self.key, &self.admission, self.spend, Now::read());
    }
}

impl Settle for Permit {
    fn settle(mut self: Box<Self>, record: &CompletionRecord) {
        self.spend = Spend::of(record);
        // Dropping settles.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn estimates_table() {
        assert_eq!(estimate(400, None, true), 100 + OUTPUT_ALLOWANCE);
        assert_eq!(estimate(401, Some(1000), true), 101 + 1000);
        assert_eq!(estimate(400, None, false), 100);
        assert_eq!(estimate(0, Some(u64::MAX), true), u64::MAX);
    }

    #[test]
    fn refusals_answer_with_their_codes() {
        let refusal = |reason| Refusal {
            reason,
            scope: Scope::Team,
            retry_after: Duration::from_secs(3),
            quotas: Quotas::default(),
        };
        let codes: Vec<_> = Reason::ALL
            .iter()
            .map(|r| refusal(*r).into_error("m").code())
            .collect();
        assert_eq!(
            codes,
            [
                "rate_limit_exceeded",
                "rate_limit_exceeded",
                "rate_limit_exceeded",
                "budget_exceeded",
                "model_not_allowed",
                "shared_state_unavailable"
            ]
        );
        assert!(refusal(Reason::Budget)
            .into_error("m")
            .to_string()
            .contains("team"));
        let long = "x".repeat(500);
        assert_eq!(
            refusal(Reason::ModelNotAllowed)
                .into_error(&long)
                .to_string()
                .len(),
            "this API key may not use the model ``".len() + 200
        );
    }

    /// A key allowed one request in flight and 1000 tokens a minute.
    fn one_at_a_time() -> Store {
        let config = crate::config::Config::from_toml(
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n[[keys]]\n\
             name = \"k\"\nkey = \"k-secret-key\"\nmax_parallel = 1\nrate_limit_tpm = 1000\n",
            "test.toml",
            &|_| None,
        )
        .unwrap();
        let catalog = crate::catalog::Catalog::new(&config);
        Store::Local(Arc::new(InProcess::new(&config, &catalog, Instant::now())))
    }

    fn admit(store: &Store, estimate: u64) -> Result<Permit, Refusal> {
        // In process, admission is ready at once.
        Permit::admit(store, 0, None, estimate, Now::read())
            .now_or_never()
            .unwrap()
    }

    #[test]
    fn a_permit_settles_once_told_or_dropped() {
        let store = one_at_a_time();
        let first = admit(&store, 100).unwrap();
        assert_eq!(first.quotas().tokens.unwrap().remaining, 900);
        assert_eq!(
            admit(&store, 100).err().map(|r| r.reason),
            Some(Reason::Parallel)
        );
        // Dropped unsettled: its place and its whole reservation come back.
        drop(first);
        let told = Box::new(admit(&store, 100).unwrap());
        let mut ending = crate::outcome::Ending::new(
            Arc::new(crate::outcome::NoopReporter),
            crate::config::Api::Chat,
            ModelId::from_index(0),
            false,
            Instant::now(),
        );
        // Answered without usage: the reservation stands, the place comes back, once.
        ending.answered(None);
        ending.settle_with(told);
        drop(ending);
        let third = admit(&store, 100).unwrap();
        assert_eq!(third.quotas().tokens.unwrap().remaining, 800);
    }
}
