//! Configuration reload against the real binary, under load: SIGHUP swaps a key, a price and
//! a provider while JSON requests and streams keep flowing, and not one of them fails; a
//! stream open across the reload ends whole on the provider it began with. An invalid file
//! and a file that changes a restart-only setting (`POST /admin/reload`) are refused with
//! `check-config`'s message and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scrape::{self, value};

const ADMIN: &str = "reload-admin-token";

/// The configuration: the admin token, `steady` (the load's key) and `extra_keys`, model `m`
/// served by `provider` at `upstream` and priced at `input_price` per 1M input tokens.
fn config(
    provider: &str,
    upstream: &common::Process,
    input_price: f64,
    extra_keys: &str,
) -> String {
    format!(
        "[admin]\ntoken = \"{ADMIN}\"\n\n{}\n[models.m]\nproviders = [\"{provider}\"]\n\
         input_price_per_1m = {input_price:.1}\noutput_price_per_1m = 2.0\n\n{}{extra_keys}",
        common::openai_provider(provider, upstream, ""),
        common::key_entry("steady", ""),
    )
}

fn status_of(gw: &common::Process, key: &str) -> u16 {
    let body = common::chat_body("m", "who answers", false);
    common::post_chat(gw, &body, Some(&common::key_secret(key)))
        .status()
        .as_u16()
}

fn reload(gw: &common::Process) -> reqwest::blocking::Response {
    common::client()
        .post(gw.url("/admin/reload"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
}

fn chat_requests(upstream: &common::Process) -> u64 {
    common::mock_stats(upstream)["chat_requests"]
        .as_u64()
        .unwrap()
}

/// Clients sending JSON requests and streams with the `steady` key until told to stop,
/// counting what they got.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(gw: &common::Process, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|i| {
                let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
                let addr = gw.addr;
                std::thread::spawn(move || {
                    let client = common::client();
                    let secret = common::key_secret("steady");
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let stream = (i + n) % 2 == 0;
                        n += 1;
                        let body = common::chat_body("m", "keep going", stream);
                        let reply = common::chat_request(&client, addr, body)
                            .bearer_auth(&secret)
                            .send();
                        let outcome = match reply {
                            Err(e) => Err(format!("send: {e}")),
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let text = r.text().unwrap_or_default();
                                let whole = if stream {
                                    text.contains("data: [DONE]") && !text.contains("\"error\"")
                                } else {
                                    text.contains("\"choices\"")
                                };
                                if status == 200 && whole {
                                    Ok(())
                                } else {
                                    Err(format!("{status} stream={stream}: {text}"))
                                }
                            }
                        };
                        if let Err(e) = outcome {
                            failures.lock().unwrap().push(e);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self {
            stop,
            done,
            failures,
            threads,
        }
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have ended.
    fn advance(&self, n: u64) {
        let target = self.done() + n;
        common::wait_until(Duration::from_secs(60), "the load to advance", || {
            self.done() >= target
        });
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.done.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn sighup_swaps_a_key_a_price_and_a_provider_under_load_without_a_failed_request() {
    // 10 ms between words: a stream lasts long enough to be open across the reload.
    let first = common::mock_upstream(&["--chunk-delay", "10ms"]);
    let second = common::mock_upstream(&["--chunk-delay", "10ms"]);
    let (dir, path) = common::config_file(&config(
        "first",
        &first,
        1.0,
        &common::key_entry("leaving", ""),
    ));
    let gw = common::spawn(
        &["serve", "--config", &path, "--listen", "127.0.0.1:0"],
        &[],
        Some(dir),
    );
    assert_eq!(status_of(&gw, "leaving"), 200);
    assert_eq!(status_of(&gw, "joining"), 401);

    // A stream that is open when the configuration changes: it reads its first bytes now and
    // the rest once the reload is done.
    let open_stream = common::HeldStream::open(
        gw.addr,
        common::chat_body("m", "span the reload", true),
        Some(common::key_secret("steady")),
    );

    let load = Load::start(&gw, 4);
    load.advance(20);
    assert!(chat_requests(&first) > 0);
    let before = scrape::scrape(&gw);
    assert_eq!(
        scrape::breaker(&before, "first")[0],
        Some(1.0),
        "the first provider's breaker, closed"
    );

    // The new file: `m` moves to a new provider at the second upstream, at a new price;
    // `leaving` is gone and `joining` is new.
    std::fs::write(
        &path,
        config("second", &second, 5.0, &common::key_entry("joining", "")),
    )
    .unwrap();
    gw.signal("HUP");
    common::wait_until(Duration::from_secs(30), "the reload line", || {
        gw.log_text().contains("configuration reloaded")
    });
    let (status, body) = open_stream.finish();
    assert_eq!(status, 200);
    assert!(
        body.contains("data: [DONE]"),
        "the open stream ended whole: {body}"
    );
    assert!(!body.contains("\"error\""), "{body}");

    // In-flight requests of the old configuration drain to the first upstream; then every
    // request goes to the second.
    load.advance(40);
    let first_after = chat_requests(&first);
    let second_after = chat_requests(&second);
    assert!(
        second_after > 0,
        "the second upstream serves after the reload"
    );
    load.advance(40);
    assert_eq!(
        chat_requests(&first),
        first_after,
        "nothing reaches the dropped provider"
    );
    assert!(chat_requests(&second) > second_after);

    // An invalid file, then one that changes a restart-only setting: refused, as check-config
    // says, and the configuration in force keeps serving.
    std::fs::write(&path, "[models.m]\nproviders = [\"nowhere\"]\n").unwrap();
    let refused = common::assert_openai_error(reload(&gw), 400, "invalid_config");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("providers"), "{message}");
    let restart_only = format!(
        "[server]\nmax_body_bytes = 1000\n\n{}",
        config("second", &second, 5.0, &common::key_entry("joining", ""))
    );
    std::fs::write(&path, restart_only).unwrap();
    let refused = common::assert_openai_error(reload(&gw), 400, "invalid_config");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("[server]") && message.contains("restart"),
        "{message}"
    );
    load.advance(20);

    let (total, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {failures:?}",
        failures.len()
    );
    assert!(total >= 120, "{total}");

    // The key swapped.
    assert_eq!(status_of(&gw, "leaving"), 401);
    assert_eq!(status_of(&gw, "joining"), 200);

    // The price: the model's cost grows by its tokens at the new prices.
    let cost = |s: &scrape::Series| value(s, "gatewayz_cost_by_model_total", "model=\"m\"");
    let tokens = |s: &scrape::Series, kind: &str| -> f64 {
        let kind = format!("type=\"{kind}\"");
        s.iter()
            .filter(|(k, _)| k.starts_with("gatewayz_tokens_total{") && k.contains(&kind))
            .filter(|(k, _)| k.contains("model=\"m\""))
            .map(|(_, v)| v)
            .sum()
    };
    let a = scrape::scrape(&gw);
    assert_eq!(status_of(&gw, "joining"), 200);
    let b = scrape::until(&gw, Duration::from_secs(10), "the request's cost", |s| {
        (cost(s) > cost(&a)).then(|| s.clone())
    });
    let (input, output) = (
        tokens(&b, "input") - tokens(&a, "input"),
        tokens(&b, "output") - tokens(&a, "output"),
    );
    assert!(input > 0.0 && output > 0.0);
    let want = input * 5e-6 + output * 2e-6;
    assert!(
        (cost(&b) - cost(&a) - want).abs() < 1e-9,
        "cost {} for {input} in, {output} out; want {want}",
        cost(&b) - cost(&a)
    );

    // The providers: only the second is listed and exported; the reloads are counted.
    let providers = common::get_json(&gw, "/health/providers");
    let names: Vec<_> = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["second"]);
    let after = scrape::scrape(&gw);
    assert_eq!(scrape::breaker(&after, "first"), [None, None, None]);
    assert_eq!(scrape::breaker(&after, "second")[0], Some(1.0));
    let reloads = |result: &str| {
        value(
            &after,
            "gatewayz_config_reloads_total",
            &format!("result=\"{result}\""),
        )
    };
    assert_eq!((reloads("applied"), reloads("refused")), (1.0, 2.0));
    let log = gw.log_text();
    let refusals = log
        .lines()
        .filter(|l| l.contains("configuration reload refused"))
        .count();
    assert_eq!(refusals, 2, "{log}");
    assert!(!log.contains(ADMIN), "the admin token is in the log");
    assert!(!log.contains(&common::key_secret("joining")));
}
