//! Scrape cost at scale: 50 providers × 200 models, each model routed to 3 providers (600
//! provider/model pairs), every pair
//! with traffic recorded. Measures gathering + encoding everything (`/metrics`) against
//! gathering + selecting + encoding one category, and prints the body sizes.
#![allow(clippy::expect_used)] // a bench set-up that fails should stop loudly

use std::fmt::Write;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gatewayz::config::Config;
use gatewayz::telemetry::metrics::catalogue::Category;
use gatewayz::telemetry::metrics::exposition::{encode, select};
use gatewayz::telemetry::metrics::log_stats::LogStats;
use gatewayz::telemetry::metrics::{hot, Metrics, Sources};

const PROVIDERS: usize = 50;
const MODELS: usize = 200;
const PER_MODEL: usize = 3;

fn config() -> Config {
    let mut toml = String::new();
    for p in 0..PROVIDERS {
        let _ = writeln!(toml, "[providers.p{p:02}]\nkind = \"mock\"\n");
    }
    for m in 0..MODELS {
        let providers: Vec<String> = (0..PER_MODEL)
            .map(|k| format!("\"p{:02}\"", (m + k * 17) % PROVIDERS))
            .collect();
        let _ = writeln!(
            toml,
            "[models.m{m:03}]\nproviders = [{}]\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\n",
            providers.join(", ")
        );
    }
    Config::from_toml(&toml, "bench", &|_| None).expect("valid bench config")
}

fn bench(c: &mut Criterion) {
    let config = config();
    let board = Arc::new(gatewayz::catalog::Catalog::new(&config).board());
    let metrics = Metrics::new(Sources {
        board: Arc::new(arc_swap::ArcSwap::new(board.clone())),
        log_stats: Arc::new(LogStats::default()),
        trials: Arc::new(|_| 0),
        budgets: gatewayz::telemetry::metrics::no_budgets(),
    })
    .expect("metrics");
    let h = &metrics.meters.hot;
    for model in 0..MODELS {
        for k in 0..PER_MODEL {
            let provider = (model + k * 17) % PROVIDERS;
            let completion = hot::Completion {
                provider: Some(provider as u32),
                model: model as u32,
                api: "chat",
            };
            h.model_requests.add(
                1,
                &hot::CompletionStatus {
                    completion,
                    value: "success",
                },
            );
            h.model_duration.record(0.3, &completion);
            h.time_to_first_token.record(0.1, &completion);
            for (value, n) in [("input", 100), ("output", 40)] {
                h.tokens
                    .add(n, &hot::CompletionTokens { completion, value });
            }
        }
    }
    for provider in 0..PROVIDERS {
        let p = hot::Provider(provider as u32);
        h.provider_response_time.record(0.2, &p);
        h.cost_by_provider.add(0.01, &p);
        h.provider_requests.add(
            3,
            &hot::Attempt {
                provider: provider as u32,
                outcome: "success",
                reason: "none",
            },
        );
    }
    for model in 0..MODELS {
        h.cost_by_model.add(0.01, &hot::Model(model as u32));
    }

    let all = encode(&metrics.gather()).expect("encode");
    let business = encode(&select(metrics.gather(), Category::Business)).expect("encode");
    let providers = encode(&select(metrics.gather(), Category::Providers)).expect("encode");
    eprintln!(
        "exposition sizes: all {} KiB ({} lines), business {} KiB, providers {} KiB",
        all.len() / 1024,
        all.iter().filter(|b| **b == b'\n').count(),
        business.len() / 1024,
        providers.len() / 1024
    );

    let mut group = c.benchmark_group("scrape_50x200");
    group.bench_function("all", |b| {
        b.iter(|| encode(&metrics.gather()).map(|v| v.len()))
    });
    group.bench_function("business", |b| {
        b.iter(|| encode(&select(metrics.gather(), Category::Business)).map(|v| v.len()))
    });
    group.bench_function("providers", |b| {
        b.iter(|| encode(&select(metrics.gather(), Category::Providers)).map(|v| v.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
