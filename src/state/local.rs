//! `InProcess`: the limit counters kept in this process (the default, and what a single
//! replica needs).
//!
//! Built at start-up from the configuration: one entry per key and per team, each limit
//! behind its own small lock (rates, budget) or an atomic (parallel), so admissions of
//! different keys never contend, and a key without limits costs a bounds check and a few
//! empty `Option`s — no lock, no allocation. A key's request passes its own limits and its
//! team's; a limit that refuses gives back what the ones before it took.
//!
//! Keys made at run time (the admin API) join with [`InProcess::set_key`]: the key table is
//! swapped whole (readers never wait), a key keeps its slot for the life of the process, and
//! a key whose limits change gets new limiters (its budget's spend carried over). A request
//! admitted under the old limiters settles its spend but not its place or reservation, which
//! belonged to limiters that are gone (its admission carries the key's generation).
//!
//! Settlement corrects the token reservation with the real usage (both layers), adds the
//! cost to both budgets, counts spend and tokens by key and team, and reports a soft budget
//! crossed once per period (a log line and a counter).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use opentelemetry::KeyValue;

use super::budget::Budget;
use super::limits::{Admission, Now, Reason, Refusal, Scope, Spend, PARALLEL_RETRY};
use super::parallel::Gauge;
use super::rate::Rate;
use crate::board::ModelId;
use crate::catalog::{Catalog, Price};
use crate::config::{Config, KeyPolicy, Limits as Configured};
use crate::errors::{Quota, Quotas};
use crate::telemetry::metrics::{label, Meters};

/// A poisoned lock still holds a usable counter.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The limiters of one key or team (each `None` when not configured).
#[derive(Debug)]
struct Layer {
    name: Arc<str>,
    scope: Scope,
    rpm: Option<Mutex<Rate>>,
    tpm: Option<Mutex<Rate>>,
    parallel: Option<Gauge>,
    budget: Option<Mutex<Budget>>,
    /// `scope`, `name`: the budget gauge's and soft-crossing counter's labels.
    labels: [KeyValue; 2],
}

impl Layer {
    fn new(name: &str, scope: Scope, limits: &Configured, origin: Instant) -> Self {
        let name: Arc<str> = Arc::from(name);
        Self {
            labels: [KeyValue::new("scope", scope.label()), label("name", &name)],
            name,
            scope,
            rpm: limits.rpm.map(|l| Mutex::new(Rate::per_minute(l, origin))),
            tpm: limits.tpm.map(|l| Mutex::new(Rate::per_minute(l, origin))),
            parallel: limits.max_parallel.map(Gauge::new),
            budget: limits
                .budget_usd
                .map(|usd| Mutex::new(Budget::new(usd, limits.soft_budget_usd, limits.period()))),
        }
    }

    fn refusal(&self, reason: Reason, retry_after: Duration, quotas: Quotas) -> Refusal {
        Refusal {
            reason,
            scope: self.scope,
            retry_after,
            quotas,
        }
    }

    /// Corrects a reservation of `reserved` tokens to `used`.
    fn settle_tokens(&self, reserved: u64, used: u64, now: Instant) {
        if let Some(tpm) = &self.tpm {
            let mut tpm = lock(tpm);
            // What `take` reserved: never more than the whole limit.
            let reserved = reserved.min(tpm.limit());
            if used > reserved {
                tpm.charge(used - reserved, now);
            } else {
                tpm.give_back(reserved - used, now);
            }
        }
    }
}

/// One key: its limits, its team, its allowed models, its labels.
#[derive(Debug)]
struct Key {
    /// Shared by the key's entries before and after a reload that left its limits alone.
    own: Arc<Layer>,
    /// Index into the teams, when the key names a configured team.
    team: Option<usize>,
    /// Allowed models by model index; `None`: every model.
    allowed: Option<Box<[bool]>>,
    /// The names `allowed` was built from (a reload builds it again).
    models: Option<Vec<String>>,
    /// `key`, `team`: the spend and refusal counters' labels.
    labels: [KeyValue; 2],
    /// Which limiters of the key's slot these are (see [`InProcess::set_key`]).
    generation: u64,
}

impl Layer {
    /// Whether a soft budget's crossings are counted (born at 0).
    fn has_soft_budget(&self) -> bool {
        self.budget
            .as_ref()
            .is_some_and(|b| lock(b).soft().is_some())
    }
}

/// A budget as it stands (the admin API's view of a key).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetNow {
    pub limit_usd: f64,
    pub soft_usd: Option<f64>,
    pub spent_usd: f64,
    pub period: crate::config::BudgetPeriod,
}

/// The in-process limit counters.
pub struct InProcess {
    /// By key slot: `[[keys]]` in order, then keys made at run time.
    keys: ArcSwap<Vec<Arc<Key>>>,
    /// Serializes [`InProcess::set_key`] (readers never take it).
    changing: Mutex<()>,
    generations: AtomicU64,
    teams: Vec<Layer>,
    /// By model index, the retired's included; a reload swaps them ([`InProcess::reconfigure`]).
    prices: ArcSwap<Vec<Price>>,
    /// Model names by model index, for the keys' allow-lists.
    model_names: ArcSwap<Vec<Arc<str>>>,
    origin: Instant,
    /// Set once the metrics exist (they read this store's budgets, so they come after it).
    meters: OnceLock<Arc<Meters>>,
}

impl InProcess {
    /// The counters for `config`'s keys and teams, every limiter whole at `origin`.
    pub fn new(config: &Config, catalog: &Catalog, origin: Instant) -> Self {
        let teams: Vec<Layer> = config
            .teams
            .iter()
            .map(|(name, team)| Layer::new(name, Scope::Team, &team.limits(), origin))
            .collect();
        let mut store = Self {
            keys: ArcSwap::from_pointee(Vec::new()),
            changing: Mutex::new(()),
            generations: AtomicU64::new(0),
            teams,
            prices: ArcSwap::from_pointee(catalog.prices()),
            model_names: ArcSwap::from_pointee(catalog.model_names()),
            origin,
            meters: OnceLock::new(),
        };
        let keys = config
            .keys
            .iter()
            .map(|k| Arc::new(store.key(&k.policy())))
            .collect();
        store.keys = ArcSwap::from_pointee(keys);
        store
    }

    /// A key's limiters, whole.
    fn key(&self, policy: &KeyPolicy) -> Key {
        let team = policy
            .team
            .as_deref()
            .and_then(|t| self.teams.iter().position(|layer| *layer.name == *t));
        let own = Layer::new(&policy.name, Scope::Key, &policy.limits, self.origin);
        let team_name: Arc<str> = Arc::from(policy.team.as_deref().unwrap_or("none"));
        Key {
            labels: [label("key", &own.name), label("team", &team_name)],
            own: Arc::new(own),
            team,
            allowed: self.allowed(policy.models.as_deref()),
            models: policy.models.clone(),
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The allow-list of `models` by model index (`None`: every model).
    fn allowed(&self, models: Option<&[String]>) -> Option<Box<[bool]>> {
        let names = self.model_names.load();
        models.map(|ids| {
            names
                .iter()
                .map(|name| ids.iter().any(|id| **id == **name))
                .collect()
        })
    }

    /// Takes a reloaded catalogue's prices and models (its ids extend the ones before):
    /// every key keeps its limiters and generation, with its allow-list built again.
    /// Changed limits are [`InProcess::set_key`]'s, called after this.
    pub fn reconfigure(&self, catalog: &Catalog) {
        let _changing = lock(&self.changing);
        self.prices.store(Arc::new(catalog.prices()));
        self.model_names.store(Arc::new(catalog.model_names()));
        let keys = self
            .keys
            .load()
            .iter()
            .map(|k| {
                Arc::new(Key {
                    own: k.own.clone(),
                    team: k.team,
                    allowed: self.allowed(k.models.as_deref()),
                    models: k.models.clone(),
                    labels: k.labels.clone(),
                    generation: k.generation,
                })
            })
            .collect();
        self.keys.store(Arc::new(keys));
    }

    /// Sets the limits of the key in `slot` (a new slot is the next one): new limiters, the
    /// spend of its budget's current period carried over when the period is the same.
    pub fn set_key(&self, slot: usize, policy: &KeyPolicy, now: SystemTime) {
        let _changing = lock(&self.changing);
        let key = self.key(policy);
        let mut keys = Vec::clone(&self.keys.load());
        if let Some(old) = keys.get(slot) {
            if let (Some(old), Some(new)) = (&old.own.budget, &key.own.budget) {
                let old = lock(old);
                let mut new = lock(new);
                if old.period() == new.period() {
                    new.observe(old.spent(now), now);
                }
            }
        }
        if let Some(m) = self.meters.get() {
            if key.own.has_soft_budget() {
                m.soft_budget_crossings.add(0, &key.own.labels);
            }
        }
        let key = Arc::new(key);
        match keys.get_mut(slot) {
            Some(entry) => *entry = key,
            None => {
                // Slots are handed out in order; a gap would only hold keys never seen.
                let unknown = KeyPolicy {
                    name: "unknown".into(),
                    ..KeyPolicy::default()
                };
                while keys.len() < slot {
                    keys.push(Arc::new(self.key(&unknown)));
                }
                keys.push(key);
            }
        }
        self.keys.store(Arc::new(keys));
    }

    /// Counts spend, tokens and refusals into `meters` from now on (once).
    pub fn attach_meters(&self, meters: Arc<Meters>) {
        // Every soft budget's crossings exist from the start, at 0, for `increase()`.
        let keys = self.keys.load();
        let layers = keys.iter().map(|k| &*k.own).chain(&self.teams);
        for layer in layers {
            if layer.has_soft_budget() {
                meters.soft_budget_crossings.add(0, &layer.labels);
            }
        }
        let _ = self.meters.set(meters);
    }

    /// The budget of the key in `slot` at `now`: its limit, its period and what was spent in
    /// the period holding `now`.
    pub fn key_budget(&self, slot: usize, now: SystemTime) -> Option<BudgetNow> {
        let keys = self.keys.load();
        let budget = lock(keys.get(slot)?.own.budget.as_ref()?).clone();
        Some(BudgetNow {
            limit_usd: budget.limit(),
            soft_usd: budget.soft(),
            spent_usd: budget.spent(now),
            period: budget.period(),
        })
    }

    /// Every configured budget's USD left at `now`, for the budget gauge.
    pub fn budgets_left(&self, now: SystemTime, observe: &mut dyn FnMut(f64, &[KeyValue])) {
        let keys = self.keys.load();
        let layers = keys.iter().map(|k| &*k.own).chain(&self.teams);
        for layer in layers {
            if let Some(budget) = &layer.budget {
                observe(lock(budget).remaining(now), &layer.labels);
            }
        }
    }

    /// A key's own layer and its team's.
    fn layers<'a>(&'a self, key: &'a Key) -> [Option<&'a Layer>; 2] {
        [Some(&*key.own), key.team.and_then(|t| self.teams.get(t))]
    }

    fn count_refusal(&self, key: &Key, reason: Reason) {
        if let Some(m) = self.meters.get() {
            let [k, t] = &key.labels;
            m.limit_refusals.add(
                1,
                &[
                    k.clone(),
                    t.clone(),
                    KeyValue::new("reason", reason.label()),
                ],
            );
        }
    }

    /// Takes what `key`'s layers require, or gives it all back and refuses.
    fn take(&self, key: &Key, estimate: u64, now: Now) -> Result<Quotas, Refusal> {
        let layers = self.layers(key);
        let mut quotas = Quotas::default();
        // Budgets first: a look, nothing taken.
        for layer in layers.iter().flatten() {
            if let Some(budget) = &layer.budget {
                if let Err(wait) = lock(budget).check(now.wall) {
                    return Err(layer.refusal(Reason::Budget, wait, quotas));
                }
            }
        }
        let mut taken = Taken::default();
        for (i, layer) in layers.iter().enumerate() {
            let Some(layer) = layer else { continue };
            if let Some(rpm) = &layer.rpm {
                let got = lock(rpm).take(1, now.mono);
                merge(&mut quotas.requests, got.quota, got.allowed.is_err());
                if let Err(wait) = got.allowed {
                    taken.undo(&layers, estimate, now.mono);
                    return Err(layer.refusal(Reason::Rpm, wait, quotas));
                }
                taken.requests[i] = true;
            }
            if let Some(tpm) = &layer.tpm {
                let got = lock(tpm).take(estimate, now.mono);
                merge(&mut quotas.tokens, got.quota, got.allowed.is_err());
                if let Err(wait) = got.allowed {
                    taken.undo(&layers, estimate, now.mono);
                    return Err(layer.refusal(Reason::Tpm, wait, quotas));
                }
                taken.tokens[i] = true;
            }
            if let Some(gauge) = &layer.parallel {
                if !gauge.enter() {
                    taken.undo(&layers, estimate, now.mono);
                    return Err(layer.refusal(Reason::Parallel, PARALLEL_RETRY, quotas));
                }
                taken.parallel[i] = true;
            }
        }
        Ok(quotas)
    }

    /// Adds a request's cost to the budgets and the counters.
    fn spend(&self, key: &Key, model: ModelId, input: u64, output: u64, now: SystemTime) {
        let cost = self.cost(model, input, output);
        for layer in self.layers(key).into_iter().flatten() {
            let Some(budget) = &layer.budget else {
                continue;
            };
            let crossed = {
                let mut budget = lock(budget);
                let spent = budget.spend(cost, now);
                spent.soft_crossed.then(|| SoftBudgetCrossed {
                    layer,
                    budget_usd: budget.limit(),
                    soft_budget_usd: budget.soft().unwrap_or_default(),
                })
            };
            if let Some(crossed) = crossed {
                crossed.emit(self.meters.get().map(Arc::as_ref));
            }
        }
        self.count(key, cost, input, output);
    }

    /// Counts spend and tokens by key and team.
    fn count(&self, key: &Key, cost: f64, input: u64, output: u64) {
        if let Some(m) = self.meters.get() {
            let [k, t] = &key.labels;
            m.cost_by_key.add(cost, &key.labels);
            for (kind, n) in [("input", input), ("output", output)] {
                m.tokens_by_key
                    .add(n, &[k.clone(), t.clone(), KeyValue::new("type", kind)]);
            }
        }
    }
}

/// A key's or team's spend crossed its soft budget (once per period): a WARN line and a count.
struct SoftBudgetCrossed<'a> {
    layer: &'a Layer,
    budget_usd: f64,
    soft_budget_usd: f64,
}

impl SoftBudgetCrossed<'_> {
    fn emit(&self, meters: Option<&Meters>) {
        tracing::warn!(
            scope = self.layer.scope.label(),
            name = %self.layer.name,
            soft_budget_usd = self.soft_budget_usd,
            budget_usd = self.budget_usd,
            "soft budget crossed for this period"
        );
        if let Some(m) = meters {
            m.soft_budget_crossings.add(1, &self.layer.labels);
        }
    }
}

/// Keeps the tighter quota of a key's and its team's: the refusing one, else the one with
/// less left.
pub(super) fn merge(slot: &mut Option<Quota>, quota: Quota, refused: bool) {
    match slot {
        Some(current) if !refused && current.remaining <= quota.remaining => {}
        _ => *slot = Some(quota),
    }
}

/// What an admission took so far, by layer (to give back when a later limit refuses).
#[derive(Default)]
struct Taken {
    requests: [bool; 2],
    tokens: [bool; 2],
    parallel: [bool; 2],
}

impl Taken {
    fn undo(&self, layers: &[Option<&Layer>; 2], estimate: u64, now: Instant) {
        for (i, layer) in layers.iter().enumerate() {
            let Some(layer) = layer else { continue };
            if let (true, Some(rpm)) = (self.requests[i], &layer.rpm) {
                lock(rpm).give_back(1, now);
            }
            if let (true, Some(tpm)) = (self.tokens[i], &layer.tpm) {
                let mut tpm = lock(tpm);
                let reserved = estimate.min(tpm.limit());
                tpm.give_back(reserved, now);
            }
            if let (true, Some(gauge)) = (self.parallel[i], &layer.parallel) {
                gauge.leave();
            }
        }
    }
}

/// One layer of limits: a key's own (by key index) or a team's (by team index, in the
/// configuration's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerRef {
    Key(usize),
    Team(usize),
}

/// What the shared store needs of this process's counters: the allow-list, the metrics, the
/// budgets it mirrors.
impl InProcess {
    /// Runs `f` on a layer, when it exists.
    fn with_layer(&self, layer: LayerRef, f: impl FnOnce(&Layer)) {
        match layer {
            LayerRef::Key(i) => {
                if let Some(k) = self.keys.load().get(i) {
                    f(&k.own);
                }
            }
            LayerRef::Team(i) => {
                if let Some(team) = self.teams.get(i) {
                    f(team);
                }
            }
        }
    }

    /// Refuses a model the key may not use (and counts it).
    pub(super) fn check_model(&self, key: usize, model: Option<ModelId>) -> Result<(), Refusal> {
        let keys = self.keys.load();
        let Some(k) = keys.get(key) else {
            return Ok(());
        };
        if let (Some(allowed), Some(model)) = (&k.allowed, model) {
            if !allowed.get(model.index()).copied().unwrap_or(false) {
                self.count_refusal(k, Reason::ModelNotAllowed);
                return Err(k.own.refusal(
                    Reason::ModelNotAllowed,
                    Duration::ZERO,
                    Quotas::default(),
                ));
            }
        }
        Ok(())
    }

    /// Counts a refusal decided elsewhere.
    pub(super) fn refused(&self, key: usize, reason: Reason) {
        if let Some(k) = self.keys.load().get(key) {
            self.count_refusal(k, reason);
        }
    }

    /// Counts a request's spend and tokens by key and team (nothing else) and returns its
    /// cost.
    pub(super) fn count_spend(&self, key: usize, model: ModelId, input: u64, output: u64) -> f64 {
        let cost = self.cost(model, input, output);
        if let Some(k) = self.keys.load().get(key) {
            self.count(k, cost, input, output);
        }
        cost
    }

    /// The cost of `input` and `output` tokens of `model`.
    pub(super) fn cost(&self, model: ModelId, input: u64, output: u64) -> f64 {
        self.prices
            .load()
            .get(model.index())
            .map_or(0.0, |p| p.cost(input, output))
    }

    /// Sets a budget's spend in the period holding `now` to what the shared store holds.
    pub(super) fn mirror_spend(&self, layer: LayerRef, spent: f64, now: SystemTime) {
        self.with_layer(layer, |l| {
            if let Some(budget) = &l.budget {
                lock(budget).observe(spent, now);
            }
        });
    }

    /// Reports a soft budget crossed, as decided by the shared store (once for all replicas).
    pub(super) fn soft_crossed(&self, layer: LayerRef) {
        self.with_layer(layer, |l| {
            let Some(budget) = &l.budget else { return };
            let (budget_usd, soft_budget_usd) = {
                let b = lock(budget);
                (b.limit(), b.soft().unwrap_or_default())
            };
            SoftBudgetCrossed {
                layer: l,
                budget_usd,
                soft_budget_usd,
            }
            .emit(self.meters.get().map(Arc::as_ref));
        });
    }

    pub(super) fn meters(&self) -> Option<&Arc<Meters>> {
        self.meters.get()
    }

    /// Sets every budget's spend in the period holding `now` from `read(team, name,
    /// period_start_ms)` (the usage ledger's rollups); how many budgets were read.
    pub async fn reload_budgets<F, Fut, E>(&self, now: SystemTime, read: F) -> Result<usize, E>
    where
        F: Fn(bool, String, i64) -> Fut,
        Fut: std::future::Future<Output = Result<f64, E>>,
    {
        let mut n = 0;
        let keys = self.keys.load_full();
        let layers = keys.iter().map(|k| &*k.own).chain(&self.teams);
        for layer in layers {
            let Some(budget) = &layer.budget else {
                continue;
            };
            let period = lock(budget).period();
            let start_ms = i64::try_from(super::budget::span(period, now).start)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000);
            let team = layer.scope == Scope::Team;
            let spent = read(team, layer.name.to_string(), start_ms).await?;
            lock(budget).observe(spent, now);
            n += 1;
        }
        Ok(n)
    }
}

impl InProcess {
    /// Admits a request of key `key` for `model` reserving `estimate` tokens, or refuses it
    /// (see [`super::Store::admit`]).
    pub fn admit(
        &self,
        key: usize,
        model: Option<ModelId>,
        estimate: u64,
        now: Now,
    ) -> Result<Admission, Refusal> {
        let keys = self.keys.load();
        let Some(k) = keys.get(key) else {
            return Ok(Admission::local(0, Quotas::default(), 0));
        };
        self.check_model(key, model)?;
        match self.take(k, estimate, now) {
            Ok(quotas) => Ok(Admission::local(estimate, quotas, k.generation)),
            Err(refusal) => {
                self.count_refusal(k, refusal.reason);
                Err(refusal)
            }
        }
    }

    /// Settles an admitted request (see [`super::Store::settle`]).
    pub fn settle(&self, key: usize, admission: &Admission, spend: Spend, now: Now) {
        let keys = self.keys.load();
        let Some(k) = keys.get(key) else {
            return;
        };
        let used = match spend {
            Spend::Nothing => 0,
            Spend::Unknown => admission.reserved,
            Spend::Tokens { input, output, .. } => input.saturating_add(output),
        };
        // The team's limiters never change; the key's may have since the admission.
        let [own, team] = self.layers(k);
        let own = own.filter(|_| admission.generation == k.generation);
        for layer in [own, team].into_iter().flatten() {
            if let Some(gauge) = &layer.parallel {
                gauge.leave();
            }
            layer.settle_tokens(admission.reserved, used, now.mono);
        }
        if let Spend::Tokens {
            model,
            input,
            output,
        } = spend
        {
            self.spend(k, model, input, output, now.wall);
        }
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
