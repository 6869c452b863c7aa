//! Per-key and per-team limits: request and token rates, requests in parallel, a budget.
//!
//! A `[[keys]]` entry and a `[teams.NAME]` table take the same six settings; they are read
//! into one [`Limits`] value so that validation, the summary and the limiter are written
//! once. A budget period is `"monthly"` (the calendar month, UTC) or a duration of whole
//! hours (`"1h"`, `"1d"`, `"30d"`), whose periods are aligned to the Unix epoch.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};

use super::{bounds, key_segment, known, Invalid, KeyConfig, ModelConfig};

/// `base.name`, or `name` alone when `base` is empty (the admin API names a body's fields
/// without a path).
fn field(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}

/// Longest key or team name.
pub const MAX_NAME: usize = 128;

/// A client key's policy — who holds it and what it may do — without its secret: what a
/// `[[keys]]` entry and a key created through the admin API both are to the limiters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPolicy {
    pub name: String,
    pub team: Option<String>,
    /// `None`: every model.
    pub models: Option<Vec<String>>,
    pub limits: Limits,
    /// After it the key is refused (`trial_expired`).
    pub expires: Option<SystemTime>,
}

/// Most requests per minute a limit may name.
pub const MAX_RPM: u64 = 1_000_000;
/// Most tokens per minute a limit may name.
pub const MAX_TPM: u64 = 1_000_000_000;
/// Most requests in parallel a limit may name.
pub const MAX_PARALLEL: u64 = 1_000_000;
/// Highest budget, USD: far above any real one, low enough that a stray exponent is caught.
pub const MAX_BUDGET_USD: f64 = 1e9;
/// Longest budget period (a duration; `"monthly"` aside).
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// How long a budget lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// Back-to-back periods of this length, aligned to the Unix epoch (`"1d"`: UTC days).
    Every(Duration),
    /// The calendar month, UTC.
    Monthly,
}

impl Default for BudgetPeriod {
    /// `"30d"`.
    fn default() -> Self {
        Self::Every(Duration::from_secs(30 * 24 * 3600))
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every(d) => write!(f, "{}", humantime::format_duration(*d)),
            Self::Monthly => f.write_str("monthly"),
        }
    }
}

impl BudgetPeriod {
    /// `"monthly"` or a duration (`"1d"`); its bounds are checked by [`Limits::validate`].
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "monthly" {
            return Ok(Self::Monthly);
        }
        humantime::parse_duration(text)
            .map(Self::Every)
            .map_err(|e| {
                format!(
                "invalid budget period {text:?} ({e}); write \"monthly\" or whole hours such as \
                 \"1h\", \"1d\", \"30d\""
            )
            })
    }
}

impl<'de> Deserialize<'de> for BudgetPeriod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `[teams.NAME]`: limits shared by every key naming the team.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// Most requests per minute for all the team's keys together. Default: unlimited;
    /// 1 to 1000000.
    #[serde(default)]
    pub rate_limit_rpm: Option<u64>,
    /// Most tokens per minute (input and output) for the team. Default: unlimited;
    /// 1 to 1000000000.
    #[serde(default)]
    pub rate_limit_tpm: Option<u64>,
    /// Most requests in flight at once for the team. Default: unlimited; 1 to 1000000.
    #[serde(default)]
    pub max_parallel: Option<u64>,
    /// Spend allowed per budget period, USD; past it requests get 429 `budget_exceeded`.
    /// Default: unlimited; more than 0, at most 1e9.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// `"monthly"` (calendar month, UTC) or whole hours (`"1h"`, `"1d"`, `"30d"`). Default
    /// `"30d"`; needs `budget_usd`.
    #[serde(default)]
    pub budget_period: Option<BudgetPeriod>,
    /// Spend past which a crossing is logged and counted once per period (no refusal).
    /// Default: none; more than 0, below `budget_usd`.
    #[serde(default)]
    pub soft_budget_usd: Option<f64>,
}

impl TeamConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            rpm: self.rate_limit_rpm,
            tpm: self.rate_limit_tpm,
            max_parallel: self.max_parallel,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
            soft_budget_usd: self.soft_budget_usd,
        }
    }
}

/// The limits of a key or a team, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
    pub budget_usd: Option<f64>,
    /// `None` when not written (then `"30d"` if a budget is set).
    pub budget_period: Option<BudgetPeriod>,
    pub soft_budget_usd: Option<f64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.rpm.is_some()
            || self.tpm.is_some()
            || self.max_parallel.is_some()
            || self.budget_usd.is_some()
    }

    /// The budget period, defaulted.
    pub fn period(&self) -> BudgetPeriod {
        self.budget_period.unwrap_or_default()
    }

    /// Checks bounds and the budget's coherence; `base` is the key path (`keys[2]`).
    pub fn validate(&self, base: &str) -> Result<(), Invalid> {
        for (name, value, max) in [
            ("rate_limit_rpm", self.rpm, MAX_RPM),
            ("rate_limit_tpm", self.tpm, MAX_TPM),
            ("max_parallel", self.max_parallel, MAX_PARALLEL),
        ] {
            if let Some(value) = value {
                if value == 0 {
                    return Err(Invalid::new(
                        field(base, name),
                        "must be greater than 0 (omit it for no limit)",
                    ));
                }
                bounds::count(field(base, name), value, 1, max)?;
            }
        }
        for (name, value) in [
            ("budget_usd", self.budget_usd),
            ("soft_budget_usd", self.soft_budget_usd),
        ] {
            if let Some(usd) = value {
                bounds::number(field(base, name), usd, 0.0, MAX_BUDGET_USD)?;
                if usd <= 0.0 {
                    return Err(Invalid::new(
                        field(base, name),
                        "must be greater than 0 USD (omit it for no budget)",
                    ));
                }
            }
        }
        if let Some(period) = self.budget_period {
            if self.budget_usd.is_none() {
                return Err(Invalid::new(
                    field(base, "budget_period"),
                    "needs budget_usd",
                ));
            }
            validate_period(&field(base, "budget_period"), period)?;
        }
        if let Some(soft) = self.soft_budget_usd {
            match self.budget_usd {
                Some(hard) if soft >= hard => {
                    return Err(Invalid::new(
                        field(base, "soft_budget_usd"),
                        format!("must be below budget_usd ({hard}) (got {soft})"),
                    ))
                }
                Some(_) => {}
                None => {
                    return Err(Invalid::new(
                        field(base, "soft_budget_usd"),
                        "needs budget_usd (the period it counts in)",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Teams' limits, and what keys name: their team and their models.
pub(super) fn validate_policies(
    keys: &[KeyConfig],
    teams: &BTreeMap<String, TeamConfig>,
    models: &BTreeMap<String, ModelConfig>,
) -> Result<(), Invalid> {
    for (name, team) in teams {
        let base = format!("teams.{}", key_segment(name));
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Invalid::new(base, "team names are 1 to 128 characters"));
        }
        team.limits().validate(&base)?;
    }
    for (i, key) in keys.iter().enumerate() {
        validate_names(&key.policy(), &format!("keys[{i}]"), teams, models)?;
    }
    Ok(())
}

/// A key's team (known when teams are configured) and models (configured ones); `base`
/// prefixes the fields named in the error.
pub(super) fn validate_names(
    key: &KeyPolicy,
    base: &str,
    teams: &BTreeMap<String, TeamConfig>,
    models: &BTreeMap<String, ModelConfig>,
) -> Result<(), Invalid> {
    if let Some(team) = &key.team {
        if team.is_empty() || team.len() > MAX_NAME {
            return Err(Invalid::new(
                field(base, "team"),
                "team names are 1 to 128 characters",
            ));
        }
        if !teams.is_empty() && !teams.contains_key(team) {
            return Err(Invalid::new(
                field(base, "team"),
                format!("unknown team {team:?} (known: {})", known(teams.keys())),
            ));
        }
    }
    if key.models.as_ref().is_some_and(Vec::is_empty) {
        return Err(Invalid::new(
            field(base, "models"),
            "at least one model id, or omit it for every model",
        ));
    }
    for (j, model) in key.models.iter().flatten().enumerate() {
        if !models.contains_key(model) {
            return Err(Invalid::new(
                field(base, &format!("models[{j}]")),
                format!("unknown model {model:?} (known: {})", known(models.keys())),
            ));
        }
    }
    Ok(())
}

/// A duration period is whole hours, 1h to 366 days.
fn validate_period(key: &str, period: BudgetPeriod) -> Result<(), Invalid> {
    let BudgetPeriod::Every(d) = period else {
        return Ok(());
    };
    bounds::between(key, d, bounds::HOUR, MAX_PERIOD)?;
    if d.subsec_nanos() != 0 || !d.as_secs().is_multiple_of(3600) {
        return Err(Invalid::new(
            key,
            format!(
                "must be whole hours (got {})",
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_default() {
        let parse = |s: &str| -> Result<BudgetPeriod, String> {
            serde_json::from_value(serde_json::json!(s)).map_err(|e| e.to_string())
        };
        assert_eq!(parse("monthly"), Ok(BudgetPeriod::Monthly));
        assert_eq!(
            parse("1d"),
            Ok(BudgetPeriod::Every(Duration::from_secs(86_400)))
        );
        assert!(parse("weekly").unwrap_err().contains("monthly"));
        assert_eq!(
            Limits::default().period(),
            BudgetPeriod::Every(Duration::from_secs(30 * 86_400))
        );
    }

    #[test]
    fn bad_limits_name_the_field() {
        let cases: &[(Limits, &str)] = &[
            (
                Limits {
                    rpm: Some(0),
                    ..Default::default()
                },
                "k.rate_limit_rpm",
            ),
            (
                Limits {
                    tpm: Some(MAX_TPM + 1),
                    ..Default::default()
                },
                "k.rate_limit_tpm",
            ),
            (
                Limits {
                    max_parallel: Some(0),
                    ..Default::default()
                },
                "k.max_parallel",
            ),
            (
                Limits {
                    budget_usd: Some(0.0),
                    ..Default::default()
                },
                "k.budget_usd",
            ),
            (
                Limits {
                    budget_usd: Some(f64::NAN),
                    ..Default::default()
                },
                "k.budget_usd",
            ),
            (
                Limits {
                    budget_period: Some(BudgetPeriod::Monthly),
                    ..Default::default()
                },
                "k.budget_period",
            ),
            (
                Limits {
                    budget_usd: Some(1.0),
                    budget_period: Some(BudgetPeriod::Every(Duration::from_secs(90 * 60))),
                    ..Default::default()
                },
                "k.budget_period",
            ),
            (
                Limits {
                    budget_usd: Some(1.0),
                    soft_budget_usd: Some(1.0),
                    ..Default::default()
                },
                "k.soft_budget_usd",
            ),
            (
                Limits {
                    soft_budget_usd: Some(1.0),
                    ..Default::default()
                },
                "k.soft_budget_usd",
            ),
        ];
        for (limits, key) in cases {
            assert_eq!(limits.validate("k").unwrap_err().key, *key, "{limits:?}");
        }
        let good = Limits {
            rpm: Some(60),
            tpm: Some(10_000),
            max_parallel: Some(4),
            budget_usd: Some(10.0),
            budget_period: Some(BudgetPeriod::Monthly),
            soft_budget_usd: Some(8.0),
        };
        assert!(good.validate("k").is_ok());
        assert!(good.any() && !Limits::default().any());
    }
}
