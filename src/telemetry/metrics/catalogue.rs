//! The metric catalogue: every family the gateway exposes, in one table.
//!
//! DESIGN §3 is the contract with dashboards and alert rules, so the names live here once, as
//! constants, with their type, unit, labels, help and categories. Registration
//! ([`super::metrics`]) builds instruments from these entries, and the docs endpoint and the
//! dashboard / alert contract tests read the same table. A name here is exactly what Prometheus
//! sees: the exporter adds no suffix (counters already end in `_total`, units are in the name).
//!
//! Every family the gateway owns is named `gatewayz_*`. Fourteen of them had another name in
//! the seed (`http_requests_total`, `process_cpu_seconds_total`, `trial_active`, ...): the
//! seed's name is kept as the family's [`Family::legacy`] alias, which exposition adds at
//! scrape time as a copy of the canonical family ([`super::exposition::with_aliases`]), so the
//! seed's dashboards keep working. Instruments are registered under the canonical name only.

/// What kind of Prometheus family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// The categories are the configuration's (metrics tokens grant them); the catalogue files
/// every family under them.
pub use crate::config::Category;

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The Prometheus name, exactly.
    pub name: &'static str,
    pub kind: Kind,
    /// UCUM-ish unit for docs (`s`, `USD`, `By`, `1`); already part of the name where it applies.
    pub unit: &'static str,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub categories: &'static [Category],
    /// The seed's historical name of the family, exported too (same samples) for the seed's
    /// dashboards; `None` for families the seed never had under another name.
    pub legacy: Option<&'static str>,
}

impl Family {
    /// The canonical name, then the historical alias if any: every name Prometheus sees.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.legacy)
    }
}

use Category::{Business, Models, Performance, Providers, System};
use Kind::{Counter, Gauge, Histogram};

pub const PROVIDER_HEALTH_SCORE: &str = "gatewayz_provider_health_score";
pub const CIRCUIT_BREAKER_STATE: &str = "gatewayz_circuit_breaker_state";
pub const PROVIDER_RESPONSE_TIME: &str = "gatewayz_provider_response_time_seconds";
pub const PROVIDER_REQUESTS: &str = "gatewayz_provider_requests_total";
pub const PROVIDER_FAILOVERS: &str = "gatewayz_provider_failovers_total";
pub const DETECTED_ANOMALIES: &str = "gatewayz_detected_anomalies_total";
pub const MODEL_UPTIME_24H: &str = "gatewayz_model_uptime_24h";
pub const TOKEN_EFFICIENCY: &str = "gatewayz_token_efficiency";
pub const MODEL_REQUESTS: &str = "gatewayz_model_inference_requests_total";
pub const MODEL_DURATION: &str = "gatewayz_model_inference_duration_seconds";
pub const TIME_TO_FIRST_TOKEN: &str = "gatewayz_time_to_first_token_seconds";
pub const TOKENS: &str = "gatewayz_tokens_total";
pub const COST_BY_PROVIDER: &str = "gatewayz_cost_by_provider_total";
pub const COST_BY_MODEL: &str = "gatewayz_cost_by_model_total";
pub const UNPRICED_COMPLETIONS: &str = "gatewayz_unpriced_completions_total";
pub const TRIAL_ACTIVE: &str = "gatewayz_trial_active";
pub const COST_BY_KEY: &str = "gatewayz_cost_by_key_usd_total";
pub const TOKENS_BY_KEY: &str = "gatewayz_tokens_by_key_total";
pub const BUDGET_REMAINING: &str = "gatewayz_budget_remaining_usd";
pub const LIMIT_REFUSALS: &str = "gatewayz_limit_refusals_total";
pub const SOFT_BUDGET_CROSSINGS: &str = "gatewayz_soft_budget_crossings_total";
pub const SHARED_STATE_UP: &str = "gatewayz_shared_state_up";
pub const SHARED_STATE_DURATION: &str = "gatewayz_shared_state_duration_seconds";
pub const SHARED_STATE_ERRORS: &str = "gatewayz_shared_state_errors_total";
pub const SHARED_STATE_BYPASSED: &str = "gatewayz_shared_state_bypassed_total";
pub const SHARED_STATE_LOST_SETTLEMENTS: &str = "gatewayz_shared_state_lost_settlements_total";
pub const LEDGER_RECORDS: &str = "gatewayz_ledger_records_total";
pub const LEDGER_QUEUE_DEPTH: &str = "gatewayz_ledger_queue_depth";
pub const LEDGER_WRITE_ERRORS: &str = "gatewayz_ledger_write_errors_total";
pub const LEDGER_WRITE_DURATION: &str = "gatewayz_ledger_write_duration_seconds";
pub const CONFIG_RELOADS: &str = "gatewayz_config_reloads_total";
pub const HTTP_REQUESTS: &str = "gatewayz_http_requests_total";
pub const HTTP_DURATION: &str = "gatewayz_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "gatewayz_http_requests_in_flight";
pub const OVERHEAD: &str = "gatewayz_overhead_seconds";
pub const LOG_RECORDS: &str = "gatewayz_log_records_total";
pub const LOG_QUEUE_DEPTH: &str = "gatewayz_log_queue_depth";
pub const HTTP_PROTOCOL_ERRORS: &str = "gatewayz_http_protocol_errors_total";
pub const PROCESS_CPU: &str = "gatewayz_process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY: &str = "gatewayz_process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "gatewayz_process_virtual_memory_bytes";
pub const PROCESS_START_TIME: &str = "gatewayz_process_start_time_seconds";
pub const PROCESS_OPEN_FDS: &str = "gatewayz_process_open_fds";
pub const PROCESS_MAX_FDS: &str = "gatewayz_process_max_fds";
pub const PROCESS_THREADS: &str = "gatewayz_process_threads";

const fn family(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    categories: &'static [Category],
) -> Family {
    Family {
        name,
        kind,
        unit,
        labels,
        help,
        categories,
        legacy: None,
    }
}

/// `family`, also exported under the seed's historical name `legacy`.
const fn seed(family: Family, legacy: &'static str) -> Family {
    Family {
        legacy: Some(legacy),
        ..family
    }
}

/// Every family, in the order of DESIGN §3.
#[rustfmt::skip]
pub const FAMILIES: &[Family] = &[
    family(PROVIDER_HEALTH_SCORE, Gauge, "1", &["provider"],
        "Provider health in [0,1]: breaker factor x success rate x (0.5 + 0.5 x latency factor).",
        &[Providers]),
    family(CIRCUIT_BREAKER_STATE, Gauge, "1", &["provider", "state"],
        "Circuit breaker phase, one-hot: 1 for the current state (closed, open, half_open).",
        &[Providers]),
    seed(family(PROVIDER_RESPONSE_TIME, Histogram, "s", &["provider"],
        "Time until a provider answered (JSON), sent its first content (stream), or failed, per attempt.",
        &[Providers, Performance]), "provider_response_time_seconds"),
    family(PROVIDER_REQUESTS, Counter, "1", &["provider", "outcome", "reason"],
        "Provider attempts by outcome (success, error, timeout, rate_limited, rejected) and failure reason (none, connect, timeout, server_error, rate_limited, auth_refused, client_error, malformed, transport, too_large, stream_cut, stream_malformed, stream_idle, stream_no_done, stream_too_large, stream_error); a stream's attempt is counted when the stream ends.",
        &[Providers]),
    family(PROVIDER_FAILOVERS, Counter, "1", &["provider"],
        "Attempts that failed over to another provider, by the provider failed over from.",
        &[Providers]),
    family(DETECTED_ANOMALIES, Counter, "1", &["type"],
        "Anomaly episodes detected: latency_spike, error_rate_spike, cost_spike.",
        &[Providers]),
    family(MODEL_UPTIME_24H, Gauge, "1", &["model"],
        "Share of requests for the model that succeeded over the last 24 hours.",
        &[Models]),
    family(TOKEN_EFFICIENCY, Gauge, "1", &["model"],
        "Output tokens per input token for the model over the efficiency window.",
        &[Models]),
    seed(family(MODEL_REQUESTS, Counter, "1", &["provider", "model", "api", "status"],
        "Client requests for a model by how they ended, once each (status: success, rejected, upstream_error, no_provider, rate_limited, timeout, client_disconnected; provider: the one that served or was tried last, none if no provider was tried; api: the API the client called, as named in a model's `apis`).",
        &[Models]), "model_inference_requests_total"),
    seed(family(MODEL_DURATION, Histogram, "s", &["provider", "model", "api"],
        "Whole duration of a model inference request, failover and streaming included.",
        &[Models, Performance]), "model_inference_duration_seconds"),
    family(TIME_TO_FIRST_TOKEN, Histogram, "s", &["provider", "model", "api"],
        "Time from the request's arrival to the first streamed content chunk.",
        &[Models, Performance]),
    family(TOKENS, Counter, "1", &["provider", "model", "api", "type"],
        "Tokens reported by upstreams, by type: input, output; api: the API the client called.",
        &[Business]),
    family(COST_BY_PROVIDER, Counter, "USD", &["provider"],
        "Spend in USD (tokens x configured model price), by provider.",
        &[Business]),
    family(COST_BY_MODEL, Counter, "USD", &["model"],
        "Spend in USD (tokens x configured model price), by model.",
        &[Business]),
    family(UNPRICED_COMPLETIONS, Counter, "1", &["provider", "model"],
        "Completions whose upstream reported no usage: not priced, never guessed.",
        &[Business]),
    seed(family(TRIAL_ACTIVE, Gauge, "1", &[],
        "Configured trial keys that have not expired.",
        &[Business]), "trial_active"),
    family(COST_BY_KEY, Counter, "USD", &["key", "team"],
        "Spend in USD (tokens x configured model price), by client key name and team (none when the key has no team).",
        &[Business]),
    family(TOKENS_BY_KEY, Counter, "1", &["key", "team", "type"],
        "Tokens reported by upstreams, by client key name, team and type (input, output).",
        &[Business]),
    family(BUDGET_REMAINING, Gauge, "USD", &["scope", "name"],
        "USD left in the current budget period, per configured budget (scope: key or team; name: the key's or team's name).",
        &[Business]),
    family(LIMIT_REFUSALS, Counter, "1", &["key", "team", "reason"],
        "Requests refused by a key's or its team's limits, by reason: rpm, tpm, parallel, budget, model_not_allowed, store_unavailable (the shared limit store unreachable under [state] failure_policy = fail_closed).",
        &[Business]),
    family(SOFT_BUDGET_CROSSINGS, Counter, "1", &["scope", "name"],
        "Soft budgets crossed (once per budget period each; logged too, nothing refused), by scope (key, team) and name.",
        &[Business]),
    family(SHARED_STATE_UP, Gauge, "1", &[],
        "1 while the shared limit store ([state] redis_url) answers, 0 while it is unreachable or slow and admissions follow [state] failure_policy; absent without a shared store.",
        &[System]),
    family(SHARED_STATE_DURATION, Histogram, "s", &["op"],
        "Round trips to the shared limit store, by operation (admit: on the request path, settle: after the answer, refresh: budget spend read back), failures included.",
        &[System, Performance]),
    family(SHARED_STATE_ERRORS, Counter, "1", &["op"],
        "Calls to the shared limit store that failed or took longer than [state] timeout, by operation (admit, settle, refresh).",
        &[System]),
    family(SHARED_STATE_BYPASSED, Counter, "1", &["policy"],
        "Admissions decided without the shared limit store because it was unreachable, by [state] failure_policy: fail_open (this replica's own counters decided), fail_closed (refused with 503).",
        &[System]),
    family(SHARED_STATE_LOST_SETTLEMENTS, Counter, "1", &[],
        "Settlements (real tokens, cost, a place in flight given back) that never reached the shared limit store: the outcome of the call is unknown, or the backlog kept while it was unreachable was full.",
        &[System]),
    family(LEDGER_RECORDS, Counter, "1", &["outcome"],
        "Usage records by what became of them: written (to the ledger's database), dropped (the queue was full: the database was down or slow for too long), lost (still unwritten when the process exited).",
        &[System]),
    family(LEDGER_QUEUE_DEPTH, Gauge, "1", &[],
        "Usage records accepted and not yet written (queued, or in the batch being written); absent without [ledger].",
        &[System]),
    family(LEDGER_WRITE_ERRORS, Counter, "1", &[],
        "Batch writes to the ledger's database that failed or timed out (each is retried until it succeeds).",
        &[System]),
    family(LEDGER_WRITE_DURATION, Histogram, "s", &[],
        "Time to write one batch of usage records and its rollups (successful writes).",
        &[System, Performance]),
    family(CONFIG_RELOADS, Counter, "1", &["result"],
        "Configuration reloads (SIGHUP, POST /admin/reload) by result: applied, or refused (the file is invalid or changes a restart-only setting; the configuration in force keeps serving).",
        &[System]),
    seed(family(HTTP_REQUESTS, Counter, "1", &["method", "route", "status"],
        "HTTP requests served, by route pattern (unmatched routes as `unmatched`).",
        &[System]), "http_requests_total"),
    seed(family(HTTP_DURATION, Histogram, "s", &["method", "route"],
        "Time to produce the HTTP response head.",
        &[System, Performance]), "http_request_duration_seconds"),
    seed(family(HTTP_IN_FLIGHT, Gauge, "1", &[],
        "HTTP requests being served.",
        &[System]), "http_requests_in_flight"),
    family(OVERHEAD, Histogram, "s", &[],
        "Time the gateway itself adds: total duration minus time waiting on upstreams.",
        &[Performance]),
    family(LOG_RECORDS, Counter, "1", &["outcome"],
        "Log records by fate: shipped, dropped_full, dropped_rejected, dropped_shutdown.",
        &[System]),
    family(LOG_QUEUE_DEPTH, Gauge, "1", &[],
        "Log records waiting to be shipped to Loki.",
        &[System]),
    family(HTTP_PROTOCOL_ERRORS, Counter, "1", &[],
        "Client connections the HTTP server closed on a protocol error (malformed request, \
         reset, read timeout); summarized in the log at most every 10 s, never line by line.",
        &[System]),
    seed(family(PROCESS_CPU, Counter, "s", &[], "Total user and system CPU time spent.", &[System]),
        "process_cpu_seconds_total"),
    seed(family(PROCESS_RESIDENT_MEMORY, Gauge, "By", &[], "Resident memory size.", &[System]),
        "process_resident_memory_bytes"),
    seed(family(PROCESS_VIRTUAL_MEMORY, Gauge, "By", &[], "Virtual memory size.", &[System]),
        "process_virtual_memory_bytes"),
    seed(family(PROCESS_START_TIME, Gauge, "s", &[],
        "Start time of the process since the Unix epoch.", &[System]),
        "process_start_time_seconds"),
    seed(family(PROCESS_OPEN_FDS, Gauge, "1", &[], "Open file descriptors.", &[System]),
        "process_open_fds"),
    seed(family(PROCESS_MAX_FDS, Gauge, "1", &[], "Limit on open file descriptors.", &[System]),
        "process_max_fds"),
    seed(family(PROCESS_THREADS, Gauge, "1", &[], "OS threads in the process.", &[System]),
        "process_threads"),
];

/// The entry of `name`, canonical or historical alias.
pub fn get(name: &str) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .find(|f| f.name == name || f.legacy == Some(name))
}

/// The historical alias of the canonical `name`, if it has one.
pub fn legacy(name: &str) -> Option<&'static str> {
    FAMILIES
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.legacy)
}

/// The help text of `name` (empty for an unknown name).
pub fn help(name: &str) -> &'static str {
    get(name).map_or("", |f| f.help)
}

/// Histogram bounds in seconds for LLM latencies: 5 ms to 120 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// Fine bounds for the gateway's own overhead: 10 µs to 1 s.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for f in FAMILIES {
            assert!(f.name.starts_with("gatewayz_"), "{}", f.name);
            assert!(!f.help.is_empty() && !f.categories.is_empty(), "{}", f.name);
            for name in f.names() {
                assert!(seen.insert(name), "{name} twice");
                let counter_suffixes = name.matches("_total").count();
                match f.kind {
                    Kind::Counter => {
                        assert!(name.ends_with("_total") && counter_suffixes == 1, "{name}")
                    }
                    _ => assert_eq!(counter_suffixes, 0, "{name}"),
                }
                if f.unit == "s" {
                    assert!(name.contains("_seconds"), "{name}");
                }
            }
        }
    }

    /// An alias is the canonical name without its prefix: the seed's name, nothing invented.
    #[test]
    fn every_alias_is_the_canonical_name_unprefixed() {
        let aliased: Vec<_> = FAMILIES.iter().filter_map(|f| f.legacy).collect();
        assert_eq!(aliased.len(), 14, "{aliased:?}");
        for f in FAMILIES {
            if let Some(alias) = f.legacy {
                assert_eq!(f.name.strip_prefix("gatewayz_"), Some(alias));
                assert_eq!(get(alias).map(|g| g.name), Some(f.name));
                assert_eq!(legacy(f.name), Some(alias));
            }
        }
    }

    #[test]
    fn every_latency_histogram_is_in_performance() {
        for f in FAMILIES.iter().filter(|f| f.kind == Kind::Histogram) {
            assert!(f.categories.contains(&Category::Performance), "{}", f.name);
        }
    }

    #[test]
    fn buckets_cover_llm_latencies() {
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.005));
        assert_eq!(LATENCY_BUCKETS.last(), Some(&120.0));
        assert_eq!(OVERHEAD_BUCKETS.first(), Some(&0.00001));
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
