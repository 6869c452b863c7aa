//! End to end against a real Prometheus (Debian's `prometheus` package): it scrapes a real
//! gateway with the shipped scrape configuration (`docs/prometheus.yml`, one job per
//! category) and loads the shipped alert rules; traffic goes through mock-upstream providers
//! (one healthy, one failing); then every dashboard panel's PromQL runs through Prometheus's
//! HTTP API. None may error, and every panel of the providers, models and business
//! dashboards must return data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped scrape config, pointed at `target`, scraping every second.
fn scrape_config(target: &str, token: &str) -> String {
    let text = std::fs::read_to_string(root().join("docs/prometheus.yml")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["global"]["scrape_interval"] = "1s".into();
    doc["global"]["evaluation_interval"] = "1s".into();
    doc["rule_files"] = serde_yaml::Value::Sequence(vec![root()
        .join("alerts/gatewayz.rules.yml")
        .to_string_lossy()
        .into_owned()
        .into()]);
    for job in doc["scrape_configs"].as_sequence_mut().unwrap() {
        job["scrape_interval"] = "1s".into();
        job["static_configs"][0]["targets"] = serde_yaml::Value::Sequence(vec![target.into()]);
        let mut auth = serde_yaml::Mapping::new();
        auth.insert("credentials".into(), token.into());
        job["authorization"] = serde_yaml::Value::Mapping(auth);
    }
    serde_yaml::to_string(&doc).unwrap()
}

fn start_prometheus(config: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = common::free_addr().port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the `prometheus` server is needed: run ./scripts/test, which installs it");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    common::wait_until(Duration::from_secs(30), "Prometheus to be ready", || {
        common::client()
            .get(format!("{}/-/ready", prometheus.url))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    prometheus
}

fn query(prometheus: &Prometheus, promql: &str) -> Value {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", prometheus.url),
        &[("query", promql)],
    )
    .unwrap();
    common::client().get(url).send().unwrap().json().unwrap()
}

/// `GET /api/v1/rules`
fn rules(prometheus: &Prometheus) -> Value {
    common::client()
        .get(format!("{}/api/v1/rules", prometheus.url))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Grafana's variables, replaced the way the dashboards' "All" selection does.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$provider", ".*")
        .replace("$model", ".*")
        .replace("$api", ".*")
}

/// The team and trial keys, with budgets whose soft limit the traffic crosses (the budget
/// panels), and a key limited to one model (a refusal for the refusals panel).
const KEYS: &str = r#"
[teams.research]
budget_usd = 1000.0
soft_budget_usd = 0.000001

[[keys]]
name = "team"
key = "team-key-123456"
team = "research"
budget_usd = 1000.0
soft_budget_usd = 0.000001

[[keys]]
name = "trial"
key = "trial-key-123456"
team = "research"
trial_expires = "2099-01-01T00:00:00Z"

[[keys]]
name = "narrow"
key = "narrow-key-123456"
team = "research"
models = ["steady"]
"#;

#[test]
fn every_dashboard_query_runs_against_a_real_prometheus() {
    let good = common::mock_upstream(&["--latency", "2ms", "--chunk-delay", "1ms"]);
    let bad = common::failing_upstream("status");
    let config = format!(
        r#"
[metrics]
tokens = [{{ token = "scrape-token-123", categories = ["all"] }}]

{good_provider}
{bad_provider}
[models.fragile]
providers = ["bad", "good"]
input_price_per_1m = 3.0
output_price_per_1m = 15.0

[models.steady]
providers = ["good"]
input_price_per_1m = 0.5
output_price_per_1m = 1.5
{keys}"#,
        keys = KEYS,
        good_provider = common::openai_provider("good", &good, ""),
        bad_provider = common::openai_provider("bad", &bad, ""),
    );
    let gateway = common::gateway(&config);
    let prometheus = start_prometheus(&scrape_config(
        &gateway.addr.to_string(),
        "scrape-token-123",
    ));

    // Traffic: JSON and streamed, on a model whose first provider fails (failovers, breaker)
    // and on a healthy one; plus a client error.
    let client = common::client();
    for i in 0..12 {
        for model in ["fragile", "steady"] {
            let body = common::chat_body(model, &format!("question {i} about metrics"), i % 3 == 0);
            let reply = common::chat_request(&client, gateway.addr, body)
                .bearer_auth(common::TEAM_KEY)
                .send()
                .unwrap();
            assert_eq!(reply.status(), 200, "{model}: {}", reply.text().unwrap());
            let _ = reply.bytes().unwrap();
        }
    }
    let missing = common::chat_request(
        &client,
        gateway.addr,
        common::chat_body("no-such-model", "x", false),
    )
    .bearer_auth(common::TEAM_KEY)
    .send()
    .unwrap();
    assert_eq!(missing.status(), 404);
    let refused = common::chat_request(
        &client,
        gateway.addr,
        common::chat_body("fragile", "x", false),
    )
    .bearer_auth("narrow-key-123456")
    .send()
    .unwrap();
    assert_eq!(refused.status(), 403);

    // Wait until Prometheus has scraped the final state at least twice per job.
    let tokens_now = || -> f64 {
        let text = client
            .get(gateway.url("/metrics"))
            .bearer_auth("scrape-token-123")
            .send()
            .unwrap()
            .text()
            .unwrap();
        common::scrape::sum(&common::scrape::parse(&text), "gatewayz_tokens_total{")
    };
    // The gateway's own figure is read again each round: the cost actor receives outcomes in
    // batches (the actors' outbox), so the counter can still move just after the traffic.
    common::wait_until(
        Duration::from_secs(60),
        "Prometheus to scrape the traffic",
        || {
            let expected = tokens_now();
            assert!(expected > 0.0);
            let v = query(&prometheus, "sum(gatewayz_tokens_total)");
            let scraped = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            let samples = query(&prometheus, "min(count_over_time(up[1m]))");
            let enough = samples["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|n| n >= 4.0);
            scraped == Some(expected) && enough
        },
    );
    let up = query(&prometheus, "up");
    let jobs = up["data"]["result"].as_array().unwrap();
    assert_eq!(jobs.len(), 5, "one target per category job: {up}");
    for job in jobs {
        assert_eq!(job["value"][1], "1", "scrape failing: {job}");
    }

    let mut failures = Vec::new();
    let mut checked = 0;
    for file in ["overview", "providers", "models", "business"] {
        let path = root().join(format!("grafana/dashboards/{file}.json"));
        let board: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                if target["datasource"]["uid"] != "prometheus" {
                    continue;
                }
                let promql = substitute(target["expr"].as_str().unwrap());
                let answer = query(&prometheus, &promql);
                checked += 1;
                let title = panel["title"].as_str().unwrap_or("?");
                if answer["status"] != "success" {
                    failures.push(format!("{file} / {title}: error {answer} for {promql}"));
                } else if file != "overview"
                    && answer["data"]["result"]
                        .as_array()
                        .is_none_or(|r| r.is_empty())
                {
                    failures.push(format!("{file} / {title}: no data for {promql}"));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} queries found");
    assert!(
        failures.is_empty(),
        "panels failing:\n{}",
        failures.join("\n")
    );

    // The shipped rules loaded and evaluate without errors.
    let loaded = rules(&prometheus);
    let groups = loaded["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{loaded}");
    common::wait_until(
        Duration::from_secs(30),
        "every rule to be evaluated",
        || {
            rules(&prometheus)["data"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .all(|r| r["health"] == "ok")
        },
    );
}
