//! Usage reports from the hourly rollups: spend and tokens grouped by one dimension over a
//! time range, as a table, CSV or JSON (`gatewayz usage`, `GET /admin/usage`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::record::{unix_ms, HOUR_MS};
use super::store::Sums;

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Key,
    Team,
    Model,
    Provider,
    Api,
}

impl By {
    pub const ALL: [By; 5] = [
        Self::Key,
        Self::Team,
        Self::Model,
        Self::Provider,
        Self::Api,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Api => "api",
        }
    }

    /// The rollup column (a fixed name: never client input in SQL).
    pub fn column(self) -> &'static str {
        match self {
            Self::Key => "key_name",
            Self::Team => "team",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == text)
            .ok_or_else(|| format!("unknown grouping {text:?}: key, team, model, provider or api"))
    }
}

/// A time bound: an RFC 3339 instant (`2026-12-01T00:00:00Z`) or a duration before now
/// (`7d`, `12h`).
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH)),
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 instant (2026-12-01T00:00:00Z) nor a duration before now (7d)"
        )),
    }
}

/// The hours a report covers: from the hour holding `since` up to the end of the hour
/// holding `until` (rollups are hourly).
pub fn hours(since: SystemTime, until: SystemTime) -> (i64, i64) {
    let floor = |ms: i64| ms - ms.rem_euclid(HOUR_MS);
    let (s, u) = (unix_ms(since), unix_ms(until));
    (floor(s), floor(u) + HOUR_MS)
}

/// One report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub by: By,
    /// The range actually covered (whole hours), RFC 3339.
    pub since: String,
    pub until: String,
    pub rows: Vec<Line>,
    pub total: Line,
}

/// One group's sums (or the total, whose `name` is `"total"`).
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub name: String,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
}

impl Line {
    fn new(name: &str, s: &Sums) -> Self {
        Self {
            // The rollups keep "" for no key, team or provider.
            name: if name.is_empty() {
                "none".into()
            } else {
                name.into()
            },
            requests: s.requests,
            errors: s.errors,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cached_tokens: s.cached_tokens,
            cost_usd: s.cost_usd,
        }
    }
}

impl Report {
    pub fn new(by: By, (since_ms, until_ms): (i64, i64), rows: &[(String, Sums)]) -> Self {
        let mut total = Sums::default();
        for (_, s) in rows {
            total.requests += s.requests;
            total.errors += s.errors;
            total.input_tokens += s.input_tokens;
            total.output_tokens += s.output_tokens;
            total.cached_tokens += s.cached_tokens;
            total.cost_usd += s.cost_usd;
        }
        let instant = |ms: i64| {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
            humantime::format_rfc3339_seconds(t).to_string()
        };
        Self {
            by,
            since: instant(since_ms),
            until: instant(until_ms),
            rows: rows.iter().map(|(n, s)| Line::new(n, s)).collect(),
            total: Line::new("total", &total),
        }
    }

    /// CSV with a header line; names quoted when they hold a comma or a quote.
    pub fn csv(&self) -> String {
        let mut out = format!(
            "{},requests,errors,input_tokens,output_tokens,cached_tokens,cost_usd\n",
            self.by.name()
        );
        for l in self.rows.iter().chain([&self.total]) {
            let name = if l.name.contains([',', '"', '\n']) {
                format!("\"{}\"", l.name.replace('"', "\"\""))
            } else {
                l.name.clone()
            };
            let _ = writeln!(
                out,
                "{name},{},{},{},{},{},{:.6}",
                l.requests, l.errors, l.input_tokens, l.output_tokens, l.cached_tokens, l.cost_usd
            );
        }
        out
    }

    /// An aligned table for a terminal.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|l| l.name.chars().count())
            .chain([self.by.name().len(), 5])
            .max()
            .unwrap_or(5);
        let mut out = format!(
            "usage from {} to {} by {}\n",
            self.since,
            self.until,
            self.by.name()
        );
        let _ = writeln!(
            out,
            "{:<width$}  {:>10}  {:>8}  {:>14}  {:>14}  {:>12}  {:>14}",
            self.by.name(),
            "requests",
            "errors",
            "input tokens",
            "output tokens",
            "cached",
            "cost USD"
        );
        for l in self.rows.iter().chain([&self.total]) {
            let _ = writeln!(
                out,
                "{:<width$}  {:>10}  {:>8}  {:>14}  {:>14}  {:>12}  {:>14.6}",
                l.name,
                l.requests,
                l.errors,
                l.input_tokens,
                l.output_tokens,
                l.cached_tokens,
                l.cost_usd
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(requests: i64, cost_usd: f64) -> Sums {
        Sums {
            requests,
            errors: 1,
            input_tokens: 10 * requests,
            output_tokens: 20 * requests,
            cached_tokens: 0,
            cost_usd,
        }
    }

    #[test]
    fn reports_total_their_rows_in_every_format() {
        let rows = vec![
            ("alice".to_string(), sums(3, 1.5)),
            (String::new(), sums(1, 0.25)),
        ];
        let r = Report::new(By::Key, (0, HOUR_MS), &rows);
        assert_eq!(r.total.requests, 4);
        assert!((r.total.cost_usd - 1.75).abs() < 1e-12);
        assert_eq!(r.rows[1].name, "none");
        assert_eq!(r.since, "1970-01-01T00:00:00Z");
        assert_eq!(r.until, "1970-01-01T01:00:00Z");
        let csv = r.csv();
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                "key,requests,errors,input_tokens,output_tokens,cached_tokens,cost_usd",
                "alice,3,1,30,60,0,1.500000",
                "none,1,1,10,20,0,0.250000",
                "total,4,2,40,80,0,1.750000"
            ]
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["by"], "key");
        assert_eq!(json["total"]["requests"], 4);
        assert!(r.table().contains("alice"));
        let odd = Report::new(By::Team, (0, HOUR_MS), &[("a,\"b\"".into(), sums(1, 0.0))]);
        assert!(odd.csv().contains("\"a,\"\"b\"\"\",1"));
    }

    #[test]
    fn bounds_are_instants_or_durations_before_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        assert_eq!(
            parse_time("7d", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(3 * 86_400)
        );
        assert_eq!(
            parse_time("1970-01-02T00:00:00Z", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)
        );
        assert!(parse_time("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
        assert_eq!(By::parse("team"), Ok(By::Team));
        assert!(By::parse("user").is_err());
        // Whole hours around the range.
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(hours(t(3700), t(7300)), (HOUR_MS, 3 * HOUR_MS));
    }
}

/// How `gatewayz usage` prints a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown format {other:?}: table, csv or json")),
        }
    }
}

/// `gatewayz usage`: reads the configured ledger's rollups and formats a report.
pub async fn print(
    config: &crate::config::Config,
    since: &str,
    until: Option<&str>,
    by: &str,
    format: &str,
) -> Result<String, String> {
    let settings = config
        .ledger
        .as_ref()
        .ok_or("the configuration has no [ledger]: there is no usage to report")?;
    let now = SystemTime::now();
    let since = parse_time(since, now).map_err(|e| format!("--since: {e}"))?;
    let until = match until {
        Some(t) => parse_time(t, now).map_err(|e| format!("--until: {e}"))?,
        None => now,
    };
    let by = By::parse(by).map_err(|e| format!("--by: {e}"))?;
    let format = Format::parse(format).map_err(|e| format!("--format: {e}"))?;
    let db = super::Db::open(settings).map_err(|e| super::describe(&e))?;
    let hours = hours(since, until);
    let read = async {
        db.migrate().await?;
        db.usage(by, hours.0, hours.1).await
    };
    let rows = read.await.map_err(|e| super::describe(&e));
    db.close().await;
    let report = Report::new(by, hours, &rows?);
    Ok(match format {
        Format::Table => report.table(),
        Format::Csv => report.csv(),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            text.push('\n');
            text
        }
    })
}
