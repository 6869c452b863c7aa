//! The client request headers an upstream is sent: a fixed allow-list, and a `User-Agent`
//! naming the gateway and the client.
//!
//! Collected once by the HTTP handler, then passed by reference to every attempt. Nothing
//! outside the allow-list crosses the gateway (never `Authorization`, `x-api-key` or cookies:
//! the client's credentials are the gateway's, not the upstream's). A provider's configured
//! `headers` of the same name win (operator policy): [`super::OpenAiClient`] adds a forwarded
//! header only where its name is still free.

use hyper::header::{HeaderName, HeaderValue};

/// The client headers forwarded when present.
pub const ALLOWED: [HeaderName; 4] = [
    HeaderName::from_static("openai-organization"),
    HeaderName::from_static("openai-project"),
    HeaderName::from_static("openai-beta"),
    HeaderName::from_static("anthropic-beta"),
];

/// `User-Agent` when the client sent none.
const GATEWAY_AGENT: &str = concat!("gatewayz/", env!("CARGO_PKG_VERSION"));

/// The forwarded headers of one client request.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    /// Allow-listed headers as the client sent them; empty (no allocation) when none.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `gatewayz/VERSION (client UA)` when the client sent a `User-Agent`.
    user_agent: Option<HeaderValue>,
}

impl Forwarded {
    /// Reads the allow-list and `User-Agent` through `get` (the HTTP edge's header lookup, by
    /// lowercase name). A value that is not a valid header value is dropped.
    pub fn collect<'a>(get: impl Fn(&str) -> Option<&'a [u8]>) -> Self {
        let headers = ALLOWED
            .iter()
            .filter_map(|name| {
                let value = HeaderValue::from_bytes(get(name.as_str())?).ok()?;
                Some((name.clone(), value))
            })
            .collect();
        let user_agent = get("user-agent").and_then(|client| {
            let mut value = Vec::with_capacity(GATEWAY_AGENT.len() + client.len() + 3);
            value.extend_from_slice(GATEWAY_AGENT.as_bytes());
            value.extend_from_slice(b" (");
            value.extend_from_slice(client);
            value.push(b')');
            // Checked like `from_bytes`, without copying the bytes once more.
            HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
        });
        Self {
            headers,
            user_agent,
        }
    }

    /// The allow-listed headers the client sent.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }

    /// The `User-Agent` to send: the gateway's, with the client's in parentheses when given.
    pub fn user_agent(&self) -> HeaderValue {
        self.user_agent
            .clone()
            .unwrap_or(HeaderValue::from_static(GATEWAY_AGENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Forwarded {
        Forwarded::collect(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        })
    }

    #[test]
    fn only_the_allow_list_is_kept() {
        let forwarded = from(&[
            ("openai-organization", "org-1"),
            ("openai-beta", "assistants=v2"),
            ("anthropic-beta", "tools-2024"),
            ("authorization", "Bearer client-key"),
            ("x-api-key", "client-key"),
            ("cookie", "a=b"),
        ]);
        let kept: Vec<_> = forwarded
            .headers()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            kept,
            [
                ("openai-organization", "org-1"),
                ("openai-beta", "assistants=v2"),
                ("anthropic-beta", "tools-2024")
            ]
        );
    }

    #[test]
    fn the_user_agent_names_the_gateway_then_the_client() {
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            from(&[]).user_agent(),
            format!("gatewayz/{version}").as_str()
        );
        assert_eq!(
            from(&[("user-agent", "OpenAI/Python 2.1")]).user_agent(),
            format!("gatewayz/{version} (OpenAI/Python 2.1)").as_str()
        );
    }

    #[test]
    fn nothing_sent_allocates_nothing() {
        let forwarded = from(&[]);
        assert_eq!(forwarded.headers.capacity(), 0);
        assert!(forwarded.user_agent.is_none());
    }
}
