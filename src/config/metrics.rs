//! `[metrics]`: who may read the metrics endpoints, and whether the seed's historical names
//! are exported too.
//!
//! Without tokens the endpoints are open, as Prometheus scrapers expect. With tokens, each
//! grants a set of categories (`all` grants every one); `/metrics`, the summary and a
//! category endpoint then need a token granting what they show.

use serde::Deserialize;

use super::{interpolate, Invalid};

/// A category of metric families: a slice of the catalogue served by its own endpoint
/// (DESIGN §4), and what a metrics token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    System,
    Providers,
    Models,
    Business,
    Performance,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Self::System,
        Self::Providers,
        Self::Models,
        Self::Business,
        Self::Performance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Providers => "providers",
            Self::Models => "models",
            Self::Business => "business",
            Self::Performance => "performance",
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Bearer tokens for the metrics endpoints. Default: none (open endpoints).
    #[serde(default)]
    pub tokens: Vec<MetricsToken>,
    /// Also export the families the seed named without the `gatewayz_` prefix under those
    /// historical names (`http_requests_total`, `process_*`, `trial_active`, ...), as copies
    /// of the canonical families. Default: true (the seed's dashboards keep working).
    #[serde(default = "default_legacy_names")]
    pub legacy_names: bool,
}

fn default_legacy_names() -> bool {
    true
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            legacy_names: default_legacy_names(),
        }
    }
}

/// `[[metrics.tokens]]` or `tokens = [{ token = "...", categories = ["business"] }]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsToken {
    /// The bearer token. Required, at least 16 characters. `${VAR}` allowed (and expected).
    pub token: String,
    /// Categories it grants: `all`, `system`, `providers`, `models`, `business`,
    /// `performance`. Required, at least one.
    pub categories: Vec<String>,
}

/// What a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    All,
    Category(Category),
}

impl Grant {
    pub fn parse(name: &str) -> Option<Self> {
        if name == "all" {
            return Some(Self::All);
        }
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .map(Self::Category)
    }
}

impl MetricsConfig {
    pub(super) fn interpolate(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), Invalid> {
        for (i, token) in self.tokens.iter_mut().enumerate() {
            token.token = interpolate(&token.token, env)
                .map_err(|m| Invalid::new(format!("metrics.tokens[{i}].token"), m))?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let mut seen = std::collections::HashSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            let base = format!("metrics.tokens[{i}]");
            if token.token.len() < 16 {
                return Err(Invalid::new(
                    format!("{base}.token"),
                    "must be at least 16 characters",
                ));
            }
            if !seen.insert(token.token.as_str()) {
                return Err(Invalid::new(
                    format!("{base}.token"),
                    "the same token is configured twice",
                ));
            }
            if token.categories.is_empty() {
                return Err(Invalid::new(
                    format!("{base}.categories"),
                    "grant at least one category (or \"all\")",
                ));
            }
            for (j, name) in token.categories.iter().enumerate() {
                if Grant::parse(name).is_none() {
                    return Err(Invalid::new(
                        format!("{base}.categories[{j}]"),
                        format!(
                            "unknown category {name:?} (valid: all, system, providers, models, \
                             business, performance)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
