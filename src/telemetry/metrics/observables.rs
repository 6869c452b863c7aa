//! Observable instruments: callbacks that read snapshots at scrape time.
//!
//! Breaker phase and health score come from each provider's lock-free `ProviderState`;
//! uptime and efficiency from the actors' `Board`; trials from the key store and budgets left
//! from the limits store (callbacks `app` hands in); the log
//! pipeline from `LogStats` (filled by the Loki shipper); HTTP protocol errors from their
//! counter ([`super::protocol_errors`]); process figures from `/proc`.

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use super::catalogue::{self as cat, help};
use super::{label, process_reading, Meters, Sources};
use crate::board::Phase;

const PHASES: [Phase; 3] = [Phase::Closed, Phase::Open, Phase::HalfOpen];

pub(super) fn register(meter: &Meter, sources: &Sources, meters: &Meters) {
    let board = sources.board.clone();
    meter
        .f64_observable_gauge(cat::PROVIDER_HEALTH_SCORE)
        .with_description(help(cat::PROVIDER_HEALTH_SCORE))
        .with_callback(move |o| {
            let board = board.load();
            for p in board.providers() {
                let kv = label("provider", board.provider_name(p));
                o.observe(f64::from(board.state(p).health()), &[kv]);
            }
        })
        .build();
    let board = sources.board.clone();
    meter
        .u64_observable_gauge(cat::CIRCUIT_BREAKER_STATE)
        .with_description(help(cat::CIRCUIT_BREAKER_STATE))
        .with_callback(move |o| {
            let board = board.load();
            for p in board.providers() {
                let kv = label("provider", board.provider_name(p));
                let current = board.state(p).phase();
                for phase in PHASES {
                    o.observe(
                        u64::from(phase == current),
                        &[kv.clone(), KeyValue::new("state", phase.label())],
                    );
                }
            }
        })
        .build();
    for (name, pick) in [
        (cat::MODEL_UPTIME_24H, true),
        (cat::TOKEN_EFFICIENCY, false),
    ] {
        let board = sources.board.clone();
        meter
            .f64_observable_gauge(name)
            .with_description(help(name))
            .with_callback(move |o| {
                let board = board.load();
                let values = if pick {
                    board.uptime.load()
                } else {
                    board.efficiency.load()
                };
                for m in board.models() {
                    if let Some(Some(v)) = values.get(m.index()) {
                        let kv = label("model", &board.model_names[m.index()]);
                        o.observe(*v, &[kv]);
                    }
                }
            })
            .build();
    }
    let trials = sources.trials.clone();
    meter
        .u64_observable_gauge(cat::TRIAL_ACTIVE)
        .with_description(help(cat::TRIAL_ACTIVE))
        .with_callback(move |o| o.observe(trials(SystemTime::now()) as u64, &[]))
        .build();
    let budgets = sources.budgets.clone();
    meter
        .f64_observable_gauge(cat::BUDGET_REMAINING)
        .with_description(help(cat::BUDGET_REMAINING))
        .with_callback(move |o| {
            budgets(SystemTime::now(), &mut |usd, labels| o.observe(usd, labels))
        })
        .build();
    let up = meters.shared_state_up.clone();
    meter
        .u64_observable_gauge(cat::SHARED_STATE_UP)
        .with_description(help(cat::SHARED_STATE_UP))
        .with_callback(move |o| {
            if let Some(up) = up.get() {
                o.observe(u64::from(up), &[]);
            }
        })
        .build();
    let depth = meters.ledger_queue.clone();
    meter
        .u64_observable_gauge(cat::LEDGER_QUEUE_DEPTH)
        .with_description(help(cat::LEDGER_QUEUE_DEPTH))
        .with_callback(move |o| {
            if let Some(n) = depth.get() {
                o.observe(n, &[]);
            }
        })
        .build();
    register_logs(meter, sources.log_stats.clone());
    meter
        .u64_observable_counter(cat::HTTP_PROTOCOL_ERRORS)
        .with_description(help(cat::HTTP_PROTOCOL_ERRORS))
        .with_callback(|o| o.observe(super::protocol_errors::global().total(), &[]))
        .build();
    register_process(meter);
}

fn register_logs(meter: &Meter, stats: Arc<super::log_stats::LogStats>) {
    let s = stats.clone();
    meter
        .u64_observable_counter(cat::LOG_RECORDS)
        .with_description(help(cat::LOG_RECORDS))
        .with_callback(move |o| {
            for (outcome, n) in s.outcomes() {
                o.observe(n, &[KeyValue::new("outcome", outcome)]);
            }
        })
        .build();
    meter
        .i64_observable_gauge(cat::LOG_QUEUE_DEPTH)
        .with_description(help(cat::LOG_QUEUE_DEPTH))
        .with_callback(move |o| o.observe(stats.queue_depth(), &[]))
        .build();
}

fn register_process(meter: &Meter) {
    let start = super::process::start_time();
    meter
        .f64_observable_counter(cat::PROCESS_CPU)
        .with_description(help(cat::PROCESS_CPU))
        .with_callback(|o| {
            if let Some(v) = process_reading().cpu_seconds {
                o.observe(v, &[]);
            }
        })
        .build();
    meter
        .f64_observable_gauge(cat::PROCESS_START_TIME)
        .with_description(help(cat::PROCESS_START_TIME))
        .with_callback(move |o| o.observe(start, &[]))
        .build();
    type Pick = fn(&super::process::Reading) -> Option<f64>;
    let gauges: [(&'static str, Pick); 5] = [
        (cat::PROCESS_RESIDENT_MEMORY, |r| r.resident_bytes),
        (cat::PROCESS_VIRTUAL_MEMORY, |r| r.virtual_bytes),
        (cat::PROCESS_OPEN_FDS, |r| r.open_fds),
        (cat::PROCESS_MAX_FDS, |r| r.max_fds),
        (cat::PROCESS_THREADS, |r| r.threads),
    ];
    for (name, pick) in gauges {
        meter
            .f64_observable_gauge(name)
            .with_description(help(name))
            .with_callback(move |o| {
                if let Some(v) = pick(&process_reading()) {
                    o.observe(v, &[]);
                }
            })
            .build();
    }
}
