//! Who may read which metrics: bearer tokens from `[metrics] tokens`, each granting a set of
//! categories. Tokens are kept as digests and compared in constant time; they are never
//! logged.

use crate::config::{Grant, MetricsConfig};
use crate::errors::ApiError;
use crate::http::auth::{digest, find_digest, strip_bearer};
use crate::telemetry::metrics::catalogue::Category;

/// What a request asks to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every family (`/metrics`, `/prometheus/metrics/all`, the summary).
    All,
    /// One category's families.
    Category(Category),
    /// The generated documentation: no figures, any valid token.
    Docs,
}

pub struct MetricsAccess {
    digests: Vec<[u8; 32]>,
    grants: Vec<Vec<Grant>>,
}

impl MetricsAccess {
    pub fn new(config: &MetricsConfig) -> Self {
        Self {
            digests: config
                .tokens
                .iter()
                .map(|t| digest(t.token.as_bytes()))
                .collect(),
            grants: config
                .tokens
                .iter()
                .map(|t| {
                    t.categories
                        .iter()
                        .filter_map(|c| Grant::parse(c))
                        .collect()
                })
                .collect(),
        }
    }

    /// Open when no token is configured.
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// 401 without a known token, 403 when the token does not grant `scope`.
    pub fn authorize(&self, header: Option<&[u8]>, scope: Scope) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let token = header.and_then(strip_bearer).ok_or(ApiError::Unauthorized(
            "a metrics token is required: send it as `Authorization: Bearer <token>`",
        ))?;
        let index = find_digest(self.digests.iter(), &digest(token))
            .ok_or(ApiError::Unauthorized("invalid metrics token"))?;
        let grants = &self.grants[index];
        let allowed = grants.contains(&Grant::All)
            || match scope {
                Scope::All => false,
                Scope::Docs => true,
                Scope::Category(c) => grants.contains(&Grant::Category(c)),
            };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(match scope {
                Scope::Category(c) => format!("this metrics token does not grant `{}`", c.as_str()),
                _ => "this metrics token does not grant `all`".into(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MetricsToken;

    #[test]
    fn grants_table() {
        let access = MetricsAccess::new(&MetricsConfig {
            tokens: vec![
                MetricsToken {
                    token: "business-token-0001".into(),
                    categories: vec!["business".into()],
                },
                MetricsToken {
                    token: "everything-token-01".into(),
                    categories: vec!["all".into()],
                },
            ],
            ..MetricsConfig::default()
        });
        let business = Scope::Category(Category::Business);
        let providers = Scope::Category(Category::Providers);
        let code = |h: Option<&[u8]>, s| access.authorize(h, s).map_err(|e| e.code());
        assert_eq!(code(None, business), Err("invalid_api_key"));
        assert_eq!(
            code(Some(b"Bearer nope-nope-nope-nope"), business),
            Err("invalid_api_key")
        );
        assert_eq!(code(Some(b"Bearer business-token-0001"), business), Ok(()));
        assert_eq!(
            code(Some(b"Bearer business-token-0001"), providers),
            Err("forbidden")
        );
        assert_eq!(
            code(Some(b"Bearer business-token-0001"), Scope::All),
            Err("forbidden")
        );
        assert_eq!(
            code(Some(b"Bearer business-token-0001"), Scope::Docs),
            Ok(())
        );
        assert_eq!(code(Some(b"Bearer everything-token-01"), providers), Ok(()));
        assert_eq!(
            code(Some(b"Bearer everything-token-01"), Scope::All),
            Ok(())
        );
        let open = MetricsAccess::new(&MetricsConfig::default());
        assert!(open.authorize(None, Scope::All).is_ok());
    }
}
