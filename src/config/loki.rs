//! `[telemetry.loki]`: where and how the log shipper pushes to Loki.
//!
//! Every knob of the shipper lives here with its default, so an operator reads one table
//! (also in `docs/LOGGING.md`). Limits are validated at load time: a zero capacity or a
//! backoff whose minimum exceeds its maximum stops start-up with the key's name. Secrets
//! (`auth`) may come from `${VAR}`. Without this section no shipper runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::bounds::{self, HOUR, MIB, MINUTE};
use super::{duration, key_segment, Invalid};

/// Most static labels (besides `level`): streams stay few and Loki's index small.
pub const MAX_LABELS: usize = 8;

/// `[telemetry.loki]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiConfig {
    /// Loki base URL, e.g. `http://loki:3100`; the shipper posts to `{url}/loki/api/v1/push`.
    /// Required. `${VAR}` allowed.
    pub url: String,
    /// `X-Scope-OrgID` sent with every push (multi-tenant Loki). Default: none.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Static stream labels. Default `{ service = "gatewayz" }`; add e.g. `env = "prod"`.
    /// Values are `${VAR}` interpolated (`instance = "${HOSTNAME}"`).
    /// At most 8; names are Prometheus label names.
    #[serde(default = "default_labels")]
    pub labels: BTreeMap<String, String>,
    /// Whether the record's level is a stream label (`level="info"`). Default true.
    #[serde(default = "default_true")]
    pub level_label: bool,
    /// Authentication. Default: none.
    #[serde(default)]
    pub auth: Option<LokiAuth>,
    /// Most records in one push. Default 1000; 1 to 100000.
    #[serde(default = "default_batch_max_records")]
    pub batch_max_records: usize,
    /// Most bytes of log lines in one push (before compression). Default 1 MiB; 1 to 16 MiB.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// How long the first record of a batch waits for company. Default `"1s"`; more than 0s,
    /// at most 1h.
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// Most records held while Loki is slow or down (beyond them, `drop_policy`). Default
    /// 10000; 1 to 100000 (a held record is a whole log line: this bounds the memory).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Which records go when the queue is full: `"newest"` (refuse arrivals, the default) or
    /// `"oldest"` (evict the oldest held record to make room). Counted as `dropped_full`.
    #[serde(default)]
    pub drop_policy: DropPolicy,
    /// Deadline for one push (connect to answer). Default `"10s"`; more than 0s, at most 1h.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// First retry delay. Default `"500ms"` (Promtail's); more than 0s, at most 1h.
    #[serde(default = "default_backoff_min", with = "duration")]
    pub backoff_min: Duration,
    /// Longest retry delay. Default `"5m"` (Promtail's); `backoff_min` to 1h.
    #[serde(default = "default_backoff_max", with = "duration")]
    pub backoff_max: Duration,
    /// Most attempts per batch, the first included; then it is dropped (`dropped_rejected`).
    /// Default 10 (Promtail's); 1 to 10000.
    #[serde(default = "default_max_tries")]
    pub max_tries: u32,
    /// On shutdown, how long the shipper may keep pushing what it holds; what is left is
    /// counted as `dropped_shutdown`. Capped by what is left of `server.shutdown_timeout`.
    /// Default `"5s"`; 0s to 10m.
    #[serde(default = "default_shutdown_deadline", with = "duration")]
    pub shutdown_deadline: Duration,
}

/// `auth` of `[telemetry.loki]`: `{ basic = { username, password } }` or `{ bearer = "..." }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum LokiAuth {
    /// HTTP basic auth. `${VAR}` allowed in both fields.
    Basic { username: String, password: String },
    /// `Authorization: Bearer TOKEN`. `${VAR}` allowed.
    Bearer(String),
}

/// What goes when the queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropPolicy {
    /// Refuse the arriving record; what is held keeps its place (no gaps inside a backlog).
    #[default]
    Newest,
    /// Evict the oldest held record; the most recent history survives an outage.
    Oldest,
}

fn default_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("service".to_owned(), "gatewayz".to_owned())])
}
fn default_true() -> bool {
    true
}
fn default_batch_max_records() -> usize {
    1000
}
fn default_batch_max_bytes() -> usize {
    1024 * 1024
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_queue_capacity() -> usize {
    10_000
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_backoff_min() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}
fn default_max_tries() -> u32 {
    10
}
fn default_shutdown_deadline() -> Duration {
    Duration::from_secs(5)
}

impl LokiConfig {
    /// A config for `url` with every default (tests, benches).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tenant: None,
            labels: default_labels(),
            level_label: true,
            auth: None,
            batch_max_records: default_batch_max_records(),
            batch_max_bytes: default_batch_max_bytes(),
            flush_interval: default_flush_interval(),
            queue_capacity: default_queue_capacity(),
            drop_policy: DropPolicy::default(),
            timeout: default_timeout(),
            backoff_min: default_backoff_min(),
            backoff_max: default_backoff_max(),
            max_tries: default_max_tries(),
            shutdown_deadline: default_shutdown_deadline(),
        }
    }

    pub(super) fn interpolate(
        &mut self,
        expand: &dyn Fn(String, &mut String) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        let base = "telemetry.loki";
        expand(format!("{base}.url"), &mut self.url)?;
        if let Some(tenant) = &mut self.tenant {
            expand(format!("{base}.tenant"), tenant)?;
        }
        match &mut self.auth {
            Some(LokiAuth::Basic { username, password }) => {
                expand(format!("{base}.auth.basic.username"), username)?;
                expand(format!("{base}.auth.basic.password"), password)?;
            }
            Some(LokiAuth::Bearer(token)) => expand(format!("{base}.auth.bearer"), token)?,
            None => {}
        }
        // Label values too (`instance = "${HOSTNAME}"`: one stream per replica); names stay
        // as written.
        for (name, value) in &mut self.labels {
            expand(format!("{base}.labels.{}", super::key_segment(name)), value)?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let key = |k: &str| format!("telemetry.loki.{k}");
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(Invalid::new(
                    key("url"),
                    "must be an http:// or https:// URL",
                ))
            }
        }
        if let Some(tenant) = &self.tenant {
            if tenant.is_empty() || reqwest::header::HeaderValue::from_str(tenant).is_err() {
                return Err(Invalid::new(key("tenant"), "not a valid HTTP header value"));
            }
        }
        if self.labels.len() > MAX_LABELS {
            return Err(Invalid::new(
                key("labels"),
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        for (name, value) in &self.labels {
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if name.is_empty() || !valid || name == "level" {
                return Err(Invalid::new(
                    format!("telemetry.loki.labels.{}", key_segment(name)),
                    "label names are [a-zA-Z_][a-zA-Z0-9_]* and not \"level\"",
                ));
            }
            if value.is_empty() {
                return Err(Invalid::new(
                    format!("telemetry.loki.labels.{}", key_segment(name)),
                    "must not be empty",
                ));
            }
        }
        bounds::count(key("batch_max_records"), self.batch_max_records, 1, 100_000)?;
        bounds::bytes(key("batch_max_bytes"), self.batch_max_bytes, 1, 16 * MIB)?;
        bounds::count(key("queue_capacity"), self.queue_capacity, 1, 100_000)?;
        bounds::count(key("max_tries"), self.max_tries, 1, 10_000)?;
        bounds::positive(key("flush_interval"), self.flush_interval, HOUR)?;
        bounds::positive(key("timeout"), self.timeout, HOUR)?;
        bounds::positive(key("backoff_min"), self.backoff_min, HOUR)?;
        if self.backoff_max < self.backoff_min {
            return Err(Invalid::new(
                key("backoff_max"),
                "must not be less than backoff_min",
            ));
        }
        bounds::at_most(key("backoff_max"), self.backoff_max, HOUR)?;
        bounds::at_most(
            key("shutdown_deadline"),
            self.shutdown_deadline,
            10 * MINUTE,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError};
    use super::*;

    const BASE: &str = "[providers.m]\nkind = \"mock\"\n[models.x]\nproviders = [\"m\"]\n";

    fn parse(loki: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| (name == "LOKI_TOKEN").then(|| "s3cret".to_string());
        Config::from_toml(&format!("{BASE}[telemetry.loki]\n{loki}"), "t.toml", &env)
    }

    #[test]
    fn defaults_and_full_section() {
        let c = parse("url = \"http://loki:3100\"").unwrap();
        let loki = c.telemetry.loki.unwrap();
        assert_eq!(loki.flush_interval, Duration::from_secs(1));
        assert_eq!(loki.backoff_min, Duration::from_millis(500));
        assert_eq!(loki.backoff_max, Duration::from_secs(300));
        assert_eq!(loki.labels["service"], "gatewayz");
        assert_eq!(loki.drop_policy, DropPolicy::Newest);

        let c = parse(
            r#"url = "https://loki.example"
tenant = "ops"
labels = { service = "gw", env = "prod" }
auth = { bearer = "${LOKI_TOKEN}" }
batch_max_records = 10
batch_max_bytes = 2048
flush_interval = "250ms"
queue_capacity = 50
drop_policy = "oldest"
backoff_min = "1s"
backoff_max = "1m"
max_tries = 3
shutdown_deadline = "2s"
timeout = "3s"
level_label = false"#,
        )
        .unwrap();
        let loki = c.telemetry.loki.unwrap();
        assert!(matches!(loki.auth, Some(LokiAuth::Bearer(ref t)) if t == "s3cret"));
        assert_eq!(loki.drop_policy, DropPolicy::Oldest);
        assert_eq!(loki.labels.len(), 2);
        assert!(Config::builtin().unwrap().telemetry.loki.is_none());
    }

    #[test]
    fn basic_auth_parses() {
        let c = parse(
            "url = \"http://l\"\nauth = { basic = { username = \"u\", password = \"${LOKI_TOKEN}\" } }",
        )
        .unwrap();
        assert!(matches!(
            c.telemetry.loki.unwrap().auth,
            Some(LokiAuth::Basic { ref password, .. }) if password == "s3cret"
        ));
    }

    #[test]
    fn errors_name_the_key() {
        let table = [
            ("url = \"loki:3100\"", "telemetry.loki.url"),
            (
                "url = \"http://l\"\nqueue_capacity = 0",
                "telemetry.loki.queue_capacity",
            ),
            (
                "url = \"http://l\"\nbatch_max_bytes = 0",
                "telemetry.loki.batch_max_bytes",
            ),
            (
                "url = \"http://l\"\nmax_tries = 0",
                "telemetry.loki.max_tries",
            ),
            (
                "url = \"http://l\"\nflush_interval = \"0s\"",
                "telemetry.loki.flush_interval",
            ),
            (
                "url = \"http://l\"\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"",
                "telemetry.loki.backoff_max",
            ),
            (
                "url = \"http://l\"\nlabels = { level = \"x\" }",
                "telemetry.loki.labels.level",
            ),
            (
                "url = \"http://l\"\nlabels = { \"a-b\" = \"x\" }",
                "telemetry.loki.labels",
            ),
            (
                "url = \"http://l\"\nauth = { bearer = \"${NOPE}\" }",
                "telemetry.loki.auth.bearer",
            ),
        ];
        for (src, key) in table {
            let err = parse(src).unwrap_err().to_string();
            assert!(err.contains(key), "{src:?}: {err}");
        }
        for unknown in [
            "url = \"http://l\"\nbatch_size = 3",
            "url = \"http://l\"\nauth = { digest = \"x\" }",
        ] {
            let err = parse(unknown).unwrap_err().to_string();
            assert!(err.contains("unknown"), "{unknown:?}: {err}");
        }
    }
}
