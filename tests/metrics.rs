//! Black-box tests of the metrics and the actors behind them: the real binary against
//! `mock-upstream` processes that fail, slow down and recover, asserting on scraped `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::scrape::{breaker, get, promtool_check, scrape, text, until};
use common::{chat_body, client, gateway, mock_upstream, openai_provider, Process};
use common::{TEAM_AND_TRIAL_KEYS, TEAM_KEY};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn chat(gw: &Process, model: &str, prompt: &str) -> (u16, Value) {
    let reply = common::chat_request(&common::http(), gw.addr, chat_body(model, prompt, false))
        .bearer_auth(TEAM_KEY)
        .send()
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().unwrap_or(Value::Null))
}

fn control(upstream: &Process, behaviour: Value) {
    let reply = client()
        .post(upstream.url("/mock/control"))
        .json(&behaviour)
        .send()
        .unwrap();
    assert_eq!(reply.status(), 200, "{:?}", reply.text());
}

#[test]
fn breaker_opens_half_opens_and_closes_and_health_follows() {
    let bad = mock_upstream(&[]);
    let good = mock_upstream(&[]);
    let config = format!(
        "[breaker]\nconsecutive_failures = 3\nmin_requests = 1000\ncool_down = \"3s\"\n\
         half_open_probes = 1\nclose_after = 1\n\
         [health]\nwindow = \"30s\"\npublish_interval = \"50ms\"\n{}{}{TEAM_AND_TRIAL_KEYS}\
         [models.m-main]\nproviders = [\"bad\", \"good\"]\n\
         [models.m-bad]\nproviders = [\"bad\"]\n",
        openai_provider("bad", &bad, "timeout = \"5s\""),
        openai_provider("good", &good, "timeout = \"5s\""),
    );
    let gw = gateway(&config);
    let one_hot = |s: &_, p, want: [f64; 3]| breaker(s, p) == want.map(Some);
    assert!(one_hot(&scrape(&gw), "bad", [1.0, 0.0, 0.0]));

    control(&bad, serde_json::json!({"fail_rate": 1.0}));
    // The first failure fails over to the good provider; then the bad one is demoted (its
    // health drops), so two more requests for the model only it serves trip its breaker.
    let (status, body) = chat(&gw, "m-main", "failover");
    assert_eq!(status, 200, "{body}");
    for i in 0..2 {
        let (status, body) = chat(&gw, "m-bad", &format!("fail {i}"));
        assert_eq!(status, 502, "{body}");
    }
    until(&gw, WAIT, "bad breaker open", |s| {
        one_hot(s, "bad", [0.0, 1.0, 0.0]).then_some(())
    });
    let s = scrape(&gw);
    assert!(one_hot(&s, "good", [1.0, 0.0, 0.0]));
    assert_eq!(
        get(&s, "gatewayz_provider_failovers_total{provider=\"bad\"}"),
        Some(1.0)
    );
    assert_eq!(
        get(
            &s,
            "gatewayz_provider_requests_total{outcome=\"error\",provider=\"bad\",reason=\"server_error\"}"
        ),
        Some(3.0)
    );

    // Every breaker of m-bad is open: an OpenAI-shaped 503, and nothing sent upstream.
    let (status, body) = chat(&gw, "m-bad", "nobody home");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "no_provider_available");
    assert_eq!(body["error"]["type"], "api_error");

    let health = |s: &common::scrape::Series, p: &str| {
        get(
            s,
            &format!("gatewayz_provider_health_score{{provider=\"{p}\"}}"),
        )
    };
    until(
        &gw,
        WAIT,
        "bad provider's health below the good one's",
        |s| (health(s, "bad")? < health(s, "good")?).then_some(()),
    );
    let providers = common::get_json(&gw, "/health/providers");
    let bad_view = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad_view["breaker_state"], "open");
    assert!(bad_view["error_rate"].as_f64().unwrap() > 0.9, "{bad_view}");

    // The provider recovers; after the cool-down the breaker lets one probe through.
    control(&bad, serde_json::json!({"fail_rate": 0.0}));
    until(&gw, WAIT, "bad breaker half-open", |s| {
        one_hot(s, "bad", [0.0, 0.0, 1.0]).then_some(())
    });
    let (status, _) = chat(&gw, "m-bad", "probe");
    assert_eq!(status, 200);
    until(&gw, WAIT, "bad breaker closed again", |s| {
        one_hot(s, "bad", [1.0, 0.0, 0.0]).then_some(())
    });
    let log = gw.log_text();
    assert!(
        log.contains("circuit breaker opened") && log.contains("3 consecutive failures"),
        "{log}"
    );
}

#[test]
fn cost_seed_metrics_cardinality_and_promtool() {
    let upstream = mock_upstream(&[]);
    let config = format!(
        "{}{TEAM_AND_TRIAL_KEYS}[models.m-cost]\nproviders = [\"p\"]\n\
         input_price_per_1m = 10000.0\noutput_price_per_1m = 20000.0\n",
        openai_provider("p", &upstream, ""),
    );
    let gw = gateway(&config);
    let (mut input, mut output) = (0.0, 0.0);
    for i in 0..5 {
        let (status, body) = chat(&gw, "m-cost", &"word ".repeat(i * 7 + 1));
        assert_eq!(status, 200, "{body}");
        input += body["usage"]["prompt_tokens"].as_f64().unwrap();
        output += body["usage"]["completion_tokens"].as_f64().unwrap();
    }
    let expected = input * 0.01 + output * 0.02;
    let cost = until(&gw, WAIT, "cost of five completions", |s| {
        let by_model = get(s, "gatewayz_cost_by_model_total{model=\"m-cost\"}")?;
        ((by_model - expected).abs() < 0.005).then_some(s.clone())
    });
    let by_provider = get(&cost, "gatewayz_cost_by_provider_total{provider=\"p\"}").unwrap();
    assert!(
        (by_provider - expected).abs() < 0.005,
        "{by_provider} vs {expected}"
    );
    let tokens = |t| {
        get(
            &cost,
            &format!(
                "gatewayz_tokens_total{{api=\"chat\",model=\"m-cost\",provider=\"p\",type=\"{t}\"}}"
            ),
        )
    };
    assert_eq!(
        (tokens("input"), tokens("output")),
        (Some(input), Some(output))
    );

    // The eight seed metrics, with their labels: canonical names, and the seed's own name for
    // the two it did not prefix.
    let s = until(&gw, WAIT, "uptime and efficiency published", |s| {
        get(s, "gatewayz_model_uptime_24h{model=\"m-cost\"}").map(|_| s.clone())
    });
    for key in [
        "gatewayz_provider_health_score{provider=\"p\"}",
        "gatewayz_model_uptime_24h{model=\"m-cost\"}",
        "gatewayz_cost_by_provider_total{provider=\"p\"}",
        "gatewayz_token_efficiency{model=\"m-cost\"}",
        "gatewayz_circuit_breaker_state{provider=\"p\",state=\"closed\"}",
        "gatewayz_detected_anomalies_total{type=\"latency_spike\"}",
        "gatewayz_provider_response_time_seconds_count{provider=\"p\"}",
        "gatewayz_trial_active",
        "provider_response_time_seconds_count{provider=\"p\"}",
        "trial_active",
    ] {
        assert!(s.contains_key(key), "{key} missing");
    }
    assert_eq!(get(&s, "gatewayz_trial_active"), Some(1.0));
    assert_eq!(
        get(&s, "gatewayz_token_efficiency{model=\"m-cost\"}"),
        Some(output / input)
    );

    // A client inventing model names gets 404s and adds no series.
    let invent = |i: usize| {
        let (status, body) = chat(&gw, &format!("invented-{i}"), "x");
        assert_eq!(status, 404, "{body}");
    };
    invent(0);
    let before: Vec<String> = scrape(&gw).into_keys().collect();
    for i in 1..=1000 {
        invent(i);
    }
    let after: Vec<String> = scrape(&gw).into_keys().collect();
    assert_eq!(before, after, "invented model names added series");

    let report = promtool_check(&text(&gw));
    assert!(report.trim().is_empty(), "promtool check metrics: {report}");
}

#[test]
fn a_latency_spike_is_exactly_one_anomaly() {
    let upstream = mock_upstream(&[]);
    let config = format!(
        "[anomaly]\nwarmup = 10\nz_threshold = 4.0\nlatency_floor = \"250ms\"\ninterval = \"1h\"\n\
         {}{TEAM_AND_TRIAL_KEYS}[models.m]\nproviders = [\"p\"]\n",
        openai_provider("p", &upstream, ""),
    );
    let gw = gateway(&config);
    let spikes = |s: &common::scrape::Series| {
        get(
            s,
            "gatewayz_detected_anomalies_total{type=\"latency_spike\"}",
        )
    };
    for i in 0..30 {
        assert_eq!(chat(&gw, "m", &format!("calm {i}")).0, 200);
    }
    assert_eq!(spikes(&scrape(&gw)), Some(0.0));
    control(&upstream, serde_json::json!({"latency": "800ms"}));
    for i in 0..5 {
        assert_eq!(chat(&gw, "m", &format!("slow {i}")).0, 200);
    }
    control(&upstream, serde_json::json!({"latency": "0ms"}));
    for i in 0..10 {
        assert_eq!(chat(&gw, "m", &format!("calm again {i}")).0, 200);
    }
    // The attempts are all recorded once the response-time count reaches 45.
    until(&gw, WAIT, "45 attempts seen", |s| {
        (get(
            s,
            "gatewayz_provider_response_time_seconds_count{provider=\"p\"}",
        )? == 45.0)
            .then_some(())
    });
    let anomalies: Value = until(&gw, WAIT, "the anomaly list", |_| {
        let v = common::get_json(&gw, "/health/anomalies");
        (!v["anomalies"].as_array()?.is_empty()).then_some(v)
    });
    assert_eq!(spikes(&scrape(&gw)), Some(1.0), "{anomalies}");
    let list = anomalies["anomalies"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{anomalies}");
    assert_eq!(list[0]["type"], "latency_spike");
    assert_eq!(list[0]["provider"], "p");
    assert!(gw.log_text().contains("anomaly detected"));
}
