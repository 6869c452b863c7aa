//! Per-key and per-team limits through HTTP, against the real binary and its in-process mock
//! provider: requests per minute (exactly N, then 429 with `Retry-After` and the
//! `x-ratelimit-*` headers), tokens per minute (the declared `max_tokens` reserved, corrected
//! by the usage), requests in parallel (a slow provider), a budget refusing once spent and its
//! soft budget counted, the model allow-list (403 in OpenAI's and Anthropic's shapes), a team
//! limit shared by two keys, and the spend metrics by key and team.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::scrape::{get, scrape, until, value};
use common::{
    assert_openai_error, chat_body, client, key_entry as key, key_secret as secret, post_chat,
    Process,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// `m` costs 0.1 USD per token, `other` is free, `slow` answers after 2 s.
const BASE: &str = r#"
[providers.local]
kind = "mock"

[providers.slow]
kind = "mock"
latency = "2s"

[models.m]
providers = ["local"]
input_price_per_1m = 100000.0
output_price_per_1m = 100000.0

[models.other]
providers = ["local"]

[models.slow]
providers = ["slow"]
"#;

fn gateway(extra: &str) -> Process {
    common::gateway(&format!("{BASE}{extra}"))
}

fn header(reply: &reqwest::blocking::Response, name: &str) -> String {
    reply
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn number(reply: &reqwest::blocking::Response, name: &str) -> u64 {
    header(reply, name).parse().unwrap()
}

/// A chat request for `model` declaring `max_tokens`.
fn declaring(model: &str, max_tokens: u64) -> String {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hi"}],
    })
    .to_string()
}

#[test]
fn rpm_admits_exactly_the_limit_then_refuses_with_the_headers() {
    let gw = gateway(&key("k", "rate_limit_rpm = 3"));
    let body = chat_body("other", "hi", false);
    for left in [2, 1, 0] {
        let reply = post_chat(&gw, &body, Some(&secret("k")));
        assert_eq!(reply.status(), 200);
        assert_eq!(number(&reply, "x-ratelimit-limit-requests"), 3);
        assert_eq!(number(&reply, "x-ratelimit-remaining-requests"), left);
        assert!(header(&reply, "x-ratelimit-reset-requests").ends_with('s'));
        assert!(reply.headers().get("x-ratelimit-limit-tokens").is_none());
    }
    let refused = post_chat(&gw, &body, Some(&secret("k")));
    // One request back every 20 s.
    assert_eq!(header(&refused, "retry-after"), "20");
    assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 0);
    assert!(header(&refused, "x-ratelimit-reset-requests").ends_with('s'));
    let error = assert_openai_error(refused, 429, "rate_limit_exceeded");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"rpm\",team=\"none\""
        ),
        1.0
    );
}

#[test]
fn tpm_reserves_the_declared_max_tokens_and_settles_the_usage() {
    let gw = gateway(&key("k", "rate_limit_tpm = 1000"));
    let body = declaring("other", 600);
    // The input estimate: a token per 4 bytes of body.
    let input = (body.len() as u64).div_ceil(4);
    let first = post_chat(&gw, &body, Some(&secret("k")));
    assert_eq!(first.status(), 200);
    assert_eq!(number(&first, "x-ratelimit-limit-tokens"), 1000);
    // Refills at 1000 a minute: a few tokens may come back while the test runs.
    let left = number(&first, "x-ratelimit-remaining-tokens");
    assert!(
        (1000 - 600 - input..1000 - 600 - input + 20).contains(&left),
        "{left}"
    );
    let used: Value = first.json().unwrap();
    let used = used["usage"]["total_tokens"].as_u64().unwrap();
    // The first settled at its usage: only that stays taken, then the second's reservation.
    let second = post_chat(&gw, &body, Some(&secret("k")));
    assert_eq!(second.status(), 200);
    let left = number(&second, "x-ratelimit-remaining-tokens");
    let expected = 1000 - used - 600 - input;
    assert!(
        (expected..expected + 20).contains(&left),
        "{left} vs {expected}"
    );
    // A request declaring more than the whole limit waits for a whole limiter.
    let refused = post_chat(&gw, &declaring("other", 5000), Some(&secret("k")));
    assert!(number(&refused, "retry-after") >= 1);
    assert_eq!(number(&refused, "x-ratelimit-limit-tokens"), 1000);
    assert!(header(&refused, "x-ratelimit-reset-tokens").ends_with('s'));
    assert_openai_error(refused, 429, "rate_limit_exceeded");
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"tpm\",team=\"none\""
        ),
        1.0
    );
}

#[test]
fn max_parallel_refuses_while_requests_are_in_flight() {
    let gw = gateway(&key("k", "max_parallel = 2"));
    let body = chat_body("slow", "hi", false);
    let flying: Vec<_> = (0..2)
        .map(|_| {
            let (url, body) = (gw.url("/v1/chat/completions"), body.clone());
            std::thread::spawn(move || {
                client()
                    .post(url)
                    .bearer_auth(secret("k"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // Both in flight (the scrape counts itself too).
    until(&gw, WAIT, "two requests in flight", |s| {
        (get(s, "http_requests_in_flight")? >= 3.0).then_some(())
    });
    let refused = post_chat(&gw, &body, Some(&secret("k")));
    assert_eq!(header(&refused, "retry-after"), "1");
    let error = assert_openai_error(refused, 429, "rate_limit_exceeded");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in flight"));
    for request in flying {
        assert_eq!(request.join().unwrap(), 200);
    }
    // Their places came back.
    assert_eq!(post_chat(&gw, &body, Some(&secret("k"))).status(), 200);
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"parallel\",team=\"none\""
        ),
        1.0
    );
}

#[test]
fn a_budget_refuses_once_spent_and_counts_spend_by_key() {
    let gw = gateway(&key(
        "k",
        "team = \"ops\"\nbudget_usd = 0.5\nbudget_period = \"1d\"\nsoft_budget_usd = 0.1",
    ));
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_budget_remaining_usd",
            "name=\"k\",scope=\"key\""
        ),
        0.5
    );
    // At 0.1 USD a token, one answer spends more than the budget.
    let prompt = "one two three four five six";
    let first = post_chat(&gw, &chat_body("m", prompt, false), Some(&secret("k")));
    assert_eq!(first.status(), 200);
    let usage: Value = first.json().unwrap();
    let (input, output) = (
        usage["usage"]["prompt_tokens"].as_f64().unwrap(),
        usage["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    assert!((input + output) * 0.1 > 0.5, "{input} + {output} tokens");
    let refused = post_chat(&gw, &chat_body("other", "hi", false), Some(&secret("k")));
    // Until the next UTC day.
    let wait = number(&refused, "retry-after");
    assert!((1..=86_400).contains(&wait), "{wait}");
    let error = assert_openai_error(refused, 429, "budget_exceeded");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("budget"));
    let s = scrape(&gw);
    let kt = "key=\"k\",team=\"ops\"";
    let cost = value(&s, "gatewayz_cost_by_key_usd_total", kt);
    assert!((cost - (input + output) * 0.1).abs() < 1e-9, "{cost}");
    assert_eq!(
        value(
            &s,
            "gatewayz_tokens_by_key_total",
            &format!("{kt},type=\"input\"")
        ),
        input
    );
    assert_eq!(
        value(
            &s,
            "gatewayz_tokens_by_key_total",
            &format!("{kt},type=\"output\"")
        ),
        output
    );
    assert_eq!(
        value(
            &s,
            "gatewayz_budget_remaining_usd",
            "name=\"k\",scope=\"key\""
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "gatewayz_soft_budget_crossings_total",
            "name=\"k\",scope=\"key\""
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"budget\",team=\"ops\""
        ),
        1.0
    );
    assert!(gw.log_text().contains("soft budget crossed"));
}

#[test]
fn the_model_list_answers_403_in_either_shape() {
    let gw = gateway(&key("k", "models = [\"other\"]"));
    let denied = post_chat(&gw, &chat_body("m", "hi", false), Some(&secret("k")));
    let error = assert_openai_error(denied, 403, "model_not_allowed");
    assert_eq!(error["error"]["type"], "permission_error");
    assert_eq!(error["error"]["param"], "model");
    let anthropic = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", secret("k"))
        .header("content-type", "application/json")
        .body(declaring("m", 16))
        .send()
        .unwrap();
    assert_eq!(anthropic.status(), 403);
    let body: Value = anthropic.json().unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(
        post_chat(&gw, &chat_body("other", "hi", false), Some(&secret("k"))).status(),
        200
    );
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"k\",reason=\"model_not_allowed\",team=\"none\""
        ),
        2.0
    );
}

#[test]
fn a_team_limit_is_shared_by_its_keys() {
    let gw = gateway(&format!(
        "[teams.ops]\nrate_limit_rpm = 2\n{}{}{}",
        key("a", "team = \"ops\""),
        key("b", "team = \"ops\""),
        key("solo", ""),
    ));
    let body = chat_body("other", "hi", false);
    assert_eq!(post_chat(&gw, &body, Some(&secret("a"))).status(), 200);
    let second = post_chat(&gw, &body, Some(&secret("b")));
    assert_eq!(number(&second, "x-ratelimit-remaining-requests"), 0);
    let refused = post_chat(&gw, &body, Some(&secret("a")));
    let error = assert_openai_error(refused, 429, "rate_limit_exceeded");
    assert!(error["error"]["message"].as_str().unwrap().contains("team"));
    // Keys outside the team are not limited by it.
    assert_eq!(post_chat(&gw, &body, Some(&secret("solo"))).status(), 200);
    let s = scrape(&gw);
    assert_eq!(
        value(
            &s,
            "gatewayz_limit_refusals_total",
            "key=\"a\",reason=\"rpm\",team=\"ops\""
        ),
        1.0
    );
    assert!(
        value(
            &s,
            "gatewayz_tokens_by_key_total",
            "key=\"solo\",team=\"none\",type=\"input\""
        ) > 0.0
    );
}

/// The example in `docs/LIMITS.md` is a configuration the gateway accepts.
#[test]
fn the_example_in_the_docs_is_valid() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LIMITS.md"),
    )
    .unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let src = format!(
        "[providers.local]\nkind = \"mock\"\n[models.gpt-4o-mini]\nproviders = [\"local\"]\n{example}"
    );
    let config = gatewayz::config::Config::from_toml(&src, "LIMITS.md", &|_| {
        Some("from-the-environment".into())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.keys[0].team.as_deref(), Some("research"));
    assert!(config.teams["research"].limits().any());
}

/// A key with a model list sees only its models in `/v1/models`, and the others are a 404.
#[test]
fn the_model_list_is_what_the_key_sees_in_v1_models() {
    let gw = gateway(&format!(
        "{}{}",
        key("k", "models = [\"other\"]"),
        key("all", "")
    ));
    let ids = |key: &str| {
        let list: Value = client()
            .get(gw.url("/v1/models"))
            .bearer_auth(secret(key))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let ids: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        ids
    };
    assert_eq!(ids("k"), ["other"]);
    assert_eq!(ids("all"), ["m", "other", "slow"]);
    let one = |key: &str, id: &str| {
        client()
            .get(gw.url(&format!("/v1/models/{id}")))
            .bearer_auth(secret(key))
            .send()
            .unwrap()
    };
    assert_eq!(one("k", "other").status(), 200);
    assert_openai_error(one("k", "m"), 404, "model_not_found");
    assert_eq!(one("all", "m").status(), 200);
}
