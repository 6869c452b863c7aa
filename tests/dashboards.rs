//! The contract between the metric catalogue and what ships with it: every metric and label
//! that a Grafana dashboard or a Prometheus rule names exists in the catalogue the code
//! registers; every dashboard parses, has unique panel ids, uses only the three datasource
//! uids and defines every template variable it uses; every LogQL query parses with Grafana's
//! LogQL grammar; and the committed dashboards are what `grafana/generate.py` generates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gatewayz::telemetry::metrics::catalogue::{Family, Kind, FAMILIES};
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::Value;

const DATASOURCES: [&str; 3] = ["prometheus", "loki", "tempo"];
/// Grafana's built-in variables, with the value a query is checked with.
const BUILTINS: [(&str, &str); 5] = [
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__auto", "1m"),
    ("__range", "1h"),
    ("__range_s", "3600"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let board: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                board,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 5,
        "expected the five dashboards, found {}",
        out.len()
    );
    out
}

/// Rule files: `(source, expr)` of every rule, and the names recording rules define.
fn rules() -> (Vec<(String, String)>, HashSet<String>) {
    let mut exprs = Vec::new();
    let mut recorded = HashSet::new();
    for entry in std::fs::read_dir(root().join("alerts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let name = rule["alert"]
                    .as_str()
                    .or_else(|| rule["record"].as_str())
                    .unwrap()
                    .to_owned();
                if let Some(record) = rule["record"].as_str() {
                    recorded.insert(record.to_owned());
                }
                exprs.push((name, rule["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    assert!(!exprs.is_empty(), "no rules found in alerts/");
    (exprs, recorded)
}

/// Grafana variables in a query: `$name`, `${name}`, `[[name]]`.
fn variables(query: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let rest = &query[i + 1..];
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        i += 1;
    }
    out
}

/// The query with Grafana's variables replaced by values Prometheus or Loki accept.
fn substitute(query: &str) -> String {
    let mut out = query.to_owned();
    for (name, value) in BUILTINS {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    for name in ["provider", "model", "level"] {
        out = out
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    out
}

/// Finds the family a series name belongs to, and the labels it may carry.
fn family_of(name: &str) -> Option<(&'static Family, BTreeSet<String>)> {
    let labels = |f: &Family| {
        f.labels
            .iter()
            .map(|l| l.to_string())
            .collect::<BTreeSet<_>>()
    };
    if let Some(f) = FAMILIES.iter().find(|f| f.name == name) {
        return Some((f, labels(f)));
    }
    for (suffix, extra) in [("_bucket", Some("le")), ("_sum", None), ("_count", None)] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(f) = FAMILIES
                .iter()
                .find(|f| f.name == base && f.kind == Kind::Histogram)
            {
                let mut l = labels(f);
                l.extend(extra.map(str::to_owned));
                return Some((f, l));
            }
        }
    }
    None
}

/// Labels Prometheus itself adds at scrape time.
fn target_labels() -> BTreeSet<String> {
    ["job", "instance"].iter().map(|s| s.to_string()).collect()
}

/// Walks a PromQL expression, checking every selector against the catalogue. Returns the
/// labels the result may carry (`None`: unknown, e.g. a recording rule).
fn walk(
    expr: &Expr,
    recorded: &HashSet<String>,
    errors: &mut Vec<String>,
) -> Option<BTreeSet<String>> {
    match expr {
        Expr::VectorSelector(vs) => {
            let name = vs.name.clone().or_else(|| {
                vs.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
                    .map(|m| m.value.clone())
            });
            let Some(name) = name else {
                errors.push("a selector without a metric name".into());
                return None;
            };
            let labels = if recorded.contains(&name) {
                return None;
            } else if name == "up" {
                BTreeSet::new()
            } else if let Some((_, labels)) = family_of(&name) {
                labels
            } else {
                errors.push(format!("metric {name} is not in the catalogue"));
                return None;
            };
            let mut labels = labels;
            labels.extend(target_labels());
            for m in &vs.matchers.matchers {
                if m.name != "__name__" && !labels.contains(&m.name) {
                    errors.push(format!("{name} has no label {:?}", m.name));
                }
            }
            Some(labels)
        }
        Expr::MatrixSelector(ms) => walk(&Expr::VectorSelector(ms.vs.clone()), recorded, errors),
        Expr::Aggregate(agg) => {
            let inner = walk(&agg.expr, recorded, errors);
            if let Some(p) = &agg.param {
                walk(p, recorded, errors);
            }
            match (&agg.modifier, inner) {
                (Some(LabelModifier::Include(by)), inner) => {
                    if let Some(inner) = &inner {
                        for l in &by.labels {
                            if !inner.contains(l) {
                                errors.push(format!("`by ({l})` but no metric below has {l}"));
                            }
                        }
                    }
                    Some(by.labels.iter().cloned().collect())
                }
                (Some(LabelModifier::Exclude(without)), inner) => inner.map(|mut i| {
                    for l in &without.labels {
                        i.remove(l);
                    }
                    i
                }),
                (None, _) => Some(BTreeSet::new()),
            }
        }
        Expr::Binary(b) => {
            let lhs = walk(&b.lhs, recorded, errors);
            let rhs = walk(&b.rhs, recorded, errors);
            match (lhs, rhs) {
                (Some(mut l), Some(r)) => {
                    l.extend(r);
                    Some(l)
                }
                _ => None,
            }
        }
        Expr::Call(call) => {
            let mut out = Some(BTreeSet::new());
            for arg in &call.args.args {
                match (walk(arg, recorded, errors), &mut out) {
                    (Some(l), Some(o)) => o.extend(l),
                    (None, _) => out = None,
                    _ => {}
                }
            }
            if call.func.name == "histogram_quantile" {
                if let Some(o) = &mut out {
                    o.remove("le");
                }
            }
            out
        }
        Expr::Paren(p) => walk(&p.expr, recorded, errors),
        Expr::Unary(u) => walk(&u.expr, recorded, errors),
        Expr::Subquery(s) => walk(&s.expr, recorded, errors),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {
            Some(BTreeSet::new())
        }
    }
}

fn check_promql(source: &str, query: &str, recorded: &HashSet<String>) -> Vec<String> {
    let query = substitute(query);
    match parser::parse(&query) {
        Ok(expr) => {
            let mut errors = Vec::new();
            walk(&expr, recorded, &mut errors);
            errors
                .into_iter()
                .map(|e| format!("{source}: {e} in `{query}`"))
                .collect()
        }
        Err(e) => vec![format!("{source}: does not parse ({e}): `{query}`")],
    }
}

fn datasource_uid(v: &Value) -> Option<&str> {
    v.get("datasource")
        .and_then(|d| d.get("uid"))
        .and_then(Value::as_str)
}

#[test]
fn dashboards_use_only_catalogue_metrics_and_defined_variables() {
    let (_, recorded) = rules();
    let mut errors = Vec::new();
    for (file, board) in dashboards() {
        let defined: BTreeSet<String> = board["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .chain(BUILTINS.iter().map(|(n, _)| n.to_string()))
            .collect();
        for var in board["templating"]["list"].as_array().unwrap() {
            if let Some(uid) = datasource_uid(var) {
                if !DATASOURCES.contains(&uid) {
                    errors.push(format!("{file}: variable uses datasource {uid}"));
                }
            }
            if let Some(query) = var["definition"].as_str() {
                // label_values(metric, label)
                let inner = query
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("{file}: unexpected variable query {query}"));
                let (metric, label) = inner.split_once(',').unwrap();
                match family_of(metric.trim()) {
                    Some((_, labels)) if labels.contains(label.trim()) => {}
                    _ => errors.push(format!(
                        "{file}: variable query {query} names no catalogue label"
                    )),
                }
            }
        }
        let mut ids = HashSet::new();
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or("?");
            let id = panel["id"].as_u64().unwrap();
            if !ids.insert(id) {
                errors.push(format!("{file}: panel id {id} is used twice"));
            }
            for uid in std::iter::once(datasource_uid(panel))
                .chain(
                    panel["targets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(datasource_uid),
                )
                .flatten()
            {
                if !DATASOURCES.contains(&uid) {
                    errors.push(format!("{file}: panel {title:?} uses datasource {uid}"));
                }
            }
            for target in panel["targets"].as_array().unwrap() {
                let query = target["expr"]
                    .as_str()
                    .or_else(|| target["query"].as_str())
                    .unwrap();
                for var in variables(query) {
                    if !defined.contains(&var) {
                        errors.push(format!("{file}: panel {title:?} uses undefined ${var}"));
                    }
                }
                if datasource_uid(target) == Some("prometheus") {
                    errors.extend(check_promql(
                        &format!("{file}: {title:?}"),
                        query,
                        &recorded,
                    ));
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "dashboard contract broken:\n{}",
        errors.join("\n")
    );
}

#[test]
fn alert_rules_use_only_catalogue_metrics() {
    let (exprs, recorded) = rules();
    let errors: Vec<String> = exprs
        .iter()
        .flat_map(|(name, expr)| check_promql(name, expr, &recorded))
        .collect();
    assert!(
        errors.is_empty(),
        "rule contract broken:\n{}",
        errors.join("\n")
    );
}

/// The checker itself catches what it must: an unknown metric, an unknown label, a `by` on a
/// label no metric has, a syntax error.
#[test]
fn checker_catches_mistakes() {
    let none = HashSet::new();
    assert!(check_promql(
        "t",
        "sum by (provider) (rate(gatewayz_tokens_total[5m]))",
        &none
    )
    .is_empty());
    assert!(check_promql(
        "t",
        "histogram_quantile(0.9, sum by (le) (rate(gatewayz_overhead_seconds_bucket[5m])))",
        &none
    )
    .is_empty());
    for bad in [
        "rate(gatewayz_tokens[5m])",
        "gatewayz_provider_health_score{model=\"x\"}",
        "sum by (user) (rate(gatewayz_tokens_total[5m]))",
        "sum(rate(gatewayz_tokens_total[5m])",
        "gatewayz_overhead_seconds_bucket{provider=\"a\"}",
    ] {
        assert!(
            !check_promql("t", bad, &none).is_empty(),
            "not caught: {bad}"
        );
    }
}

#[test]
fn logql_queries_parse_with_grafanas_grammar() {
    let tools = root().join("tests/tools");
    assert!(
        tools.join("node_modules/@grafana/lezer-logql").exists(),
        "the LogQL grammar is not installed: run ./scripts/test (it runs `npm ci --prefix tests/tools`)"
    );
    let mut queries = Vec::new();
    for (_, board) in dashboards() {
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                if datasource_uid(target) == Some("loki") {
                    queries.push(substitute(target["expr"].as_str().unwrap()));
                }
            }
        }
    }
    assert!(
        queries.len() >= 3,
        "expected Loki panels, found {}",
        queries.len()
    );
    let run = |qs: &[String]| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("queries.json");
        std::fs::write(&file, serde_json::to_string(qs).unwrap()).unwrap();
        Command::new("node")
            .arg(tools.join("logql-check.mjs"))
            .arg(&file)
            .output()
            .expect("node is needed for the LogQL check")
    };
    let out = run(&queries);
    assert!(
        out.status.success(),
        "LogQL syntax errors:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And the checker rejects a broken query.
    let broken = run(&["{service=\"gatewayz\" |= ".to_string()]);
    assert!(!broken.status.success());
}

#[test]
fn committed_dashboards_are_generated() {
    let out = Command::new("python3")
        .arg(Path::new(&root()).join("grafana/generate.py"))
        .arg("--check")
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
