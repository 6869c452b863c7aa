//! The structured metrics endpoints (DESIGN §4) against the real binary: each category
//! returns exactly its families and the five together are `all`; `promtool check metrics`
//! accepts each; the JSON summary agrees with the scraped counters after a known sequence of
//! requests; the docs page lists the whole catalogue; tokens grant categories. Every family
//! with a historical (seed) name comes out under both names with the same samples, and no
//! name twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::get_as;
use gatewayz::telemetry::metrics::catalogue::{self, Category, FAMILIES};
use serde_json::Value;

const ALL_TOKEN: &str = "all-metrics-token-0001";
const BUSINESS_TOKEN: &str = "business-token-000001";

fn config(upstream: &common::Process) -> String {
    format!(
        r#"
[metrics]
tokens = [
  {{ token = "{ALL_TOKEN}", categories = ["all"] }},
  {{ token = "{BUSINESS_TOKEN}", categories = ["business"] }},
]

{provider}
[providers.local]
kind = "mock"

[models.alpha]
providers = ["up"]
input_price_per_1m = 2.5
output_price_per_1m = 10.0

[models.beta]
providers = ["local"]
input_price_per_1m = 0.4
output_price_per_1m = 1.6
{keys}"#,
        keys = common::TEAM_AND_TRIAL_KEYS,
        provider = common::openai_provider("up", upstream, ""),
    )
}

/// `name → (type, samples)` of an exposition.
type Families = BTreeMap<String, (String, Vec<(String, f64)>)>;

fn parse(text: &str) -> Families {
    let mut families = Families::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_owned(), (kind.to_owned(), Vec::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let family = families
                .keys()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .cloned()
                .unwrap_or_else(|| panic!("sample {line} before its TYPE"));
            families
                .get_mut(&family)
                .unwrap()
                .1
                .push((series.to_owned(), value.parse().unwrap()));
        }
    }
    families
}

fn sum(families: &Families, name: &str, filter: &str) -> f64 {
    families.get(name).map_or(0.0, |(_, samples)| {
        samples
            .iter()
            .filter(|(s, _)| s.contains(filter))
            .map(|(_, v)| v)
            .sum()
    })
}

fn promtool_check(text: &str, what: &str) {
    let report = common::scrape::promtool_check(text);
    assert!(report.trim().is_empty(), "{what}: {report}");
}

#[test]
fn categories_summary_docs_and_access() {
    let upstream = common::mock_upstream(&[]);
    let gw = common::gateway(&config(&upstream));
    let client = common::client();

    // A known sequence: 3 JSON on alpha, 2 streams (usage asked) on beta, 1 JSON on beta.
    let mut input = BTreeMap::<&str, f64>::new();
    let mut output = BTreeMap::<&str, f64>::new();
    let mut record = |model, usage: &Value| {
        *input.entry(model).or_default() += usage["prompt_tokens"].as_f64().unwrap();
        *output.entry(model).or_default() += usage["completion_tokens"].as_f64().unwrap();
    };
    for (model, prompt) in [
        ("alpha", "one two three"),
        ("alpha", "four"),
        ("alpha", "five six"),
        ("beta", "seven eight nine ten"),
    ] {
        let reply: Value =
            common::chat_request(&client, gw.addr, common::chat_body(model, prompt, false))
                .bearer_auth(common::TEAM_KEY)
                .send()
                .unwrap()
                .json()
                .unwrap();
        record(model, &reply["usage"]);
    }
    for prompt in ["streamed words here", "and more"] {
        let body = serde_json::json!({
            "model": "beta", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": prompt}],
        });
        let text = common::chat_request(&client, gw.addr, body.to_string())
            .bearer_auth(common::TEAM_KEY)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let usage = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .find(|v| !v["usage"].is_null())
            .expect("usage chunk");
        record("beta", &usage["usage"]);
    }
    let price = |m: &str| {
        if m == "alpha" {
            (2.5, 10.0)
        } else {
            (0.4, 1.6)
        }
    };
    let expected_cost: f64 = ["alpha", "beta"]
        .iter()
        .map(|m| (input[m] * price(m).0 + output[m] * price(m).1) / 1e6)
        .sum();

    // Streams record their outcome when they end; wait until all six are counted.
    let all = common::poll(std::time::Duration::from_secs(10), || {
        let all = parse(
            &get_as(&gw, "/prometheus/metrics/all", Some(ALL_TOKEN))
                .text()
                .unwrap(),
        );
        (sum(&all, "gatewayz_model_inference_requests_total", "") >= 6.0).then_some(all)
    })
    .expect("completions not counted");

    // Categories: exactly their families, and together everything.
    let mut union = BTreeSet::new();
    for category in Category::ALL {
        let reply = get_as(
            &gw,
            &format!("/prometheus/metrics/{}", category.as_str()),
            Some(ALL_TOKEN),
        );
        assert_eq!(reply.status(), 200);
        let text = reply.text().unwrap();
        promtool_check(&text, category.as_str());
        let families = parse(&text);
        for name in families.keys() {
            let entry = catalogue::get(name).unwrap_or_else(|| panic!("{name} not in catalogue"));
            assert!(
                entry.categories.contains(&category),
                "{name} served as {}",
                category.as_str()
            );
        }
        for entry in FAMILIES.iter().filter(|f| f.categories.contains(&category)) {
            for name in entry.names() {
                if all.contains_key(name) {
                    assert!(
                        families.contains_key(name),
                        "{name} missing from {}",
                        category.as_str()
                    );
                }
            }
        }
        union.extend(families.into_keys());
    }
    // Families only ever appear (an actor publishes a gauge on its first tick), so scrapes
    // taken one after the other are compared by inclusion: before ⊆ union ⊆ after.
    let everything = get_as(&gw, "/metrics", Some(ALL_TOKEN)).text().unwrap();
    promtool_check(&everything, "/metrics");
    let after: BTreeSet<String> = parse(&everything).into_keys().collect();
    let before: BTreeSet<String> = all.keys().cloned().collect();
    assert!(
        before.is_subset(&union),
        "missing from the categories: {:?}",
        before.difference(&union).collect::<Vec<_>>()
    );
    assert!(
        union.is_subset(&after),
        "served by a category but not by /metrics: {:?}",
        union.difference(&after).collect::<Vec<_>>()
    );

    // The summary agrees with the counters, exactly.
    let summary: Value = get_as(&gw, "/prometheus/metrics/summary", Some(ALL_TOKEN))
        .json()
        .unwrap();
    let totals = &summary["totals"];
    assert_eq!(totals["requests"], 6);
    assert_eq!(
        totals["requests"].as_f64().unwrap(),
        sum(&all, "gatewayz_model_inference_requests_total", "")
    );
    assert_eq!(totals["errors"], 0);
    let (tin, tout): (f64, f64) = (input.values().sum(), output.values().sum());
    assert_eq!(totals["tokens"]["input"].as_f64().unwrap(), tin);
    assert_eq!(totals["tokens"]["output"].as_f64().unwrap(), tout);
    assert_eq!(sum(&all, "gatewayz_tokens_total", "type=\"input\""), tin);
    let scraped_cost = sum(&all, "gatewayz_cost_by_provider_total", "");
    assert!(
        (totals["cost_usd"].as_f64().unwrap() - expected_cost).abs() < 1e-12,
        "{totals} vs {expected_cost}"
    );
    assert!((scraped_cost - expected_cost).abs() < 1e-12);
    let models = summary["models"].as_array().unwrap();
    let alpha = models.iter().find(|m| m["model"] == "alpha").unwrap();
    assert_eq!(alpha["requests"], 3);
    assert_eq!(alpha["tokens"]["input"].as_f64().unwrap(), input["alpha"]);
    let up = summary["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "up")
        .unwrap();
    assert_eq!(up["requests"], 3);
    assert_eq!(up["breaker_state"], "closed");
    assert!(up["latency_seconds"]["p95"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["trials_active"], 1);
    // Every request above was a chat completion: the `apis` list has every API, chat all of it.
    let apis = summary["apis"].as_array().unwrap();
    assert_eq!(
        apis.iter()
            .map(|a| a["api"].as_str().unwrap())
            .collect::<Vec<_>>(),
        gatewayz::config::Api::labels()
    );
    let chat = apis.iter().find(|a| a["api"] == "chat").unwrap();
    assert_eq!(chat["requests"], totals["requests"]);
    assert_eq!(chat["tokens"], totals["tokens"]);
    assert!(apis
        .iter()
        .filter(|a| a["api"] != "chat")
        .all(|a| a["requests"] == 0));

    // Docs list the whole catalogue.
    let docs = get_as(&gw, "/prometheus/metrics/docs", Some(BUSINESS_TOKEN))
        .text()
        .unwrap();
    for family in FAMILIES {
        assert!(
            docs.contains(&format!("\n| `{}` |", family.name)),
            "{} not documented",
            family.name
        );
        if let Some(alias) = family.legacy {
            assert!(
                docs.contains(&format!("\n| `{alias}` | `{}` |", family.name)),
                "{alias} not documented as the alias of {}",
                family.name
            );
        }
    }

    // Access.
    assert_eq!(
        get_as(&gw, "/prometheus/metrics/business", None).status(),
        401
    );
    assert_eq!(
        get_as(
            &gw,
            "/prometheus/metrics/business",
            Some("wrong-token-000000000")
        )
        .status(),
        401
    );
    assert_eq!(
        get_as(&gw, "/prometheus/metrics/providers", Some(BUSINESS_TOKEN)).status(),
        403
    );
    assert_eq!(
        get_as(&gw, "/prometheus/metrics/summary", Some(BUSINESS_TOKEN)).status(),
        403
    );
    assert_eq!(get_as(&gw, "/metrics", Some(BUSINESS_TOKEN)).status(), 403);
    assert_eq!(get_as(&gw, "/metrics", None).status(), 401);
    let business = get_as(&gw, "/prometheus/metrics/business", Some(BUSINESS_TOKEN));
    assert_eq!(business.status(), 200);
    assert!(business
        .text()
        .unwrap()
        .contains("gatewayz_cost_by_model_total"));
    let unknown = get_as(&gw, "/prometheus/metrics/bogus", Some(ALL_TOKEN));
    assert_eq!(unknown.status(), 404);
    let message = unknown.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("system") && message.contains("business"),
        "{message}"
    );
    assert!(
        !gw.log_text().contains(ALL_TOKEN),
        "a token reached the log"
    );
}

#[test]
fn endpoints_are_open_without_tokens() {
    let gw = common::builtin_gateway();
    for path in [
        "/metrics",
        "/prometheus/metrics/providers",
        "/prometheus/metrics/summary",
        "/prometheus/metrics/docs",
    ] {
        assert_eq!(get_as(&gw, path, None).status(), 200, "{path}");
    }
}

/// One family of an exposition, as printed: HELP, TYPE and its sample lines (series and value)
/// with the family's name cut off the front of each series.
#[derive(Debug, PartialEq)]
struct Printed {
    help: String,
    kind: String,
    samples: Vec<String>,
}

/// The families of an exposition in order, by name, failing on a name printed twice (two
/// `# TYPE` or `# HELP` lines, or samples of a family after another one began) and on a
/// sample that does not belong to the family above it.
fn families_as_printed(text: &str, what: &str) -> BTreeMap<String, Printed> {
    let mut out = BTreeMap::<String, Printed>::new();
    let mut current: Option<String> = None;
    let mut help: Option<(String, String)> = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name.to_owned(), text.to_owned()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let help = match help.take() {
                Some((of, text)) if of == name => text,
                _ => String::new(),
            };
            let family = Printed {
                help,
                kind: kind.to_owned(),
                samples: Vec::new(),
            };
            assert!(
                out.insert(name.to_owned(), family).is_none(),
                "{what}: {name} is emitted twice"
            );
            current = Some(name.to_owned());
        } else {
            let name = current
                .as_deref()
                .unwrap_or_else(|| panic!("{what}: sample {line} before any TYPE"));
            let rest = line
                .strip_prefix(name)
                .filter(|r| {
                    ["{", " ", "_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| r.starts_with(s))
                })
                .unwrap_or_else(|| panic!("{what}: sample {line} under the family {name}"));
            let rest = rest.to_owned();
            out.get_mut(name).unwrap().samples.push(rest);
        }
    }
    out
}

/// Every family with a historical name is exported under the canonical `gatewayz_` name and
/// under the seed's name, with the same HELP, TYPE and samples, on `/metrics` and on each
/// category endpoint of the family; no name is printed twice; an alias never comes without
/// its canonical family.
#[test]
fn historical_names_are_copies_of_the_canonical_families() {
    let gw = common::builtin_gateway();
    let reply = common::post_chat(&gw, &common::chat_body("mock-gpt", "alias me", false), None);
    assert_eq!(reply.status(), 200);
    let aliased: Vec<_> = FAMILIES.iter().filter(|f| f.legacy.is_some()).collect();
    assert_eq!(aliased.len(), 14);
    let check = |path: &str, required: &[&catalogue::Family]| {
        let text = get_as(&gw, path, None).text().unwrap();
        let printed = families_as_printed(&text, path);
        for family in FAMILIES {
            let Some(alias) = family.legacy else { continue };
            match (printed.get(family.name), printed.get(alias)) {
                (Some(canonical), Some(copy)) => {
                    assert!(
                        !canonical.samples.is_empty(),
                        "{path}: {} empty",
                        family.name
                    );
                    assert_eq!(
                        canonical, copy,
                        "{path}: {alias} differs from {}",
                        family.name
                    );
                }
                (None, None) => assert!(
                    !required.iter().any(|r| r.name == family.name),
                    "{path}: {} missing",
                    family.name
                ),
                (c, a) => panic!(
                    "{path}: {} present: {}, {alias} present: {}",
                    family.name,
                    c.is_some(),
                    a.is_some()
                ),
            }
        }
    };
    // The chat completion is counted once its outcome reaches the metrics: wait for it.
    common::poll(std::time::Duration::from_secs(10), || {
        let text = get_as(&gw, "/metrics", None).text().unwrap();
        text.contains("\ngatewayz_model_inference_requests_total{")
            .then_some(())
    })
    .expect("the completion was not counted");
    check("/metrics", &aliased);
    check("/prometheus/metrics/all", &aliased);
    for category in Category::ALL {
        let mine: Vec<_> = aliased
            .iter()
            .copied()
            .filter(|f| f.categories.contains(&category))
            .collect();
        check(&format!("/prometheus/metrics/{}", category.as_str()), &mine);
    }
}

/// With `[metrics] legacy_names = false` the canonical families are exported alone: no
/// historical name on `/metrics` or on a category endpoint.
#[test]
fn legacy_names_false_drops_the_aliases() {
    let gw = common::gateway(
        "[metrics]\nlegacy_names = false\n\
         [providers.m]\nkind = \"mock\"\n[models.x]\nproviders = [\"m\"]\n",
    );
    let reply = common::post_chat(&gw, &common::chat_body("x", "no aliases", false), None);
    assert_eq!(reply.status(), 200);
    for (path, canonical) in [
        (
            "/metrics",
            &["gatewayz_process_threads", "gatewayz_trial_active"][..],
        ),
        ("/prometheus/metrics/system", &["gatewayz_process_threads"]),
        ("/prometheus/metrics/business", &["gatewayz_trial_active"]),
    ] {
        let text = get_as(&gw, path, None).text().unwrap();
        let printed = families_as_printed(&text, path);
        for name in canonical {
            assert!(printed.contains_key(*name), "{path}: {name} missing");
        }
        for alias in FAMILIES.iter().filter_map(|f| f.legacy) {
            assert!(!printed.contains_key(alias), "{path}: {alias} exported");
        }
    }
}
