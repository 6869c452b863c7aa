//! `Shared`: the limit counters in Redis, shared by every replica (`[state] redis_url`).
//!
//! One Lua script admits a request against a key's and its team's limits ([`ADMIT`]), one
//! settles it ([`SETTLE`]): each is one round trip and atomic in Redis, with Redis' own clock,
//! so N replicas allow exactly the configured limit. Keys are
//! `{prefix}:{key|team}:{name}:{rpm|tpm|par|spend:PERIOD}` and expire on their own.
//!
//! The request path never talks to Redis itself: a task on its own thread (`gatewayz-state`)
//! owns the connection (redis' `ConnectionManager`, which reconnects), and admissions and
//! settlements reach it over a bounded queue. An admission waits at most `[state] timeout`
//! for its answer; settlements are sent after the answer and never awaited. Keys without
//! limits (in either layer) never reach Redis at all.
//!
//! When Redis fails or is slow, [`Reach`] goes down and admissions follow the failure
//! policy at once: `fail_open` decides with this process's counters ([`InProcess`], which
//! also mirrors the budgets' shared spend so it continues from there), `fail_closed`
//! refuses. The task tries Redis again every `retry_interval`, reading the budgets' spend
//! back (which is also how an idle replica's budget gauge follows the others'); settlements
//! that could not be sent meanwhile wait in a bounded backlog and are sent when it answers.
//! An admission whose caller stopped waiting but that Redis took is given back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use opentelemetry::KeyValue;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::budget::span;
use super::limits::{Admission, Now, Reason, Refusal, Scope, Spend};
use super::local::{merge, InProcess, LayerRef};
use crate::board::ModelId;
use crate::config::{
    BudgetPeriod, Config, FailurePolicy, KeyPolicy, Limits as Configured, StateConfig,
};
use crate::errors::{Quota, Quotas};
use crate::telemetry::metrics::Meters;
use crate::telemetry::reach::{Note, Reach};

/// The admission script (see its header for keys, arguments and reply).
pub const ADMIT: &str = include_str!("lua/admit.lua");
/// The settlement script.
pub const SETTLE: &str = include_str!("lua/settle.lua");

/// Jobs waiting for the store's task, at most; past it, an admission is decided without the
/// store and a settlement is lost (counted).
const QUEUE: usize = 16 * 1024;
/// Settlements kept while the store is unreachable, at most.
const BACKLOG: usize = 16 * 1024;
/// How long a budget's spend is kept in Redis past its period's end.
const SPEND_KEPT_PAST_PERIOD: u64 = 86_400;
/// A round trip that is not on the request path (settlement, refresh) gives up after this.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the task waits for its calls in flight when asked to flush at shutdown.
const FLUSH_MAX: Duration = Duration::from_secs(2);

/// What the shared store needs to start.
#[derive(Debug, thiserror::Error)]
#[error("state.redis_url: {0}")]
pub struct StartError(String);

/// A budget's settings, for the scripts and the refresh.
#[derive(Debug, Clone, Copy)]
struct BudgetPlan {
    usd: f64,
    soft: Option<f64>,
    period: BudgetPeriod,
}

/// One layer of a key's limits, as Redis keys and script arguments.
#[derive(Debug)]
struct LayerPlan {
    layer: LayerRef,
    scope: Scope,
    /// `{prefix}:{scope}:{name}:{rpm|tpm|par}`, built once.
    rpm_key: String,
    tpm_key: String,
    par_key: String,
    /// `{prefix}:{scope}:{name}:spend`, the period's start appended.
    spend_base: String,
    rpm: Option<u64>,
    tpm: Option<u64>,
    parallel: Option<u64>,
    budget: Option<BudgetPlan>,
}

impl LayerPlan {
    fn new(prefix: &str, layer: LayerRef, scope: Scope, name: &str, limits: &Configured) -> Self {
        let base = format!("{prefix}:{}:{}", scope.label(), escape(name));
        Self {
            layer,
            scope,
            rpm_key: format!("{base}:rpm"),
            tpm_key: format!("{base}:tpm"),
            par_key: format!("{base}:par"),
            spend_base: format!("{base}:spend"),
            rpm: limits.rpm,
            tpm: limits.tpm,
            parallel: limits.max_parallel,
            budget: limits.budget_usd.map(|usd| BudgetPlan {
                usd,
                soft: limits.soft_budget_usd,
                period: limits.period(),
            }),
        }
    }

    fn limited(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.parallel.is_some() || self.budget.is_some()
    }

    /// The spend key of the period holding `now`, and the seconds it is kept.
    fn spend_key(&self, budget: &BudgetPlan, now: SystemTime) -> (String, u64) {
        let period = span(budget.period, now);
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let keep = period.end.saturating_sub(secs) + SPEND_KEPT_PAST_PERIOD;
        (format!("{}:{}", self.spend_base, period.start), keep)
    }

    /// The four keys of both scripts: rpm, tpm, par, spend.
    fn keys(&self, call: &mut redis::ScriptInvocation<'_>, now: SystemTime) {
        call.key(&self.rpm_key)
            .key(&self.tpm_key)
            .key(&self.par_key);
        match &self.budget {
            Some(b) => call.key(self.spend_key(b, now).0),
            None => call.key(&self.spend_base),
        };
    }
}

/// The layers with limits of the key in `slot`: its own, its team's.
fn plan(
    prefix: &str,
    team_names: &[String],
    team_limits: &[Configured],
    slot: usize,
    key: &KeyPolicy,
) -> Vec<LayerPlan> {
    let own = LayerPlan::new(
        prefix,
        LayerRef::Key(slot),
        Scope::Key,
        &key.name,
        &key.limits,
    );
    let team = key
        .team
        .as_deref()
        .and_then(|t| team_names.iter().position(|name| name == t))
        .map(|t| {
            LayerPlan::new(
                prefix,
                LayerRef::Team(t),
                Scope::Team,
                &team_names[t],
                &team_limits[t],
            )
        });
    [Some(own), team]
        .into_iter()
        .flatten()
        .filter(LayerPlan::limited)
        .collect()
}

/// A name inside a Redis key: `:` (the separator) and `%` escaped, so no two names meet.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace(':', "%3A")
}

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn usd(x: Option<f64>) -> String {
    x.map(|x| format!("{x:?}")).unwrap_or_default()
}

/// What the store's task is asked.
enum Job {
    Admit {
        key: usize,
        estimate: u64,
        lease: u64,
        wall: SystemTime,
        reply: oneshot::Sender<Result<String, RedisError>>,
    },
    Settle(Settlement),
    /// Sends what is queued and answers when the calls in flight are done (shutdown).
    Flush(oneshot::Sender<()>),
}

/// One settlement, as sent to the settlement script.
#[derive(Debug, Clone, Copy)]
struct Settlement {
    key: usize,
    /// The admission's lease; `None`: admitted by this process (only its cost is shared).
    lease: Option<u64>,
    reserved: u64,
    used: u64,
    cost: f64,
    /// Give the request back too (an admission nobody waited for).
    request_back: bool,
    wall: SystemTime,
}

/// What both the request path and the store's task read.
struct Inner {
    local: Arc<InProcess>,
    /// By key slot: the layers with limits (empty: the key never reaches Redis); swapped
    /// whole when a key made at run time joins or changes ([`Shared::set_key`]).
    plans: ArcSwap<Vec<Arc<Vec<LayerPlan>>>>,
    /// Serializes [`Shared::set_key`].
    changing: std::sync::Mutex<()>,
    /// What a key's plan needs: the prefix, and the teams by name.
    prefix: String,
    team_names: Vec<String>,
    team_limits: Vec<Configured>,
    /// Teams' layers, for the refresh of their budgets.
    teams: Vec<LayerPlan>,
    reach: Reach,
    policy: FailurePolicy,
    timeout: Duration,
    /// How long an admission holds its place in flight at most (a replica that dies).
    lease_us: u64,
    /// This replica's random id: leases are `{replica}:{n}`.
    replica: String,
    next: AtomicU64,
    admit: Script,
    settle: Script,
}

/// The shared limit store.
pub struct Shared {
    inner: Arc<Inner>,
    jobs: mpsc::Sender<Job>,
}

impl Shared {
    /// Plans every key's Redis keys from `config` and starts the store's task on its own
    /// thread. Does not wait for Redis: until it answers, admissions follow the policy.
    pub fn start(config: &Config, local: Arc<InProcess>) -> Result<Self, StartError> {
        let state: &StateConfig = &config.state;
        let url = state
            .redis_url
            .as_deref()
            .ok_or_else(|| StartError("not set".into()))?;
        // The error never repeats the URL: it may hold a password.
        let client = redis::Client::open(url)
            .map_err(|e| StartError(format!("not a Redis URL ({:?})", e.kind())))?;
        let prefix = state.key_prefix.clone();
        let team_names: Vec<String> = config.teams.keys().cloned().collect();
        let team_limits: Vec<Configured> = config.teams.values().map(|t| t.limits()).collect();
        let teams: Vec<LayerPlan> = team_names
            .iter()
            .zip(&team_limits)
            .enumerate()
            .map(|(i, (name, limits))| {
                LayerPlan::new(&prefix, LayerRef::Team(i), Scope::Team, name, limits)
            })
            .collect();
        let plans = config
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| Arc::new(plan(&prefix, &team_names, &team_limits, i, &k.policy())))
            .collect();
        let lease = config.server.request_timeout + Duration::from_secs(60);
        let inner = Arc::new(Inner {
            local,
            plans: ArcSwap::from_pointee(plans),
            changing: std::sync::Mutex::new(()),
            prefix,
            team_names,
            team_limits,
            teams,
            reach: Reach::default(),
            policy: state.failure_policy,
            timeout: state.timeout,
            lease_us: u64::try_from(lease.as_micros()).unwrap_or(u64::MAX),
            replica: format!("{:016x}", rand::random::<u64>()),
            next: AtomicU64::new(0),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
        });
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(BACKGROUND_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(state.retry_interval);
        let (jobs, queue) = mpsc::channel(QUEUE);
        let task = inner.clone();
        let retry = state.retry_interval;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StartError(format!("cannot start its runtime: {e}")))?;
        std::thread::Builder::new()
            .name("gatewayz-state".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match ConnectionManager::new_lazy_with_config(client, manager) {
                        Ok(conn) => run(task, conn, queue, retry).await,
                        Err(e) => tracing::error!(
                            error = %e,
                            "the shared limit store cannot be used; admissions follow the failure policy"
                        ),
                    }
                });
            })
            .map_err(|e| StartError(format!("cannot start its thread: {e}")))?;
        Ok(Self { inner, jobs })
    }

    pub fn local(&self) -> &Arc<InProcess> {
        &self.inner.local
    }

    /// Sets the limits of the key in `slot` (a new slot is the next one), here and in the
    /// in-process fallback. Its counters in Redis are kept: they are named by the key's name.
    pub fn set_key(&self, slot: usize, policy: &KeyPolicy, now: SystemTime) {
        let inner = &*self.inner;
        inner.local.set_key(slot, policy, now);
        let _changing = inner
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let made = Arc::new(plan(
            &inner.prefix,
            &inner.team_names,
            &inner.team_limits,
            slot,
            policy,
        ));
        let mut plans = Vec::clone(&inner.plans.load());
        while plans.len() < slot {
            plans.push(Arc::new(Vec::new()));
        }
        match plans.get_mut(slot) {
            Some(entry) => *entry = made,
            None => plans.push(made),
        }
        inner.plans.store(Arc::new(plans));
    }

    /// Counts into `meters` from now on; the store's families exist from the start (up, and
    /// every counter at 0, for `increase()`).
    pub fn attach_meters(&self, meters: Arc<Meters>) {
        meters.shared_state_up.set(self.inner.reach.is_up());
        for op in ["admit", "settle", "refresh"] {
            meters
                .shared_state_errors
                .add(0, &[KeyValue::new("op", op)]);
        }
        meters
            .shared_state_bypassed
            .add(0, &[KeyValue::new("policy", self.inner.policy.label())]);
        meters.shared_state_lost.add(0, &[]);
        self.inner.local.attach_meters(meters);
    }

    /// Admits a request (see [`super::Store::admit`]): one round trip to Redis for a key
    /// with limits, at most `[state] timeout`.
    pub async fn admit(
        &self,
        key: usize,
        model: Option<ModelId>,
        estimate: u64,
        now: Now,
    ) -> Result<Admission, Refusal> {
        let inner = &*self.inner;
        // The plan itself, not the table's guard, is held across the round trip.
        let plan = inner
            .plans
            .load()
            .get(key)
            .filter(|p| !p.is_empty())
            .cloned();
        let Some(plan) = plan else {
            // No limits in either layer: the model list is all there is to check.
            return inner.local.admit(key, model, estimate, now);
        };
        inner.local.check_model(key, model)?;
        if !inner.reach.is_up() {
            return self.bypass(key, model, estimate, now);
        }
        let lease = inner.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let started = Instant::now();
        let job = Job::Admit {
            key,
            estimate,
            lease,
            wall: now.wall,
            reply,
        };
        if self.jobs.try_send(job).is_err() {
            inner.failed("admit", started, &"the queue to the store is full");
            return self.bypass(key, model, estimate, now);
        }
        let reply = match tokio::time::timeout(inner.timeout, answer).await {
            Ok(Ok(Ok(reply))) => reply,
            Ok(Ok(Err(e))) => {
                inner.failed("admit", started, &e);
                return self.bypass(key, model, estimate, now);
            }
            Ok(Err(_)) => {
                inner.failed("admit", started, &"the store's task is gone");
                return self.bypass(key, model, estimate, now);
            }
            Err(_) => {
                let waited = humantime::format_duration(inner.timeout);
                inner.failed("admit", started, &format!("no answer within {waited}"));
                return self.bypass(key, model, estimate, now);
            }
        };
        inner.succeeded("admit", started);
        let reply: Vec<&str> = reply.split(',').collect();
        match inner.decide(key, &plan, estimate, lease, &reply, now.wall) {
            Some(decision) => decision,
            None => {
                inner.failed("admit", started, &"an answer the gateway cannot read");
                self.bypass(key, model, estimate, now)
            }
        }
    }

    /// An admission decided without the store.
    fn bypass(
        &self,
        key: usize,
        model: Option<ModelId>,
        estimate: u64,
        now: Now,
    ) -> Result<Admission, Refusal> {
        let inner = &*self.inner;
        if let Some(m) = inner.meters() {
            m.shared_state_bypassed
                .add(1, &[KeyValue::new("policy", inner.policy.label())]);
        }
        match inner.policy {
            FailurePolicy::FailOpen => inner.local.admit(key, model, estimate, now),
            FailurePolicy::FailClosed => {
                inner.local.refused(key, Reason::Unavailable);
                Err(Refusal {
                    reason: Reason::Unavailable,
                    scope: Scope::Key,
                    retry_after: Duration::from_secs(1),
                    quotas: Quotas::default(),
                })
            }
        }
    }

    /// Settles an admitted request (see [`super::Store::settle`]); never waits.
    pub fn settle(&self, key: usize, admission: &Admission, spend: Spend, now: Now) {
        let inner = &*self.inner;
        let shared_budgets = inner
            .plans
            .load()
            .get(key)
            .is_some_and(|p| p.iter().any(|l| l.budget.is_some()));
        let settlement = match admission.lease {
            None => {
                // Decided by this process: settled here; its cost still counts against the
                // shared budgets.
                inner.local.settle(key, admission, spend, now);
                let Spend::Tokens {
                    model,
                    input,
                    output,
                } = spend
                else {
                    return;
                };
                let cost = inner.local.cost(model, input, output);
                if !shared_budgets || cost <= 0.0 {
                    return;
                }
                Settlement {
                    key,
                    lease: None,
                    reserved: 0,
                    used: 0,
                    cost,
                    request_back: false,
                    wall: now.wall,
                }
            }
            Some(lease) => {
                let (used, cost) = match spend {
                    Spend::Nothing => (0, 0.0),
                    Spend::Unknown => (admission.reserved, 0.0),
                    Spend::Tokens {
                        model,
                        input,
                        output,
                    } => (
                        input.saturating_add(output),
                        inner.local.count_spend(key, model, input, output),
                    ),
                };
                Settlement {
                    key,
                    lease: Some(lease),
                    reserved: admission.reserved,
                    used,
                    cost,
                    request_back: false,
                    wall: now.wall,
                }
            }
        };
        if self.jobs.try_send(Job::Settle(settlement)).is_err() {
            inner.lost(1);
        }
    }

    /// Sends what is queued and waits for it (at most [`FLUSH_MAX`] and `within`): the
    /// shutdown's last step for the limits, so no settlement is lost to a deploy.
    pub async fn flush(&self, within: Duration) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(within.min(FLUSH_MAX), finished).await;
        }
    }
}

impl Inner {
    fn meters(&self) -> Option<&Arc<Meters>> {
        self.local.meters()
    }

    fn member(&self, lease: u64) -> String {
        format!("{}:{lease}", self.replica)
    }

    fn record(&self, op: &'static str, started: Instant) {
        if let Some(m) = self.meters() {
            m.shared_state_duration
                .record(started.elapsed().as_secs_f64(), &[KeyValue::new("op", op)]);
        }
    }

    fn succeeded(&self, op: &'static str, started: Instant) {
        self.record(op, started);
        if let Some(Note::Back { failures, after }) = self.reach.succeeded(Instant::now()) {
            tracing::info!(
                failures,
                down_for = %humantime::format_duration(round(after)),
                "the shared limit store answers again; limits are shared across replicas again"
            );
            if let Some(m) = self.meters() {
                m.shared_state_up.set(true);
            }
        }
    }

    fn failed(&self, op: &'static str, started: Instant, error: &dyn std::fmt::Display) {
        self.record(op, started);
        if let Some(m) = self.meters() {
            m.shared_state_errors.add(1, &[KeyValue::new("op", op)]);
            m.shared_state_up.set(false);
        }
        let policy = self.policy.label();
        match self.reach.failed(Instant::now()) {
            Some(Note::Down) => tracing::warn!(
                op,
                error = %error,
                policy,
                "the shared limit store is unreachable; admissions follow the failure policy \
                 until it answers"
            ),
            Some(Note::StillDown { failures }) => tracing::warn!(
                op,
                error = %error,
                policy,
                failures,
                "the shared limit store is still unreachable"
            ),
            _ => {}
        }
    }

    fn lost(&self, n: u64) {
        if let Some(m) = self.meters() {
            m.shared_state_lost.add(n, &[]);
        }
    }

    /// The admission script's call for `key`.
    fn admit_call(
        &self,
        key: usize,
        estimate: u64,
        lease: u64,
        wall: SystemTime,
    ) -> Option<redis::ScriptInvocation<'_>> {
        let plan = self.plans.load().get(key)?.clone();
        let mut call = self.admit.prepare_invoke();
        call.arg(estimate)
            .arg(self.member(lease))
            .arg(self.lease_us)
            .arg(plan.len());
        for layer in plan.iter() {
            layer.keys(&mut call, wall);
            call.arg(opt(layer.rpm))
                .arg(opt(layer.tpm))
                .arg(opt(layer.parallel))
                .arg(usd(layer.budget.map(|b| b.usd)));
        }
        Some(call)
    }

    /// The settlement script's call.
    fn settle_call(&self, s: &Settlement) -> Option<redis::ScriptInvocation<'_>> {
        let plan = self.plans.load().get(s.key)?.clone();
        let mut call = self.settle.prepare_invoke();
        call.arg(s.reserved)
            .arg(s.used)
            .arg(format!("{:?}", s.cost.max(0.0)))
            .arg(s.lease.map(|l| self.member(l)).unwrap_or_default())
            .arg(plan.len())
            .arg(if s.request_back { "1" } else { "0" });
        for layer in plan.iter() {
            layer.keys(&mut call, s.wall);
            call.arg(opt(layer.rpm))
                .arg(opt(layer.tpm))
                .arg(if layer.parallel.is_some() { "1" } else { "0" })
                .arg(usd(layer.budget.and_then(|b| b.soft)))
                .arg(
                    layer
                        .budget
                        .map(|b| layer.spend_key(&b, s.wall).1.to_string())
                        .unwrap_or_default(),
                );
        }
        Some(call)
    }

    /// The admission script's reply as a decision; `None` when it cannot be read.
    fn decide(
        &self,
        key: usize,
        plan: &[LayerPlan],
        estimate: u64,
        lease: u64,
        reply: &[&str],
        wall: SystemTime,
    ) -> Option<Result<Admission, Refusal>> {
        const PER_LAYER: usize = 7;
        if reply.len() != 3 + PER_LAYER * plan.len() {
            return None;
        }
        let int = |i: usize| reply[i].parse::<i64>().ok();
        let (code, refused, wait) = (int(0)?, int(1)?, int(2)?);
        let mut quotas = Quotas::default();
        for (i, layer) in plan.iter().enumerate() {
            let at = 3 + i * PER_LAYER;
            let here = refused == i as i64 + 1;
            for (slot, offset, refusing) in [
                (&mut quotas.requests, 0, here && code == 1),
                (&mut quotas.tokens, 3, here && code == 2),
            ] {
                let limit = int(at + offset)?;
                if limit >= 0 {
                    let quota = Quota {
                        limit: limit as u64,
                        remaining: int(at + offset + 1)?.max(0) as u64,
                        reset: Duration::from_micros(int(at + offset + 2)?.max(0) as u64),
                    };
                    merge(slot, quota, refusing);
                }
            }
            if layer.budget.is_some() {
                let spent = reply[at + 6].parse::<f64>().ok()?;
                self.local.mirror_spend(layer.layer, spent, wall);
            }
        }
        if code == 0 {
            return Some(Ok(Admission {
                reserved: estimate,
                quotas,
                lease: Some(lease),
                // Settled by the store, not by this process's limiters.
                generation: 0,
            }));
        }
        let layer = plan.get(usize::try_from(refused).ok()?.checked_sub(1)?)?;
        let (reason, retry_after) = match code {
            1 => (Reason::Rpm, Duration::from_micros(wait.max(0) as u64)),
            2 => (Reason::Tpm, Duration::from_micros(wait.max(0) as u64)),
            3 => (Reason::Parallel, super::limits::PARALLEL_RETRY),
            4 => {
                let budget = layer.budget?;
                let secs = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let end = span(budget.period, wall).end;
                (
                    Reason::Budget,
                    Duration::from_secs(end.saturating_sub(secs).max(1)),
                )
            }
            _ => return None,
        };
        self.local.refused(key, reason);
        Some(Err(Refusal {
            reason,
            scope: layer.scope,
            retry_after,
            quotas,
        }))
    }

    /// Applies a settlement's reply: the budgets' spend, soft budgets crossed.
    fn settled(&self, s: &Settlement, reply: &[&str]) {
        let plans = self.plans.load();
        let Some(plan) = plans.get(s.key) else {
            return;
        };
        for (layer, pair) in plan.iter().zip(reply.chunks(2)) {
            let [spend, crossed] = pair else { continue };
            if let Ok(spent) = spend.parse::<f64>() {
                self.local.mirror_spend(layer.layer, spent, s.wall);
            }
            if *crossed == "1" {
                self.local.soft_crossed(layer.layer);
            }
        }
    }

    /// Every budget's current spend key, with its layer (keys' own, then teams').
    fn budget_keys(&self, now: SystemTime) -> Vec<(LayerRef, String)> {
        let plans = self.plans.load();
        let own = plans
            .iter()
            .flat_map(|p| p.iter().filter(|l| matches!(l.layer, LayerRef::Key(_))));
        own.chain(&self.teams)
            .filter_map(|l| l.budget.map(|b| (l.layer, l.spend_key(&b, now).0)))
            .collect()
    }
}

/// A duration to the millisecond, for log lines.
fn round(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The store's task: runs the calls, keeps the backlog, tries an unreachable store again.
async fn run(
    inner: Arc<Inner>,
    conn: ConnectionManager,
    mut jobs: mpsc::Receiver<Job>,
    retry: Duration,
) {
    let mut backlog: VecDeque<Settlement> = VecDeque::new();
    let (keep, mut kept) = mpsc::unbounded_channel::<Settlement>();
    let mut calls = JoinSet::new();
    let mut tick = tokio::time::interval(retry);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refreshing = false;
    let (refreshed, mut refreshes) = mpsc::unbounded_channel::<()>();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                None => break,
                Some(Job::Admit { key, estimate, lease, wall, reply }) => {
                    calls.spawn(admit(inner.clone(), conn.clone(), key, estimate, lease, wall, reply));
                }
                Some(Job::Settle(s)) if inner.reach.is_up() => {
                    calls.spawn(settle(inner.clone(), conn.clone(), s, keep.clone()));
                }
                Some(Job::Settle(s)) => hold(&inner, &mut backlog, s),
                Some(Job::Flush(done)) => {
                    let _ = tokio::time::timeout(FLUSH_MAX, async {
                        while calls.join_next().await.is_some() {}
                    })
                    .await;
                    let _ = done.send(());
                }
            },
            Some(s) = kept.recv() => hold(&inner, &mut backlog, s),
            Some(()) = refreshes.recv() => refreshing = false,
            _ = tick.tick(), if !refreshing => {
                refreshing = true;
                let (inner, conn, done) = (inner.clone(), conn.clone(), refreshed.clone());
                calls.spawn(async move {
                    refresh(&inner, conn).await;
                    let _ = done.send(());
                });
            }
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
        if inner.reach.is_up() {
            while let Some(s) = backlog.pop_front() {
                calls.spawn(settle(inner.clone(), conn.clone(), s, keep.clone()));
            }
        }
    }
    let _ = tokio::time::timeout(FLUSH_MAX, async {
        while calls.join_next().await.is_some() {}
    })
    .await;
}

/// Keeps a settlement for when the store answers, or counts it lost when the backlog is full.
fn hold(inner: &Inner, backlog: &mut VecDeque<Settlement>, s: Settlement) {
    if backlog.len() < BACKLOG {
        backlog.push_back(s);
    } else {
        inner.lost(1);
    }
}

async fn admit(
    inner: Arc<Inner>,
    mut conn: ConnectionManager,
    key: usize,
    estimate: u64,
    lease: u64,
    wall: SystemTime,
    reply: oneshot::Sender<Result<String, RedisError>>,
) {
    let Some(call) = inner.admit_call(key, estimate, lease, wall) else {
        return;
    };
    let result: Result<String, RedisError> = call.invoke_async(&mut conn).await;
    drop(call);
    let admitted = matches!(&result, Ok(r) if r.starts_with("0,"));
    if reply.send(result).is_err() && admitted {
        // The caller stopped waiting and decided without the store: give it all back.
        let back = Settlement {
            key,
            lease: Some(lease),
            reserved: estimate,
            used: 0,
            cost: 0.0,
            request_back: true,
            wall,
        };
        settle_once(&inner, &mut conn, &back).await.ok();
    }
}

/// One settlement call; its reply applied.
async fn settle_once(
    inner: &Inner,
    conn: &mut ConnectionManager,
    s: &Settlement,
) -> Result<(), RedisError> {
    let Some(call) = inner.settle_call(s) else {
        return Ok(());
    };
    let reply: String = call.invoke_async(conn).await?;
    inner.settled(s, &reply.split(',').collect::<Vec<_>>());
    Ok(())
}

async fn settle(
    inner: Arc<Inner>,
    mut conn: ConnectionManager,
    s: Settlement,
    keep: mpsc::UnboundedSender<Settlement>,
) {
    let started = Instant::now();
    match settle_once(&inner, &mut conn, &s).await {
        Ok(()) => inner.succeeded("settle", started),
        Err(e) => {
            inner.failed("settle", started, &e);
            // Refused connections never ran the script: it is sent again when the store
            // answers. Any other failure may have run it: counted lost, never applied twice.
            if !e.is_connection_refusal() || keep.send(s).is_err() {
                inner.lost(1);
            }
        }
    }
}

/// Reads every budget's spend back (or pings, without budgets, while the store is down).
async fn refresh(inner: &Inner, mut conn: ConnectionManager) {
    let now = SystemTime::now();
    let budgets = inner.budget_keys(now);
    if budgets.is_empty() && inner.reach.is_up() {
        return;
    }
    let started = Instant::now();
    let result: Result<Vec<Option<String>>, RedisError> = if budgets.is_empty() {
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| Vec::new())
    } else {
        let mut mget = redis::cmd("MGET");
        for (_, key) in &budgets {
            mget.arg(key);
        }
        mget.query_async(&mut conn).await
    };
    match result {
        Ok(spends) => {
            inner.succeeded("refresh", started);
            for ((layer, _), spent) in budgets.iter().zip(spends) {
                let spent = spent.and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
                inner.local.mirror_spend(*layer, spent, now);
            }
        }
        Err(e) => inner.failed("refresh", started, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_meet_in_redis_keys() {
        assert_eq!(escape("a:rpm"), "a%3Arpm");
        assert_eq!(escape("50%"), "50%25");
        assert_ne!(escape("a:b"), escape("a%3Ab"));
    }
}
