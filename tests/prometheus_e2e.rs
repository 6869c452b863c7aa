//! End to end against a real Prometheus (Debian's `prometheus` package): it scrapes a real
//! gateway with the shipped scrape configuration (`docs/prometheus.yml`, one job per
//! category) plus a decoy job, `other-service`, standing for another service of a shared
//! Prometheus (the generic `http_*` and `process_*` names, the seed's historical aliases of
//! the gateway's `gatewayz_http_*` and `gatewayz_process_*` families, under another job); it
//! loads the shipped alert rules rendered by `alerts/render.py` for a job regex with an
//! escape (the shipped file is the default rendering: tests/dashboards.rs); traffic goes
//! through mock-upstream providers (one healthy, one failing).
//!
//! Then each dashboard's variables are resolved the way Grafana does, through Prometheus's
//! label values API (`$job` must list the five gateway jobs and not the decoy), and every
//! panel's PromQL runs through the query API with them set. None may error, none may return
//! a series of the decoy job, and every panel of the providers, models and business
//! dashboards must return data. The rules must evaluate, and the SLO recording rule must
//! record the gateway's job alone.

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

/// The job regex the rules are rendered with: the five category jobs, not the decoy, with an
/// escape that `alerts/render.py` must carry into the PromQL string.
const RULE_JOB: &str = r"gatewayz-\w+";
/// Another service's job in the same Prometheus.
const DECOY_JOB: &str = "other-service";

/// The shipped rules rendered for [`RULE_JOB`], written to `dir`.
fn rendered_rules(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("gatewayz.rules.yml");
    common::run_tool(
        Command::new("python3")
            .arg(root().join("alerts/render.py"))
            .args(["--job", RULE_JOB, "--output"])
            .arg(&path),
    );
    // Prometheus would refuse to start on a broken file without saying why here.
    common::run_tool(Command::new("promtool").args(["check", "rules"]).arg(&path));
    path
}

/// The shipped scrape config, pointed at `target`, scraping every second, with `rules`, and
/// the decoy job: the gateway's generic historical aliases under another job name.
fn scrape_config(target: &str, token: &str, rules: &std::path::Path) -> String {
    let text = std::fs::read_to_string(root().join("docs/prometheus.yml")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["global"]["scrape_interval"] = "1s".into();
    doc["global"]["evaluation_interval"] = "1s".into();
    doc["rule_files"] =
        serde_yaml::Value::Sequence(vec![rules.to_string_lossy().into_owned().into()]);
    let decoy: serde_yaml::Value = serde_yaml::from_str(&format!(
        r#"
job_name: {DECOY_JOB}
metrics_path: /metrics
static_configs: [{{ targets: ["placeholder"] }}]
metric_relabel_configs:
  - source_labels: [__name__]
    regex: "http_.+|process_.+"
    action: keep
"#
    ))
    .unwrap();
    doc["scrape_configs"].as_sequence_mut().unwrap().push(decoy);
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

/// `GET /api/v1/label/LABEL/values?match[]=SELECTOR`: what Grafana's `label_values`
/// variable query asks.
fn label_values(prometheus: &Prometheus, selector: &str, label: &str) -> Vec<String> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/label/{label}/values", prometheus.url),
        &[("match[]", selector)],
    )
    .unwrap();
    let answer: Value = common::client().get(url).send().unwrap().json().unwrap();
    assert_eq!(answer["status"], "success", "{selector}: {answer}");
    let values = answer["data"].as_array().unwrap();
    values
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Several values of a multi-value variable, as Grafana writes them into a PromQL regex
/// matcher: each regex-escaped (a backslash, doubled for the PromQL string), `(a|b)`.
fn grafana_regex(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| match c {
                    '\\' => vec!['\\'; 4],
                    c if "$^*{}[]'+?.()|".contains(c) => vec!['\\', '\\', c],
                    c => vec![c],
                })
                .collect()
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// Grafana's built-in variables, and the dashboard's as `values` has them.
fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let mut out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m");
    for (name, value) in values {
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// Resolves a dashboard's query variables in order, as Grafana does: each `label_values`
/// query runs with the variables before it set. `$job` and `$instance` become the list of
/// what was found (what Grafana sends for `$job`'s "All", and for instances picked one by
/// one), the others their "All" value. Fails on a variable that finds nothing.
fn resolve_variables(prometheus: &Prometheus, file: &str, board: &Value) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = Vec::new();
    for var in board["templating"]["list"].as_array().unwrap() {
        let Some(query) = var["definition"].as_str() else {
            continue;
        };
        let name = var["name"].as_str().unwrap();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap();
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let selector = substitute(selector.trim(), &values);
        let found = label_values(prometheus, &selector, label.trim());
        assert!(
            !found.is_empty(),
            "{file}: variable {name} finds nothing ({selector})"
        );
        if name == "job" {
            let gateway_jobs = [
                "gatewayz-business",
                "gatewayz-models",
                "gatewayz-performance",
                "gatewayz-providers",
                "gatewayz-system",
            ];
            assert_eq!(
                found, gateway_jobs,
                "{file}: $job lists other jobs or misses one"
            );
        }
        let value = match name {
            "job" | "instance" => grafana_regex(&found),
            _ => var["allValue"].as_str().unwrap().to_owned(),
        };
        values.push((name.to_owned(), value));
    }
    values
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

[models.broken]
providers = ["bad"]
{keys}"#,
        keys = KEYS,
        good_provider = common::openai_provider("good", &good, ""),
        bad_provider = common::openai_provider("bad", &bad, ""),
    );
    let gateway = common::gateway(&config);
    let rules_dir = tempfile::tempdir().unwrap();
    let prometheus = start_prometheus(&scrape_config(
        &gateway.addr.to_string(),
        "scrape-token-123",
        &rendered_rules(rules_dir.path()),
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
    // A 5xx, for the SLO recording rules.
    let failed = common::chat_request(
        &client,
        gateway.addr,
        common::chat_body("broken", "x", false),
    )
    .bearer_auth(common::TEAM_KEY)
    .send()
    .unwrap();
    assert!(failed.status().is_server_error(), "{}", failed.status());

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
    assert_eq!(
        jobs.len(),
        6,
        "one target per category job, and the decoy: {up}"
    );
    for job in jobs {
        assert_eq!(job["value"][1], "1", "scrape failing: {job}");
    }

    let mut failures = Vec::new();
    let mut checked = 0;
    for file in ["overview", "providers", "models", "business", "logs-traces"] {
        let path = root().join(format!("grafana/dashboards/{file}.json"));
        let board: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let values = resolve_variables(&prometheus, file, &board);
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                if target["datasource"]["type"] != "prometheus" {
                    continue;
                }
                let promql = substitute(target["expr"].as_str().unwrap(), &values);
                let answer = query(&prometheus, &promql);
                checked += 1;
                let title = panel["title"].as_str().unwrap_or("?");
                let result = answer["data"]["result"].as_array();
                if answer["status"] != "success" {
                    failures.push(format!("{file} / {title}: error {answer} for {promql}"));
                } else if result
                    .into_iter()
                    .flatten()
                    .any(|r| r["metric"]["job"] == DECOY_JOB)
                {
                    failures.push(format!(
                        "{file} / {title}: the decoy job's series in {promql}"
                    ));
                } else if file != "overview" && result.is_none_or(|r| r.is_empty()) {
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
    // The SLO ratio is recorded for the gateway's job only: the decoy job has the same
    // samples under the seed's name http_requests_total, which the rules do not read.
    common::wait_until(
        Duration::from_secs(60),
        "the SLO ratio to be recorded",
        || {
            let recorded = query(&prometheus, "gatewayz:chat_errors:ratio_rate5m");
            let series = recorded["data"]["result"].as_array().unwrap();
            assert!(
                series
                    .iter()
                    .all(|s| s["metric"]["job"] == "gatewayz-system"),
                "{recorded}"
            );
            !series.is_empty()
        },
    );
}
