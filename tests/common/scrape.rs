//! Scraping `/metrics` in black-box tests: parse the text format into series → value, and
//! poll a condition with a deadline instead of sleeping and hoping.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Process;

/// `name{labels}` (as printed) → value.
pub type Series = BTreeMap<String, f64>;

/// `/metrics` as text.
pub fn text(gw: &Process) -> String {
    super::http()
        .get(gw.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

pub fn parse(text: &str) -> Series {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

pub fn scrape(gw: &Process) -> Series {
    parse(&text(gw))
}

/// Polls `check` on fresh scrapes until it returns `Some`, or panics after `limit` with the
/// last scrape and `what`.
pub fn until<T>(
    gw: &Process,
    limit: Duration,
    what: &str,
    check: impl Fn(&Series) -> Option<T>,
) -> T {
    let mut last = Series::new();
    super::poll(limit, || {
        last = scrape(gw);
        check(&last)
    })
    .unwrap_or_else(|| {
        let shown: Vec<_> = last
            .iter()
            .filter(|(k, _)| !k.contains("_bucket"))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        panic!(
            "timed out waiting for {what}; last scrape:\n{}\nlog:\n{}",
            shown.join("\n"),
            gw.log_text()
        );
    })
}

/// The value of one series, if present.
pub fn get(series: &Series, key: &str) -> Option<f64> {
    series.get(key).copied()
}

/// The value of `name{labels}` (labels as printed, in order), 0 when absent.
pub fn value(series: &Series, name: &str, labels: &str) -> f64 {
    get(series, &format!("{name}{{{labels}}}")).unwrap_or(0.0)
}

/// The sum of every series whose key starts with `prefix` (a name, or a name and a first
/// label).
pub fn sum(series: &Series, prefix: &str) -> f64 {
    series
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// A provider's circuit breaker state gauges: closed, open, half-open.
pub fn breaker(series: &Series, provider: &str) -> [Option<f64>; 3] {
    ["closed", "open", "half_open"].map(|state| {
        get(
            series,
            &format!("gatewayz_circuit_breaker_state{{provider=\"{provider}\",state=\"{state}\"}}"),
        )
    })
}

/// Runs `promtool check metrics` on `text`; returns its combined output (empty when clean).
pub fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/test does it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool failed: {out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
