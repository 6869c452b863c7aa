//! `GET /prometheus/metrics/docs`: Markdown describing every endpoint and every metric,
//! generated from the catalogue the code registers — it cannot drift from what is exposed.

use std::fmt::Write;

use crate::config::Api;
use crate::outcome::RequestEnd;
use crate::providers::FailureReason;
use crate::telemetry::metrics::catalogue::{Category, Family, Kind, FAMILIES};

/// The labels whose values are a fixed set in the code, with that set.
fn label_values() -> [(&'static str, &'static str, Vec<&'static str>); 3] {
    [
        ("api", "the API the client called", Api::labels().to_vec()),
        (
            "status",
            "how a client request ended (`gatewayz_model_inference_requests_total`)",
            RequestEnd::LABELS.to_vec(),
        ),
        (
            "reason",
            "why a provider attempt failed (`gatewayz_provider_requests_total`; `none` on success)",
            FailureReason::LABELS.to_vec(),
        ),
    ]
}

/// Every endpoint: path, what it returns.
pub const ENDPOINTS: &[(&str, &str)] = &[
    (
        "/metrics",
        "every family, Prometheus text format 0.0.4 (back-compatible)",
    ),
    ("/prometheus/metrics/all", "every family"),
    (
        "/prometheus/metrics/system",
        "HTTP server, process and log-shipping families",
    ),
    (
        "/prometheus/metrics/providers",
        "provider health, breakers, provider latency, failovers, anomalies",
    ),
    (
        "/prometheus/metrics/models",
        "model inference, 24 h uptime, token efficiency, time to first token",
    ),
    ("/prometheus/metrics/business", "cost, tokens, trials"),
    ("/prometheus/metrics/performance", "every latency histogram"),
    (
        "/prometheus/metrics/summary",
        "JSON: totals, per provider and per model figures",
    ),
    ("/prometheus/metrics/docs", "this page"),
];

/// One PromQL example for a family.
pub fn example(family: &Family) -> String {
    let name = family.name;
    let by = family.labels.first();
    match (family.kind, by) {
        (Kind::Counter, Some(label)) => format!("sum by ({label}) (rate({name}[5m]))"),
        (Kind::Counter, None) => format!("rate({name}[5m])"),
        (Kind::Gauge, Some(label)) => format!("max by ({label}) ({name})"),
        (Kind::Gauge, None) => name.to_owned(),
        (Kind::Histogram, Some(label)) => {
            format!("histogram_quantile(0.95, sum by ({label}, le) (rate({name}_bucket[5m])))")
        }
        (Kind::Histogram, None) => {
            format!("histogram_quantile(0.95, sum by (le) (rate({name}_bucket[5m])))")
        }
    }
}

fn categories(family: &Family) -> String {
    family
        .categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole page. `base` is how curl examples reach the gateway.
pub fn markdown(base: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# gatewayz metrics\n");
    let _ = writeln!(
        out,
        "Generated from the metric catalogue the gateway registers. Without `[metrics] tokens` \
         the endpoints are open; with them, send `Authorization: Bearer <token>` granting the \
         category (or `all`).\n"
    );
    let _ = writeln!(out, "## Endpoints\n");
    let _ = writeln!(out, "| endpoint | returns | example |\n| --- | --- | --- |");
    for (path, what) in ENDPOINTS {
        let _ = writeln!(out, "| `GET {path}` | {what} | `curl -s {base}{path}` |");
    }
    let _ = writeln!(out, "\n## Metrics\n");
    for category in Category::ALL {
        let _ = writeln!(out, "### {}\n", category.as_str());
        let _ = writeln!(
            out,
            "| name | type | labels | help | categories | PromQL example |\n\
             | --- | --- | --- | --- | --- | --- |"
        );
        for family in FAMILIES.iter().filter(|f| f.categories[0] == category) {
            let labels = if family.labels.is_empty() {
                "—".to_owned()
            } else {
                family.labels.join(", ")
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | `{}` |",
                family.name,
                family.kind.as_str(),
                labels,
                family.help.replace('|', "\\|"),
                categories(family),
                example(family)
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## Historical names\n");
    let _ = writeln!(
        out,
        "These families had another name in the seed. They are exported under that name too, \
         with the same samples (a copy made at scrape time), so dashboards and rules written \
         for the seed keep working; new dashboards and rules should use the `gatewayz_` name. \
         `[metrics] legacy_names = false` stops exporting them.\n"
    );
    let _ = writeln!(out, "| historical alias | canonical name |\n| --- | --- |");
    for family in FAMILIES {
        if let Some(alias) = family.legacy {
            let _ = writeln!(out, "| `{alias}` | `{}` |", family.name);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Label values\n");
    let _ = writeln!(out, "| label | meaning | values |\n| --- | --- | --- |");
    for (label, meaning, values) in label_values() {
        let values = values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>();
        let _ = writeln!(out, "| `{label}` | {meaning} | {} |", values.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_documented_once() {
        let page = markdown("http://127.0.0.1:8080");
        for family in FAMILIES {
            let row = format!("\n| `{}` |", family.name);
            assert_eq!(page.matches(&row).count(), 1, "{}", family.name);
            assert!(page.contains(&example(family)), "{}", family.name);
            if let Some(alias) = family.legacy {
                let row = format!("\n| `{alias}` | `{}` |", family.name);
                assert_eq!(page.matches(&row).count(), 1, "{alias}");
            }
        }
        for (path, _) in ENDPOINTS {
            assert!(page.contains(&format!("curl -s http://127.0.0.1:8080{path}")));
        }
        for api in Api::ALL {
            assert!(page.contains(&format!("`{}`", api.label())), "{api:?}");
        }
    }
}
