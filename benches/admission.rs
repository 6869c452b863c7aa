//! Per-request cost of the in-process limits: admitting and settling one request of a key
//! without limits (the common case: a bounds check and empty `Option`s, then the spend
//! counters) and of a key with every limit and a team (two layers of locks), without meters
//! and with them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gatewayz::catalog::Catalog;
use gatewayz::config::Config;
use gatewayz::state::{InProcess, Now, Spend};
use gatewayz::telemetry::metrics::log_stats::LogStats;
use gatewayz::telemetry::metrics::{no_budgets, Metrics, Sources};

const CONFIG: &str = r#"
[providers.local]
kind = "mock"

[models.m]
providers = ["local"]
input_price_per_1m = 1.0
output_price_per_1m = 2.0

[teams.ops]
rate_limit_rpm = 1000000
max_parallel = 1000000

[[keys]]
name = "free"
key = "free-secret-key"

[[keys]]
name = "limited"
key = "limited-secret-key"
team = "ops"
rate_limit_rpm = 1000000
rate_limit_tpm = 1000000000
max_parallel = 1000000
budget_usd = 1000000000.0
"#;

fn bench(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG, "bench", &|_| None).unwrap();
    let catalog = Catalog::new(&config);
    let model = catalog.model_id("m").unwrap();
    let spend = Spend::Tokens {
        model,
        input: 20,
        output: 30,
    };
    let bare = InProcess::new(&config, &catalog, Instant::now());
    let metered = InProcess::new(&config, &catalog, Instant::now());
    let metrics = Metrics::new(Sources {
        board: Arc::new(arc_swap::ArcSwap::from_pointee(catalog.board())),
        log_stats: Arc::new(LogStats::default()),
        trials: Arc::new(|_| 0),
        budgets: no_budgets(),
    })
    .unwrap();
    metered.attach_meters(metrics.meters.clone());
    for (name, store) in [("no meters", &bare), ("meters", &metered)] {
        for (key, who) in [(0, "no limits"), (1, "every limit and a team")] {
            // A fake clock a millisecond further each time: the limits never run out.
            let mut now = Now::read();
            c.bench_function(&format!("admit + settle, {who}, {name}"), |b| {
                b.iter(|| {
                    now.mono += Duration::from_millis(1);
                    let admission = store.admit(key, Some(model), 300, now).unwrap();
                    store.settle(key, &admission, spend, now);
                })
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
