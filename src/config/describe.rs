//! What `gatewayz check-config` prints: what the file would run, never a secret — key
//! *names* only, whether a provider key is set, and URLs without userinfo or query string
//! (where a `${VAR}` secret could hide).

use super::{Config, LokiAuth, ProviderSettings};

impl Config {
    /// The `check-config` report.
    pub fn describe(&self) -> String {
        describe(self)
    }
}

/// A URL without credentials: userinfo and query string removed.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            if u.query().is_some() {
                u.set_query(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// What `check-config` prints: everything but secrets.
pub fn describe(config: &Config) -> String {
    let mut out = String::from("configuration OK\n");
    out.push_str(&format!("listen: {}\n", config.server.listen));
    out.push_str("providers:\n");
    for (name, provider) in &config.providers {
        match provider.settings() {
            ProviderSettings::OpenAi(p) => out.push_str(&format!(
                "  {name}: openai {} (timeout {}, key {})\n",
                redact_url(&p.base_url),
                humantime::format_duration(p.timeout),
                if p.api_key.is_some() { "set" } else { "none" }
            )),
            ProviderSettings::Anthropic(a) => out.push_str(&format!(
                "  {name}: anthropic {} (version {}, timeout {}, key {})\n",
                redact_url(&a.http.base_url),
                a.version,
                humantime::format_duration(a.http.timeout),
                if a.http.api_key.is_some() {
                    "set"
                } else {
                    "none"
                }
            )),
            ProviderSettings::Mock(_) => out.push_str(&format!("  {name}: mock (in-process)\n")),
        }
    }
    out.push_str("models:\n");
    for (id, model) in &config.models {
        out.push_str(&format!(
            "  {id} -> {} (USD/1M tokens: in {}, out {})\n",
            model.providers.join(", "),
            model.input_price_per_1m,
            model.output_price_per_1m
        ));
    }
    let names: Vec<_> = config.keys.iter().map(|k| k.name.as_str()).collect();
    out.push_str(&format!(
        "client keys: {}\n",
        if names.is_empty() {
            "none (auth off, loopback only)".to_string()
        } else {
            names.join(", ")
        }
    ));
    for key in &config.keys {
        let mut parts = Vec::new();
        if let Some(team) = &key.team {
            parts.push(format!("team {team}"));
        }
        if let Some(models) = &key.models {
            parts.push(format!("models {}", models.join(", ")));
        }
        parts.extend(limits_summary(&key.limits()));
        if !parts.is_empty() {
            out.push_str(&format!("  key {}: {}\n", key.name, parts.join("; ")));
        }
    }
    for (name, team) in &config.teams {
        let parts = limits_summary(&team.limits());
        out.push_str(&format!(
            "  team {name}: {}\n",
            if parts.is_empty() {
                "no limits".to_string()
            } else {
                parts.join("; ")
            }
        ));
    }
    let state = &config.state;
    out.push_str(&match &state.redis_url {
        Some(url) => format!(
            "limit counters: shared in Redis {} (prefix {}, timeout {}, {} while unreachable, \
             retried every {})\n",
            redact_url(url),
            state.key_prefix,
            humantime::format_duration(state.timeout),
            state.failure_policy.label(),
            humantime::format_duration(state.retry_interval),
        ),
        None => "limit counters: in this process\n".to_string(),
    });
    out.push_str(&match &config.ledger {
        Some(ledger) => format!(
            "usage ledger: {} (batches of {} every {}, queue {}, raw records kept {})\n",
            redact_url(&ledger.url),
            ledger.batch_size,
            humantime::format_duration(ledger.flush_interval),
            ledger.queue_capacity,
            whole_days(ledger.retention),
        ),
        None => "usage ledger: off\n".to_string(),
    });
    out.push_str(&match (&config.admin.token, &config.ledger) {
        (Some(_), Some(_)) => format!(
            "admin API: on (token set; virtual keys read every {})\n",
            humantime::format_duration(config.admin.key_sync_interval)
        ),
        (Some(_), None) => "admin API: on (token set; no virtual keys without [ledger])\n".into(),
        (None, _) => "admin API: off\n".into(),
    });
    out.push_str(&format!(
        "logs: stderr ({}), access line {}\n",
        config.telemetry.log_format.label(),
        if config.telemetry.access_log {
            "on"
        } else {
            "off"
        }
    ));
    if let Some(loki) = &config.telemetry.loki {
        let url = redact_url(&loki.url);
        out.push_str(&format!(
            "loki: {} (tenant {}, auth {}, batches of {} records / {} bytes every {}, queue {} \
             dropping {:?}, shutdown deadline {})\n",
            url,
            loki.tenant.as_deref().unwrap_or("none"),
            match loki.auth {
                Some(LokiAuth::Basic { .. }) => "basic",
                Some(LokiAuth::Bearer(_)) => "bearer",
                None => "none",
            },
            loki.batch_max_records,
            loki.batch_max_bytes,
            humantime::format_duration(loki.flush_interval),
            loki.queue_capacity,
            loki.drop_policy,
            humantime::format_duration(loki.shutdown_deadline),
        ));
    }
    out
}

/// What the running gateway is, for the start-up banner.
pub struct Running<'a> {
    pub version: &'a str,
    /// The address actually bound (port 0 resolved).
    pub listen: std::net::SocketAddr,
    /// The trace exporter's protocol and endpoint, when traces are exported.
    pub traces: Option<&'a str>,
}

/// The start-up banner: one block saying what runs, where, and how it is protected (no
/// secret: URLs without their credentials, key names without their secrets).
pub fn banner(config: &Config, running: &Running<'_>) -> String {
    let mut out = format!(
        "gatewayz {}
",
        running.version
    );
    let mut line = |name: &str, value: String| out.push_str(&format!("  {name:<10} {value}\n"));
    line(
        "config",
        match &config.source {
            Some(path) => path.display().to_string(),
            None => "built-in default (no file)".into(),
        },
    );
    line("listen", format!("http://{}", running.listen));
    let names: Vec<_> = config.keys.iter().map(|k| k.name.as_str()).collect();
    line(
        "auth",
        match (names.len(), &config.ledger, &config.admin.token) {
            (0, Some(_), Some(_)) => "none yet: loopback only, without keys until a key is made \
                                      through the admin API"
                .into(),
            (0, _, _) => "none: loopback only, without keys".into(),
            (n, _, _) => format!(
                "{n} client key{} ({}){}",
                if n == 1 { "" } else { "s" },
                shorten_list(&names),
                if config.ledger.is_some() && config.admin.token.is_some() {
                    ", and keys made through the admin API"
                } else {
                    ""
                }
            ),
        },
    );
    let models: Vec<_> = config
        .models
        .iter()
        .map(|(id, m)| format!("{id} → {}", m.providers.join(", ")))
        .collect();
    line("models", shorten_list(&models));
    line(
        "metrics",
        format!(
            "/metrics, /prometheus/metrics/{{system,providers,models,business,performance,\
             summary}} ({})",
            if config.metrics.tokens.is_empty() {
                "open: no [metrics] tokens".to_string()
            } else {
                format!("{} token(s) required", config.metrics.tokens.len())
            }
        ),
    );
    line(
        "logs",
        format!(
            "stderr ({}){}",
            config.telemetry.log_format.label(),
            match &config.telemetry.loki {
                Some(loki) => format!(
                    ", Loki {}{}",
                    redact_url(&loki.url),
                    loki.tenant
                        .as_deref()
                        .map(|t| format!(" (tenant {t})"))
                        .unwrap_or_default()
                ),
                None => ", Loki off".into(),
            }
        ),
    );
    line(
        "traces",
        running
            .traces
            .map_or_else(|| "off (no OTLP exporter)".into(), |t| format!("OTLP {t}")),
    );
    line(
        "limits",
        match &config.state.redis_url {
            Some(url) => format!(
                "shared in Redis {} ({} while unreachable)",
                redact_url(url),
                config.state.failure_policy.label()
            ),
            None => "in this process".into(),
        },
    );
    line(
        "ledger",
        config
            .ledger
            .as_ref()
            .map_or_else(|| "off".into(), |l| redact_url(&l.url)),
    );
    line(
        "admin API",
        if config.admin.token.is_some() {
            "on (/admin/*, token set)".into()
        } else {
            "off".into()
        },
    );
    out
}

/// `90d` for whole days (humantime would say `2months 29days 2h 52m 48s`), else humantime's.
fn whole_days(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs > 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// At most eight names, then how many more.
fn shorten_list(names: &[impl AsRef<str>]) -> String {
    const SHOWN: usize = 8;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("; ");
    if names.len() > SHOWN {
        text.push_str(&format!("; and {} more", names.len() - SHOWN));
    }
    text
}

/// `60 rpm`, `1000 tpm`, `4 in parallel`, `budget 10 USD per 1day (soft 8 USD)`.
fn limits_summary(limits: &super::Limits) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(rpm) = limits.rpm {
        parts.push(format!("{rpm} rpm"));
    }
    if let Some(tpm) = limits.tpm {
        parts.push(format!("{tpm} tpm"));
    }
    if let Some(n) = limits.max_parallel {
        parts.push(format!("{n} in parallel"));
    }
    if let Some(usd) = limits.budget_usd {
        let soft = limits
            .soft_budget_usd
            .map(|s| format!(" (soft {s} USD)"))
            .unwrap_or_default();
        let period = match limits.period() {
            super::BudgetPeriod::Monthly => "calendar month (UTC)".to_string(),
            every => every.to_string(),
        };
        parts.push(format!("budget {usd} USD per {period}{soft}"));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::{limits_summary, redact_url};
    use crate::config::{BudgetPeriod, Limits};

    #[test]
    fn limits_are_summarized() {
        let limits = Limits {
            rpm: Some(60),
            tpm: Some(1000),
            max_parallel: Some(4),
            budget_usd: Some(10.0),
            budget_period: Some(BudgetPeriod::Monthly),
            soft_budget_usd: Some(8.0),
        };
        assert_eq!(
            limits_summary(&limits).join("; "),
            "60 rpm; 1000 tpm; 4 in parallel; budget 10 USD per calendar month (UTC) (soft 8 USD)"
        );
        assert!(limits_summary(&Limits::default()).is_empty());
    }

    #[test]
    fn the_shared_store_is_described_without_its_password() {
        let src = "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n\
                   [state]\nredis_url = \"redis://default:${PASS}@redis.internal:6380/1\"\n\
                   failure_policy = \"fail_closed\"\n";
        let env = |name: &str| (name == "PASS").then(|| "s3cret".to_string());
        let config = crate::config::Config::from_toml(src, "t.toml", &env).unwrap();
        let text = config.describe();
        assert!(
            text.contains(
                "limit counters: shared in Redis redis://redis.internal:6380/1 (prefix gatewayz, \
                 timeout 50ms, fail_closed while unreachable, retried every 1s)"
            ),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(crate::config::Config::builtin()
            .unwrap()
            .describe()
            .contains("limit counters: in this process"));
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("https://user:s3cret@api.example.com/v1?key=s3cret"),
            "https://api.example.com/v1?redacted"
        );
        assert_eq!(redact_url("http://127.0.0.1:9/v1"), "http://127.0.0.1:9/v1");
        assert_eq!(
            redact_url("rediss://default:s3cret@redis.internal:6380/2"),
            "rediss://redis.internal:6380/2"
        );
    }
}
