//! The deployment files, checked against the code and against each other by reading them: no
//! container starts, no cluster is needed. `deploy/compose.yaml` names only services that
//! exist and listen where they are dialled (every host:port of the Grafana datasources, the
//! Prometheus, Loki and Tempo configs and the gateway config), mounts only files the
//! repository holds, and gives the replicas an environment under which `deploy/gatewayz.toml`
//! validates; the `Dockerfile` builds the binary compose and the chart run; the Helm chart
//! defines every value its templates read, carries a valid config whose shutdown budget fits
//! the pods' grace period, and holds byte-for-byte copies of `alerts/` and
//! `grafana/dashboards/`. Every scrape, probe and health-check path is a route of
//! [`gatewayz::http::PATTERNS`]; every dashboard and datasource uid a dashboard or the
//! provisioning refers to exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "deploy/compose.rs"]
mod compose;
#[path = "deploy/grafana.rs"]
mod grafana;
#[path = "deploy/helm.rs"]
mod helm;
#[path = "deploy/image.rs"]
mod image;

use std::collections::BTreeSet;
use std::path::PathBuf;

use gatewayz::config::Category;
use serde_yaml::Value;

use compose::{compose, gateway_services, services};
use helm::values;
use image::{dockerfile, instruction};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A YAML file with its merge keys (`<<: *anchor`, nested too) applied, as compose applies them.
fn yaml(rel: &str) -> Value {
    let mut doc: Value =
        serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"));
    merge(&mut doc);
    doc
}

fn merge(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            // A merged mapping may bring its own `<<`: keep merging until none is left.
            while let Some(merged) = map.remove("<<") {
                let Value::Mapping(merged) = merged else {
                    panic!("<< merges a mapping, not {merged:?}")
                };
                for (k, v) in merged {
                    map.entry(k).or_insert(v);
                }
            }
            map.values_mut().for_each(merge);
        }
        Value::Sequence(items) => items.iter_mut().for_each(merge),
        _ => {}
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(text).collect())
        .unwrap_or_default()
}

/// Files of `dir` (relative to the root) whose name ends with `ext`, sorted.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(ext))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// URLs and routes

/// `(host, port)` of a URL or a bare `host:port`; the port must be written or known.
fn host_port(address: &str) -> (String, u16) {
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("tcp://{address}")
    };
    let parsed = reqwest::Url::parse(&url).unwrap_or_else(|e| panic!("{address:?}: {e}"));
    let host = parsed
        .host_str()
        .unwrap_or_else(|| panic!("{address:?}: no host"));
    let port = parsed
        .port_or_known_default()
        .unwrap_or_else(|| panic!("{address:?}: write the port"));
    (host.to_owned(), port)
}

fn url_path(address: &str) -> String {
    reqwest::Url::parse(address).unwrap().path().to_owned()
}

/// Whether `path` is served by the gateway: it matches a pattern of `PATTERNS` as actix-web
/// matches it, and a category endpoint names a real category.
fn is_route(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    gatewayz::http::PATTERNS.iter().any(|pattern| {
        let want: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
        let mut i = 0;
        for (j, w) in want.iter().enumerate() {
            if w.starts_with('{') && w.ends_with(":.*}") {
                return segments.len() >= j;
            }
            let Some(seg) = segments.get(i) else {
                return false;
            };
            let ok = if w.starts_with('{') {
                !seg.is_empty() && (*pattern != "/prometheus/metrics/{name}" || is_category(seg))
            } else {
                w == seg
            };
            if !ok {
                return false;
            }
            i += 1;
        }
        i == segments.len()
    })
}

/// A Prometheus-text category endpoint: `all` or one of the catalogue's categories.
fn is_category(name: &str) -> bool {
    name == "all" || Category::ALL.iter().any(|c| c.as_str() == name)
}

#[test]
fn the_route_matcher_refuses_what_the_gateway_does_not_serve() {
    for good in [
        "/health",
        "/health/ready",
        "/metrics",
        "/prometheus/metrics/system",
    ] {
        assert!(is_route(good), "{good}");
    }
    for bad in [
        "/healthz",
        "/health/readyz",
        "/prometheus/metrics/nope",
        "/metrics/x",
        "/",
    ] {
        assert!(!is_route(bad), "{bad}");
    }
}

#[test]
fn scrapes_probes_and_health_checks_hit_real_routes() {
    let services = services(&compose());
    let gateways: BTreeSet<_> = gateway_services(&services)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut paths: Vec<(String, String)> = Vec::new();
    for file in ["deploy/prometheus/prometheus.yml", "docs/prometheus.yml"] {
        let mut gateway_jobs = 0;
        for job in yaml(file)["scrape_configs"].as_sequence().unwrap() {
            let targets: Vec<String> = job["static_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|sc| strings(&sc["targets"]))
                .collect();
            let host = |t: &String| host_port(t).0;
            if targets
                .iter()
                .any(|t| gateways.contains(&host(t)) || host(t) == "gatewayz")
            {
                gateway_jobs += 1;
                let path = job["metrics_path"].as_str().unwrap_or("/metrics");
                paths.push((
                    format!("{file} job {}", text(&job["job_name"])),
                    path.into(),
                ));
                let name = text(&job["job_name"]);
                assert!(
                    name.starts_with("gatewayz"),
                    "{file}: the rules match job=~\"gatewayz.*\""
                );
            }
        }
        assert!(gateway_jobs > 0, "{file} scrapes no gateway");
    }
    let health = instruction(&dockerfile(), "HEALTHCHECK");
    let url = health
        .iter()
        .find(|a| a.starts_with("http"))
        .expect("HEALTHCHECK URL");
    paths.push(("Dockerfile HEALTHCHECK".into(), url_path(url)));

    // The probe each path follows: readiness on /health/ready, liveness on /health.
    let deployment = read("deploy/helm/gatewayz/templates/deployment.yaml");
    let lines: Vec<&str> = deployment.lines().map(str::trim).collect();
    for (probe, want) in [
        ("readinessProbe:", "/health/ready"),
        ("livenessProbe:", "/health"),
    ] {
        let at = lines.iter().position(|l| *l == probe).expect(probe);
        let path = lines[at..]
            .iter()
            .find_map(|l| l.strip_prefix("path: "))
            .expect("an httpGet path");
        assert_eq!(path, want, "deployment.yaml {probe}");
        paths.push((format!("helm deployment {probe}"), path.to_owned()));
    }
    for category in values()["metrics"]["categories"].as_sequence().unwrap() {
        let path = format!("/prometheus/metrics/{}", text(&category["name"]));
        paths.push(("helm values metrics.categories".into(), path));
    }
    let helpers = read("deploy/helm/gatewayz/templates/_helpers.tpl");
    assert!(
        helpers.contains("path: /prometheus/metrics/{{ .name }}"),
        "_helpers.tpl scrape path"
    );
    for (who, path) in paths {
        assert!(
            is_route(&path),
            "{who}: {path} is not a route of gatewayz::http::PATTERNS"
        );
    }
}
