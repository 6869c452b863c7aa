//! Limits shared by replicas through a real `redis-server` (`[state] redis_url`): two gateway
//! processes on one Redis allow exactly a key's requests per minute between them, its tokens
//! per minute and its budget the same way; a budget's spend survives a gateway restart; with
//! Redis killed mid-run traffic flows under `fail_open` and is refused under `fail_closed`,
//! the metrics say so, and sharing resumes when Redis is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::scrape::{get, scrape, until, value};
use common::{
    assert_openai_error, chat_body, client, key_entry as key, key_secret as secret, post_chat,
    Process,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// `m` costs 0.1 USD per token, `other` is free, `slow` answers after 3 s.
const BASE: &str = r#"
[providers.local]
kind = "mock"

[providers.slow]
kind = "mock"
latency = "3s"

[models.m]
providers = ["local"]
input_price_per_1m = 100000.0
output_price_per_1m = 100000.0

[models.other]
providers = ["local"]

[models.slow]
providers = ["slow"]

[[keys]]
name = "free"
key = "free-secret-key"
"#;

/// A replica on `redis` with `keys` and `[state]` `state` lines. The timeout is generous:
/// these tests are about sharing, and a debug build on a busy machine is slow.
fn replica(redis: &Redis, keys: &str, state: &str) -> Process {
    common::gateway(&format!(
        "{BASE}{keys}\n[state]\nredis_url = \"{}\"\ntimeout = \"2s\"\nretry_interval = \"200ms\"\n{state}\n",
        redis.url()
    ))
}

/// Sends `bodies` for key `name`, spread over `replicas` (round robin), 6 at a time; the
/// statuses by replica and how long it all took.
fn spread(replicas: &[&Process], name: &str, bodies: &[String]) -> (Vec<Vec<u16>>, Duration) {
    let started = Instant::now();
    let jobs: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            (
                i % replicas.len(),
                replicas[i % replicas.len()].url("/v1/chat/completions"),
                body.clone(),
            )
        })
        .collect();
    let mut statuses = vec![Vec::new(); replicas.len()];
    for batch in jobs.chunks(6) {
        let threads: Vec<_> = batch
            .iter()
            .cloned()
            .map(|(r, url, body)| {
                let secret = secret(name);
                std::thread::spawn(move || {
                    let status = client()
                        .post(url)
                        .bearer_auth(secret)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16();
                    (r, status)
                })
            })
            .collect();
        for t in threads {
            let (r, status) = t.join().unwrap();
            statuses[r].push(status);
        }
    }
    (statuses, started.elapsed())
}

fn count(statuses: &[u16], code: u16) -> usize {
    statuses.iter().filter(|s| **s == code).count()
}

/// A request refilled by the limiter while the test ran: one per `60 s / limit`.
fn refilled(elapsed: Duration, limit: u32) -> usize {
    (elapsed.as_secs_f64() * f64::from(limit) / 60.0).floor() as usize
}

#[test]
fn two_replicas_allow_exactly_the_requests_per_minute_between_them() {
    let redis = Redis::start();
    let keys = key("k", "rate_limit_rpm = 30");
    let (a, b) = (replica(&redis, &keys, ""), replica(&redis, &keys, ""));
    let bodies = vec![chat_body("other", "hi", false); 60];
    let (statuses, elapsed) = spread(&[&a, &b], "k", &bodies);
    let ok: usize = statuses.iter().map(|s| count(s, 200)).sum();
    let refused: usize = statuses.iter().map(|s| count(s, 429)).sum();
    // Exactly 30, plus what refilled (one every 2 s) if the run took that long.
    let extra = refilled(elapsed, 30);
    assert!(
        (30..=30 + extra).contains(&ok),
        "{ok} admitted in {elapsed:?}: {statuses:?}"
    );
    assert_eq!(ok + refused, 60, "{statuses:?}");
    for (replica, s) in statuses.iter().enumerate() {
        assert!(count(s, 200) > 0, "replica {replica} admitted none: {s:?}");
    }
    // Each replica counts its own refusals; together they are the rest.
    let refusals = |gw: &Process| {
        value(
            &scrape(gw),
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"rpm\",team=\"none\"",
        )
    };
    assert_eq!(refusals(&a) + refusals(&b), refused as f64);
    // The answer's headers are the shared quota's.
    let reply = post_chat(&b, &chat_body("other", "hi", false), Some(&secret("k")));
    assert_eq!(reply.headers()["x-ratelimit-limit-requests"], "30");
    assert_eq!(reply.headers()["x-ratelimit-remaining-requests"], "0");
    let s = scrape(&a);
    assert_eq!(get(&s, "gatewayz_shared_state_up"), Some(1.0));
    assert!(
        get(
            &s,
            "gatewayz_shared_state_duration_seconds_count{op=\"admit\"}"
        )
        .unwrap()
            >= 30.0
    );
    // Keys are namespaced and expire.
    let ttl: i64 = redis
        .command(&["PTTL", "gatewayz:key:k:rpm"])
        .unwrap()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((1..=61_000).contains(&ttl), "{ttl}");
}

/// A request for `model` declaring `max_tokens`.
fn declaring(model: &str, max_tokens: u64) -> String {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hi"}],
    })
    .to_string()
}

#[test]
fn tokens_per_minute_hold_across_replicas() {
    let redis = Redis::start();
    let keys = key("k", "rate_limit_tpm = 1000");
    let (a, b) = (replica(&redis, &keys, ""), replica(&redis, &keys, ""));
    // Each reserves its input estimate and 300: three fit in 1000, a fourth does not. The
    // provider answers after 3 s, so none settles (and gives tokens back) meanwhile.
    let body = declaring("slow", 300);
    let reserved = (body.len() as u64).div_ceil(4) + 300;
    assert_eq!(1000 / reserved, 3);
    let (statuses, elapsed) = spread(&[&a, &b], "k", &vec![body; 6]);
    let ok: usize = statuses.iter().map(|s| count(s, 200)).sum();
    // 1000 tokens a minute refill one reservation every ~20 s.
    assert!(elapsed < Duration::from_secs(19), "{elapsed:?}");
    assert_eq!(ok, 3, "{statuses:?}");
    assert_eq!(statuses.iter().map(|s| count(s, 429)).sum::<usize>(), 3);
    // Settled at their usage (a few tokens each, refilled since), the reservations came
    // back: room for another, which takes its own reservation.
    let reply = post_chat(&a, &declaring("other", 300), Some(&secret("k")));
    assert_eq!(reply.status(), 200);
    let left: u64 = reply.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1000 - reserved - 40..=1000 - reserved).contains(&left),
        "{left}"
    );
}

#[test]
fn a_budget_holds_across_replicas_and_survives_a_restart() {
    let redis = Redis::start();
    let keys = key(
        "k",
        "team = \"ops\"\nbudget_usd = 0.5\nbudget_period = \"1d\"\nsoft_budget_usd = 0.3",
    ) + "[teams.ops]\n";
    let (a, b) = (replica(&redis, &keys, ""), replica(&redis, &keys, ""));
    let body = chat_body("m", "hi", false);
    // One answer at 0.1 USD a token spends the whole budget.
    let first = post_chat(&a, &body, Some(&secret("k")));
    assert_eq!(first.status(), 200);
    let usage: serde_json::Value = first.json().unwrap();
    let tokens = usage["usage"]["total_tokens"].as_f64().unwrap();
    assert!(tokens * 0.1 >= 0.5, "{tokens} tokens");
    // The other replica reads the spend back and refuses.
    until(&b, WAIT, "replica b sees the budget spent", |s| {
        (get(s, "gatewayz_budget_remaining_usd{name=\"k\",scope=\"key\"}")? == 0.0).then_some(())
    });
    let refused = post_chat(&b, &body, Some(&secret("k")));
    assert!(
        refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_openai_error(refused, 429, "budget_exceeded");
    // The soft budget was crossed once, on the replica whose settlement crossed it.
    let crossings = |gw: &Process| {
        value(
            &scrape(gw),
            "gatewayz_soft_budget_crossings_total",
            "name=\"k\",scope=\"key\"",
        )
    };
    assert_eq!(crossings(&a) + crossings(&b), 1.0);
    // Spend by key is counted where the request was served.
    let spent = value(
        &scrape(&a),
        "gatewayz_cost_by_key_usd_total",
        "key=\"k\",team=\"ops\"",
    );
    assert!((spent - tokens * 0.1).abs() < 1e-9, "{spent}");
    // A replica started now (or restarted) begins from the shared spend.
    drop(a);
    let c = replica(&redis, &keys, "");
    until(&c, WAIT, "a new replica reads the spend", |s| {
        (get(s, "gatewayz_budget_remaining_usd{name=\"k\",scope=\"key\"}")? == 0.0).then_some(())
    });
    assert_openai_error(
        post_chat(&c, &body, Some(&secret("k"))),
        429,
        "budget_exceeded",
    );
    // Keys without limits never touch Redis and pass.
    assert_eq!(post_chat(&c, &body, Some(&secret("free"))).status(), 200);
}

#[test]
fn redis_killed_fail_open_keeps_traffic_flowing_then_sharing_resumes() {
    let mut redis = Redis::start();
    let keys = key("k", "rate_limit_rpm = 6");
    let (a, b) = (replica(&redis, &keys, ""), replica(&redis, &keys, ""));
    let body = chat_body("other", "hi", false);
    let send = |gw: &Process| post_chat(gw, &body, Some(&secret("k"))).status().as_u16();
    // Shared: six between both, then refused on either.
    let ok = (0..6)
        .filter(|i| send(if i % 2 == 0 { &a } else { &b }) == 200)
        .count();
    assert_eq!(ok, 6);
    assert_eq!(send(&a), 429);
    assert_eq!(send(&b), 429);
    redis.kill();
    // Fail open: each replica decides with its own counters, which have room.
    assert_eq!(send(&a), 200);
    assert_eq!(send(&b), 200);
    for gw in [&a, &b] {
        let s = scrape(gw);
        assert_eq!(get(&s, "gatewayz_shared_state_up"), Some(0.0));
        assert!(
            value(
                &s,
                "gatewayz_shared_state_bypassed_total",
                "policy=\"fail_open\""
            ) >= 1.0
        );
        assert!(value(&s, "gatewayz_shared_state_errors_total", "op=\"admit\"") >= 1.0);
        assert!(
            gw.log_text().contains("shared limit store is unreachable"),
            "{}",
            gw.log_text()
        );
        // No secret in the outage's lines: the URL is not written at all (the banner shows
        // it, without credentials).
        assert!(gw
            .log_text()
            .lines()
            .filter(|l| l.contains("shared limit store"))
            .all(|l| !l.contains("redis://")));
    }
    // Back (empty: Redis kept nothing): both replicas share fresh counters again.
    redis.restart();
    for gw in [&a, &b] {
        until(gw, WAIT, "the store answers again", |s| {
            (get(s, "gatewayz_shared_state_up")? == 1.0).then_some(())
        });
        assert!(gw.log_text().contains("answers again"));
    }
    let ok = (0..8)
        .filter(|i| send(if i % 2 == 0 { &a } else { &b }) == 200)
        .count();
    assert_eq!(ok, 6);
}

#[test]
fn redis_killed_fail_closed_refuses_limited_keys_until_it_returns() {
    let mut redis = Redis::start();
    let keys = key("k", "rate_limit_rpm = 1000");
    let gw = replica(&redis, &keys, "failure_policy = \"fail_closed\"");
    let body = chat_body("other", "hi", false);
    assert_eq!(post_chat(&gw, &body, Some(&secret("k"))).status(), 200);
    redis.kill();
    let refused = post_chat(&gw, &body, Some(&secret("k")));
    assert_eq!(refused.headers()["retry-after"], "1");
    let error = assert_openai_error(refused, 503, "shared_state_unavailable");
    assert_eq!(error["error"]["type"], "api_error");
    // A key without limits needs no store.
    assert_eq!(post_chat(&gw, &body, Some(&secret("free"))).status(), 200);
    let s = scrape(&gw);
    assert!(
        value(
            &s,
            "gatewayz_shared_state_bypassed_total",
            "policy=\"fail_closed\""
        ) >= 1.0
    );
    assert!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"store_unavailable\",team=\"none\""
        ) >= 1.0
    );
    redis.restart();
    until(&gw, WAIT, "the store answers again", |s| {
        (get(s, "gatewayz_shared_state_up")? == 1.0).then_some(())
    });
    assert_eq!(post_chat(&gw, &body, Some(&secret("k"))).status(), 200);
}

/// The most tokens a request declares or uses, in the property below.
const U: u64 = 400;
const RPM: u64 = 20;
const TPM: u64 = 2000;
const PARALLEL: u64 = 3;
/// USD per token of `m`.
const PRICE: f64 = 0.1;
const BUDGET: f64 = 30.0;

#[derive(Debug, Clone)]
enum Step {
    Admit {
        key: usize,
        estimate: u64,
    },
    /// Settle the `nth` request in flight with `used` tokens (`None`: no answer).
    Settle {
        nth: usize,
        used: Option<u64>,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..2usize, 0..=U).prop_map(|(key, estimate)| Step::Admit { key, estimate }),
        3 => (any::<usize>(), proptest::option::of(0..=U))
            .prop_map(|(nth, used)| Step::Settle { nth, used }),
    ]
}

/// However admissions and settlements interleave against the real scripts in a real Redis
/// (its own clock: the run's refill counted from the time it took), a key's and its team's
/// admitted requests stay within the burst plus the refill, tokens used within the same plus
/// what requests in flight may add beyond their reservation, places in flight within
/// `max_parallel`, and spend within the budget plus what requests in flight may add.
#[test]
fn shared_limits_hold_under_any_interleaving() {
    use gatewayz::state::{InProcess, Now, Shared, Spend, Store};
    use proptest::test_runner::{Config as Cases, TestRunner};
    use std::sync::Arc;

    let redis = Redis::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = format!(
        "rate_limit_rpm = {RPM}\nrate_limit_tpm = {TPM}\nmax_parallel = {PARALLEL}\n\
         budget_usd = {BUDGET:.1}\nbudget_period = \"1h\""
    );
    let cases = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(Cases::with_cases(24));
    let steps = proptest::collection::vec(step(), 1..120);
    runner
        .run(&steps, |steps| {
            let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let config = gatewayz::config::Config::from_toml(
                &format!(
                    "{BASE}[teams.t]\n{limits}\n{}{}[state]\nredis_url = \"{}\"\n\
                     key_prefix = \"case{case}\"\ntimeout = \"5s\"\n",
                    key("a", &format!("team = \"t\"\n{limits}")),
                    key("b", "team = \"t\""),
                    redis.url()
                ),
                "test.toml",
                &|_| None,
            )
            .unwrap();
            let catalog = gatewayz::catalog::Catalog::new(&config);
            let m = catalog.model_id("m").unwrap();
            let local = Arc::new(InProcess::new(&config, &catalog, Instant::now()));
            let shared = Arc::new(Shared::start(&config, local).unwrap());
            let store = Store::Shared(shared.clone());
            // Keys 1 and 2: `free` is key 0.
            let index = |key: usize| key + 1;
            runtime.block_on(async {
                let started = Instant::now();
                let mut in_flight = Vec::new();
                let (mut admitted, mut used_tokens, mut spent) = (0u64, 0u64, 0.0f64);
                let mut peak = 0u64;
                for step in steps {
                    match step {
                        Step::Admit { key, estimate } => {
                            let now = Now::read();
                            if let Ok(a) = store.admit(index(key), Some(m), estimate, now).await {
                                assert!(a.lease.is_some(), "decided without the store");
                                admitted += 1;
                                in_flight.push((key, a));
                                peak = peak.max(in_flight.len() as u64);
                            }
                        }
                        Step::Settle { nth, used } if !in_flight.is_empty() => {
                            let (key, a) = in_flight.remove(nth % in_flight.len());
                            let spend = match used {
                                Some(n) => Spend::Tokens {
                                    model: m,
                                    input: n,
                                    output: 0,
                                },
                                None => Spend::Nothing,
                            };
                            used_tokens += used.unwrap_or(0);
                            spent += used.unwrap_or(0) as f64 * PRICE;
                            store.settle(index(key), &a, spend, Now::read());
                            shared.flush(Duration::from_secs(5)).await;
                        }
                        Step::Settle { .. } => {}
                    }
                    let elapsed = started.elapsed().as_secs_f64();
                    let refill = |limit: u64| limit as f64 + limit as f64 * elapsed / 60.0;
                    let reserved: u64 = in_flight.iter().map(|(_, a)| a.reserved).sum();
                    if in_flight.len() as u64 > PARALLEL
                        || admitted as f64 > refill(RPM)
                        || (used_tokens + reserved) as f64 > refill(TPM) + (peak * U) as f64
                        || spent > BUDGET + (peak * U) as f64 * PRICE + 1e-6
                    {
                        return Err(proptest::test_runner::TestCaseError::fail(format!(
                            "{} in flight, {admitted} admitted, {used_tokens} used + \
                             {reserved} reserved, {spent} USD, in {elapsed}s",
                            in_flight.len()
                        )));
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn a_slow_store_counts_as_unreachable_and_a_late_admission_is_given_back() {
    let redis = Redis::start();
    let gw = common::gateway(&format!(
        "{BASE}{}\n[state]\nredis_url = \"{}\"\ntimeout = \"100ms\"\nretry_interval = \"200ms\"\n",
        key("k", "rate_limit_rpm = 2"),
        redis.url()
    ));
    let body = chat_body("other", "hi", false);
    let send = || post_chat(&gw, &body, Some(&secret("k"))).status().as_u16();
    assert_eq!(send(), 200);
    // Redis busy for two seconds: every call waits.
    let url = redis.addr;
    let busy = std::thread::spawn(move || {
        let stream = std::net::TcpStream::connect(url).unwrap();
        use std::io::{Read, Write};
        (&stream)
            .write_all(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$1\r\n2\r\n")
            .unwrap();
        let mut ok = [0u8; 5];
        (&stream).read_exact(&mut ok).unwrap();
    });
    common::wait_until(WAIT, "redis is busy", || {
        redis
            .command_within(&["PING"], Duration::from_millis(300))
            .is_err()
    });
    // No answer within 100 ms: decided by this replica's counters (fail_open).
    assert_eq!(send(), 200);
    let s = scrape(&gw);
    assert!(value(&s, "gatewayz_shared_state_errors_total", "op=\"admit\"") >= 1.0);
    assert!(
        value(
            &s,
            "gatewayz_shared_state_bypassed_total",
            "policy=\"fail_open\""
        ) >= 1.0
    );
    assert!(
        gw.log_text().contains("no answer within 100ms"),
        "{}",
        gw.log_text()
    );
    busy.join().unwrap();
    until(&gw, WAIT, "the store answers again", |s| {
        (get(s, "gatewayz_shared_state_up")? == 1.0).then_some(())
    });
    // Redis took the late admission, but nobody waited for it: given back, so the shared
    // count is still one of two.
    assert_eq!(send(), 200);
    assert_eq!(send(), 429);
}

#[test]
fn spend_during_an_outage_reaches_the_shared_budget_when_redis_returns() {
    let mut redis = Redis::start();
    let keys = key("k", "budget_usd = 100.0\nbudget_period = \"1d\"");
    let (a, b) = (replica(&redis, &keys, ""), replica(&redis, &keys, ""));
    redis.kill();
    let reply = post_chat(&a, &chat_body("m", "hi", false), Some(&secret("k")));
    assert_eq!(reply.status(), 200);
    let usage: serde_json::Value = reply.json().unwrap();
    let cost = usage["usage"]["total_tokens"].as_f64().unwrap() * 0.1;
    until(&a, WAIT, "replica a sees the store down", |s| {
        (get(s, "gatewayz_shared_state_up")? == 0.0).then_some(())
    });
    // Replica a counted it on its own meanwhile.
    let left = |s: &common::scrape::Series| {
        let left = get(s, "gatewayz_budget_remaining_usd{name=\"k\",scope=\"key\"}")?;
        ((left - (100.0 - cost)).abs() < 1e-9).then_some(())
    };
    until(&a, WAIT, "replica a's own view of the spend", left);
    // Back: a's kept settlement is sent, and b reads the spend from Redis.
    redis.restart();
    until(
        &b,
        WAIT,
        "replica b reads the spend made during the outage",
        left,
    );
    assert_eq!(
        value(
            &scrape(&a),
            "gatewayz_shared_state_lost_settlements_total",
            ""
        ),
        0.0
    );
}

/// A key made through the admin API gets its limits in Redis too: made on replica A, it works
/// on B within the key sync, and its requests per minute hold across both.
#[test]
fn a_virtual_key_is_limited_in_the_shared_store_on_every_replica() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = "admin-token-0123456789";
    let state = format!(
        "[ledger]\nurl = \"sqlite://{}\"\nflush_interval = \"50ms\"\n\
         [admin]\ntoken = \"{admin}\"\nkey_sync_interval = \"200ms\"\n",
        dir.path().join("keys.db").display()
    );
    let (a, b) = (replica(&redis, "", &state), replica(&redis, "", &state));
    let made: serde_json::Value = client()
        .post(a.url("/admin/keys"))
        .bearer_auth(admin)
        .header("content-type", "application/json")
        .body(json!({"name": "shared-vk", "rate_limit_rpm": 4}).to_string())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = made["key"].as_str().expect("the secret").to_owned();
    // B learns the key within its sync interval (a 401 until then uses no quota).
    let first = common::poll(WAIT, || {
        let status = post_chat(&b, &chat_body("other", "hi", false), Some(&secret)).status();
        (status != 401).then_some(status.as_u16())
    });
    assert_eq!(first, Some(200), "B never accepted the key");
    let mut statuses = vec![200];
    for gw in [&a, &b, &a, &b, &a] {
        statuses.push(
            post_chat(gw, &chat_body("other", "hi", false), Some(&secret))
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "exactly the shared 4 per minute: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}
