//! The contract between the metric catalogue and what ships with it: every metric and label
//! that a Grafana dashboard or a Prometheus rule names exists in the catalogue the code
//! registers; every dashboard parses, has unique panel ids and defines every template
//! variable it uses; every LogQL query parses with Grafana's LogQL grammar; and the committed
//! dashboards are what `grafana/generate.py` generates.
//!
//! And the contract that makes them portable to a shared Grafana and Prometheus: no
//! datasource is named by a fixed uid (each is a datasource variable, defaulting to the uid
//! the shipped provisioning declares); every PromQL selector of a dashboard carries
//! `job=~"$job",instance=~"$instance"`, every selector of a rule `job=~"gatewayz.*"`, also in
//! a copy rendered by `alerts/render.py` for other job names and runbook base.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gatewayz::telemetry::metrics::catalogue::{Category, Family, Kind, FAMILIES};
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::Value;

/// The datasource types the dashboards use, and the variable that chooses each.
const DATASOURCE_VARIABLES: [(&str, &str); 3] = [
    ("prometheus", "datasource"),
    ("loki", "loki_datasource"),
    ("tempo", "tempo_datasource"),
];
/// The matchers every dashboard selector carries, in the order the variables depend on each
/// other (`$instance` lists the instances of the chosen jobs).
const DASHBOARD_SCOPE: [(&str, &str); 2] = [("job", "$job"), ("instance", "$instance")];
/// The matcher every rule selector carries (what `alerts/render.py` replaces).
const RULE_SCOPE: [(&str, &str); 1] = [("job", "gatewayz.*")];
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

/// `(alert, runbook_url)` of every alert of a rule file.
fn runbooks(path: &Path) -> Vec<(String, String)> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            if let Some(alert) = rule["alert"].as_str() {
                let url = rule["annotations"]["runbook_url"].as_str();
                out.push((alert.to_owned(), url.unwrap_or("").to_owned()));
            }
        }
    }
    out
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

/// The query with Grafana's built-in variables (durations) replaced; the dashboard's own
/// stay as they are, inside PromQL strings.
fn substitute_builtins(query: &str) -> String {
    let mut out = query.to_owned();
    for (name, value) in BUILTINS {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// The query with Grafana's variables replaced by values Prometheus or Loki accept.
fn substitute(query: &str) -> String {
    let mut out = substitute_builtins(query);
    for name in [
        "provider", "model", "level", "job", "instance", "api", "service",
    ] {
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

/// The canonical series name of a series of a historical alias (`http_requests_total` →
/// `gatewayz_http_requests_total`, a histogram's `_bucket` / `_sum` / `_count` too).
fn canonical_of_alias(name: &str) -> Option<String> {
    FAMILIES.iter().find_map(|f| {
        let alias = f.legacy?;
        let rest = name.strip_prefix(alias)?;
        let suffixes: &[&str] = match f.kind {
            Kind::Histogram => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        suffixes
            .contains(&rest)
            .then(|| format!("{}{rest}", f.name))
    })
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
            } else if let Some(canonical) = canonical_of_alias(&name) {
                errors.push(format!("{name} is a historical alias: use {canonical}"));
                return None;
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

/// Every vector selector of an expression (a matrix selector's and a subquery's included).
fn selectors(expr: &Expr, out: &mut Vec<VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs.clone()),
        Expr::MatrixSelector(ms) => out.push(ms.vs.clone()),
        Expr::Aggregate(agg) => {
            selectors(&agg.expr, out);
            if let Some(p) = &agg.param {
                selectors(p, out);
            }
        }
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Call(call) => call.args.args.iter().for_each(|a| selectors(a, out)),
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The selectors of `query` lacking one of the regex matchers `scope` (`name=~"value"`),
/// each with what it lacks; or why the query does not parse.
fn unscoped(query: &str, scope: &[(&str, &str)]) -> Result<Vec<String>, String> {
    let expr = parser::parse(&substitute_builtins(query))?;
    let mut found = Vec::new();
    selectors(&expr, &mut found);
    Ok(found
        .iter()
        .filter_map(|vs| {
            let missing: Vec<String> = scope
                .iter()
                .filter(|(name, value)| {
                    !vs.matchers.matchers.iter().any(|m| {
                        m.name == *name && matches!(m.op, MatchOp::Re(_)) && m.value == *value
                    })
                })
                .map(|(name, value)| format!("{name}=~{value:?}"))
                .collect();
            (!missing.is_empty()).then(|| format!("`{vs}` lacks {}", missing.join(", ")))
        })
        .collect())
}

/// `label_values(SELECTOR, label)` of a query variable.
fn label_values(query: &str) -> Option<(&str, &str)> {
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

/// A variable's `label_values` selector: a catalogue metric that has `label`, or (the job
/// variable) a `__name__` regex matching only gateway families, at least one per category, so
/// a job scraping any one category is listed and another service's job is not.
fn check_variable_selector(selector: &str, label: &str) -> Vec<String> {
    let Ok(Expr::VectorSelector(vs)) = parser::parse(&substitute_builtins(selector)) else {
        return vec![format!("{selector} is not a series selector")];
    };
    if let Some(name) = &vs.name {
        return match family_of(name) {
            Some((_, mut labels)) => {
                labels.extend(target_labels());
                if labels.contains(label) {
                    vec![]
                } else {
                    vec![format!("{name} has no label {label}")]
                }
            }
            None => vec![format!("metric {name} is not in the catalogue")],
        };
    }
    let Some(names) = vs
        .matchers
        .matchers
        .iter()
        .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Re(_)))
    else {
        return vec![format!("{selector} names no metric")];
    };
    let mut errors = Vec::new();
    if !target_labels().contains(label) {
        errors.push(format!("{label} is not a target label"));
    }
    let series = |f: &Family| match f.kind {
        Kind::Histogram => vec![format!("{}_bucket", f.name), format!("{}_count", f.name)],
        _ => vec![f.name.to_owned()],
    };
    for category in Category::ALL {
        if !FAMILIES
            .iter()
            .filter(|f| f.categories.contains(&category))
            .any(|f| series(f).iter().any(|s| names.is_match(s)))
        {
            errors.push(format!(
                "{selector} matches no family of the {} category",
                category.as_str()
            ));
        }
    }
    for family in FAMILIES {
        if let Some(alias) = family.legacy {
            let alias = Family {
                name: alias,
                ..*family
            };
            if series(&alias).iter().any(|s| names.is_match(s)) {
                errors.push(format!(
                    "{selector} matches {}, a historical alias (other services export the \
                     generic http_* and process_* names too)",
                    alias.name
                ));
            }
        }
    }
    errors
}

fn is_prometheus(v: &Value) -> bool {
    v["datasource"]["type"] == "prometheus"
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
            if let Some(query) = var["definition"].as_str() {
                let (selector, label) = label_values(query)
                    .unwrap_or_else(|| panic!("{file}: unexpected variable query {query}"));
                errors.extend(
                    check_variable_selector(selector, label)
                        .into_iter()
                        .map(|e| format!("{file}: variable {}: {e}", var["name"])),
                );
            }
        }
        let mut ids = HashSet::new();
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or("?");
            let id = panel["id"].as_u64().unwrap();
            if !ids.insert(id) {
                errors.push(format!("{file}: panel id {id} is used twice"));
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
                if is_prometheus(target) {
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
/// label no metric has, a syntax error, a historical alias instead of the canonical name.
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
        "sum(rate(http_requests_total[5m]))",
        "rate(provider_response_time_seconds_bucket[5m])",
    ] {
        assert!(
            !check_promql("t", bad, &none).is_empty(),
            "not caught: {bad}"
        );
    }
}

/// Every object under `v` that names a datasource, with where it is.
fn datasource_refs<'a>(v: &'a Value, at: &str, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            let here = match map.get("title").and_then(Value::as_str) {
                Some(title) => format!("panel {title:?}"),
                None => match map.get("name").and_then(Value::as_str) {
                    Some(name) => format!("variable {name}"),
                    None => at.to_owned(),
                },
            };
            for (key, value) in map {
                if key == "datasource" {
                    out.push((here.clone(), value));
                } else {
                    datasource_refs(value, &here, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| datasource_refs(i, at, out)),
        _ => {}
    }
}

/// The uid grafana/provisioning declares for each datasource type.
fn provisioned_uids() -> Vec<(String, String)> {
    let path = root().join("grafana/provisioning/datasources/gatewayz.yml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| {
            let field = |k: &str| d[k].as_str().unwrap().to_owned();
            (field("type"), field("uid"))
        })
        .collect()
}

/// Imported into any Grafana, a dashboard queries the datasources its variables choose: no
/// panel, target or variable names a fixed uid, each reference is `${variable}` of a
/// datasource variable of the same type, and each variable defaults to the uid the shipped
/// provisioning declares (so it works out of the box there).
#[test]
fn every_datasource_is_a_variable() {
    let provisioned = provisioned_uids();
    let mut errors = Vec::new();
    for (file, board) in dashboards() {
        let vars = board["templating"]["list"].as_array().unwrap();
        let datasource_var = |name: &str| {
            vars.iter()
                .find(|v| v["type"] == "datasource" && v["name"] == name)
        };
        let mut refs = Vec::new();
        datasource_refs(&board, "dashboard", &mut refs);
        assert!(!refs.is_empty(), "{file}: no datasource references found");
        let mut used = BTreeSet::new();
        for (at, reference) in refs {
            let kind = reference["type"].as_str().unwrap_or("?");
            let uid = reference["uid"].as_str().unwrap_or("?");
            let expected = DATASOURCE_VARIABLES
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, var)| *var);
            let Some(var) = expected else {
                errors.push(format!(
                    "{file}: {at}: datasource of type {kind}: {reference}"
                ));
                continue;
            };
            if uid != format!("${{{var}}}") {
                errors.push(format!(
                    "{file}: {at}: {kind} datasource is the fixed uid {uid:?}, not ${{{var}}}"
                ));
            } else if datasource_var(var).is_none_or(|v| v["query"] != kind) {
                errors.push(format!("{file}: {at}: no {kind} datasource variable {var}"));
            }
            used.insert(var);
        }
        for (kind, var) in DATASOURCE_VARIABLES {
            let Some(v) = datasource_var(var) else {
                continue;
            };
            if !used.contains(var) {
                errors.push(format!("{file}: datasource variable {var} is never used"));
            }
            let default = v["current"]["value"].as_str().unwrap_or("?");
            if !provisioned.iter().any(|(k, u)| k == kind && u == default) {
                errors.push(format!(
                    "{file}: {var} defaults to {default:?}, not the provisioned {kind} uid"
                ));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "dashboards name fixed datasources:\n{}",
        errors.join("\n")
    );
}

/// In a shared Prometheus, a dashboard shows only the chosen jobs' series: every selector of
/// every Prometheus target carries `job=~"$job",instance=~"$instance"`, and every variable's
/// `label_values` selector the scope variables it depends on (`$instance` lists the chosen
/// jobs' instances, `$job` the jobs with a gateway family).
#[test]
fn every_dashboard_selector_is_scoped_to_the_chosen_jobs() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for (file, board) in dashboards() {
        let mut report = |source: String, query: &str, scope: &[(&str, &str)]| {
            checked += 1;
            match unscoped(query, scope) {
                Ok(missing) => errors.extend(missing.into_iter().map(|m| format!("{source}: {m}"))),
                Err(e) => errors.push(format!("{source}: does not parse ({e}): `{query}`")),
            }
        };
        for var in board["templating"]["list"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap();
            if let Some((selector, _)) = var["definition"].as_str().and_then(label_values) {
                let before = DASHBOARD_SCOPE
                    .iter()
                    .position(|(label, _)| *label == name)
                    .unwrap_or(DASHBOARD_SCOPE.len());
                report(
                    format!("{file}: variable {name}"),
                    selector,
                    &DASHBOARD_SCOPE[..before],
                );
            }
        }
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().unwrap() {
                if is_prometheus(target) {
                    let expr = target["expr"].as_str().unwrap();
                    report(format!("{file}: panel {title:?}"), expr, &DASHBOARD_SCOPE);
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} queries found");
    assert!(
        errors.is_empty(),
        "dashboard selectors without the job filter:\n{}",
        errors.join("\n")
    );
}

/// Every selector of every rule carries `job=~"gatewayz.*"`, the one string
/// `alerts/render.py` replaces.
#[test]
fn every_rule_selector_carries_the_job_matcher() {
    let (exprs, _) = rules();
    let errors = rule_scope_errors(&exprs, &RULE_SCOPE);
    assert!(
        errors.is_empty(),
        "rule selectors without the job matcher:\n{}",
        errors.join("\n")
    );
}

fn rule_scope_errors(exprs: &[(String, String)], scope: &[(&str, &str)]) -> Vec<String> {
    exprs
        .iter()
        .flat_map(|(rule, expr)| match unscoped(expr, scope) {
            Ok(missing) => missing
                .into_iter()
                .map(|m| format!("{rule}: {m}"))
                .collect(),
            Err(e) => vec![format!("{rule}: does not parse ({e})")],
        })
        .collect()
}

/// The shipped runbook links are docs/runbooks/NAME.md files that exist; a copy rendered for
/// other job names and another runbook base has the new matcher on every selector and the
/// new base on every link, and nothing of the defaults left.
#[test]
fn rendered_rules_carry_the_chosen_job_and_runbook_base() {
    let shipped = root().join("alerts/gatewayz.rules.yml");
    for (alert, url) in runbooks(&shipped) {
        let file = url.strip_prefix("docs/runbooks/");
        assert!(
            file.is_some_and(|f| root().join("docs/runbooks").join(f).is_file()),
            "{alert}: runbook_url {url:?} is not a file under docs/runbooks/"
        );
    }

    // The shipped file is the default rendering.
    let default_rendering =
        common::run_tool(Command::new("python3").arg(root().join("alerts/render.py")));
    assert!(
        default_rendering == std::fs::read(&shipped).unwrap(),
        "alerts/render.py without arguments does not reproduce alerts/gatewayz.rules.yml"
    );

    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("gatewayz.rules.yml");
    // (A regex with escapes goes through the real Prometheus in tests/prometheus_e2e.rs.)
    let (job, base) = ("llm-gw|llm-gw-.+", "https://runbooks.example.com/gatewayz");
    common::run_tool(
        Command::new("python3")
            .arg(root().join("alerts/render.py"))
            .args(["--job", job, "--runbook-base", base, "--output"])
            .arg(&rendered),
    );
    let text = std::fs::read_to_string(&rendered).unwrap();
    assert!(!text.contains("gatewayz.*") && !text.contains("\"docs/runbooks/"));

    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let exprs: Vec<(String, String)> = doc["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .map(|r| {
            let name = r["alert"].as_str().or_else(|| r["record"].as_str());
            (
                name.unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(exprs.len(), rules().0.len());
    let errors = rule_scope_errors(&exprs, &[("job", job)]);
    assert!(errors.is_empty(), "rendered rules:\n{}", errors.join("\n"));
    let links = runbooks(&rendered);
    assert_eq!(links, {
        let mut expected = runbooks(&shipped);
        for (_, url) in &mut expected {
            *url = url.replace("docs/runbooks/", &format!("{base}/"));
        }
        expected
    });
}

/// The provisioned Tempo datasource's trace-to-metrics queries name catalogue metrics and
/// carry the rules' job matcher (`$__tags` becomes the span's tags, or nothing).
#[test]
fn provisioned_trace_to_metrics_queries_carry_the_job_matcher() {
    let path = root().join("grafana/provisioning/datasources/gatewayz.yml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tempo = doc["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "tempo")
        .unwrap();
    let queries = tempo["jsonData"]["tracesToMetrics"]["queries"]
        .as_sequence()
        .unwrap();
    assert!(!queries.is_empty());
    let mut errors = Vec::new();
    for q in queries {
        let (name, query) = (q["name"].as_str().unwrap(), q["query"].as_str().unwrap());
        for tags in [r#"provider="a", model="m""#, r#"provider="a""#, ""] {
            // `$$` is provisioning's escape for a literal `$`.
            let query = query.replace("$$__tags", tags);
            errors.extend(check_promql(name, &query, &HashSet::new()));
            match unscoped(&query, &RULE_SCOPE) {
                Ok(missing) => errors.extend(missing.into_iter().map(|m| format!("{name}: {m}"))),
                Err(e) => errors.push(format!("{name}: does not parse ({e}): `{query}`")),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The scope checker flags what it must: a selector without the matchers, one of two sides
/// of a binary expression, a matcher of the wrong kind or value, a selector inside a
/// subquery or behind an offset.
#[test]
fn scope_checker_catches_unscoped_selectors() {
    let scoped = r#"sum(rate(gatewayz_http_requests_total{job=~"$job",instance=~"$instance",route="x"}[5m]))"#;
    assert_eq!(unscoped(scoped, &DASHBOARD_SCOPE), Ok(vec![]));
    for bad in [
        r#"sum(rate(gatewayz_http_requests_total{route="x"}[5m]))"#,
        r#"a{job=~"$job",instance=~"$instance"} / b{job=~"$job"}"#,
        r#"a{job="$job",instance=~"$instance"}"#,
        r#"a{job=~"gatewayz.*",instance=~"$instance"}"#,
        r#"max_over_time(rate(a{instance=~"$instance"}[1m])[5m:1m])"#,
        r#"a{job=~"$job",instance=~"$instance"} unless a offset 5m"#,
        r#"histogram_quantile(0.9, sum by (le) (rate(a_bucket[$__rate_interval])))"#,
    ] {
        assert_eq!(
            unscoped(bad, &DASHBOARD_SCOPE).map(|m| m.len()),
            Ok(1),
            "not caught once: {bad}"
        );
    }
}

/// Loki streams carry no job label: every LogQL stream selector picks the gateway's streams by
/// `service="$service"`, every TraceQL query its spans by `resource.service.name`.
#[test]
fn log_and_trace_queries_select_the_gateway_service() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for (file, board) in dashboards() {
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().unwrap() {
                let (query, selectors, needle) = match target["datasource"]["type"].as_str() {
                    Some("loki") => {
                        let expr = target["expr"].as_str().unwrap();
                        // Every `{...}` of LogQL is a stream selector.
                        (expr, expr.matches('{').count(), r#"{service="$service""#)
                    }
                    Some("tempo") => (
                        target["query"].as_str().unwrap(),
                        1,
                        r#"resource.service.name = "$service""#,
                    ),
                    _ => continue,
                };
                checked += 1;
                if query.matches(needle).count() != selectors {
                    errors.push(format!("{file}: panel {title:?}: `{query}` lacks {needle}"));
                }
            }
        }
    }
    assert!(checked >= 6, "only {checked} Loki and Tempo queries found");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
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
                if target["datasource"]["type"] == "loki" {
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
    common::run_tool(
        Command::new("python3")
            .arg(Path::new(&root()).join("grafana/generate.py"))
            .arg("--check"),
    );
}
