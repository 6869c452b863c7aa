//! The egress proxy of one upstream, decided once when the provider is built.
//!
//! The usual variables, either case, are read by hyper-util's matcher with curl's rules:
//! `HTTPS_PROXY` for `https://` upstreams, `HTTP_PROXY` for `http://` ones, `ALL_PROXY` for
//! both, `NO_PROXY` to exempt hosts. A loopback upstream (`localhost`, 127.0.0.0/8, `::1`) is
//! always direct: a sidecar or a local model server never goes out through a proxy.
//!
//! An `https://` upstream goes through a CONNECT tunnel, TLS running end to end inside it; a
//! plain `http://` upstream sends absolute-form requests to the proxy, which then carry
//! `Proxy-Authorization` themselves. Either way the route is a connector ([`RouteConnector`])
//! under the TLS connector, so pooling, timeouts and error classification are the same for
//! every route. Only `http://` proxies are supported; another scheme stops start-up rather than
//! being ignored.

use std::error::Error as StdError;
use std::future::Future;
use std::io::IoSlice;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::header::HeaderValue;
use hyper::http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

/// The variables the matcher reads, for saying why an upstream goes direct.
const VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// How one upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    /// Straight to the upstream.
    Direct,
    /// Absolute-form requests to `proxy` (a plain-HTTP upstream).
    Forward {
        proxy: Uri,
        authorization: Option<HeaderValue>,
    },
    /// A CONNECT tunnel through `proxy` (an HTTPS upstream).
    Tunnel {
        proxy: Uri,
        authorization: Option<HeaderValue>,
    },
}

impl Route {
    /// The route the process environment gives `upstream`.
    pub(super) fn from_env(upstream: &Uri) -> Result<Self, String> {
        Self::choose(upstream, &Matcher::from_env())
    }

    /// The route `matcher` gives `upstream`, loopback exempt.
    pub(super) fn choose(upstream: &Uri, matcher: &Matcher) -> Result<Self, String> {
        if upstream.host().is_none_or(is_loopback) {
            return Ok(Self::Direct);
        }
        let Some(intercept) = matcher.intercept(upstream) else {
            return Ok(Self::Direct);
        };
        let proxy = intercept.uri().clone();
        if proxy.scheme() != Some(&Scheme::HTTP) {
            return Err(format!(
                "proxy for {}: only http:// proxies are supported, not {}://",
                upstream.host().unwrap_or_default(),
                proxy.scheme_str().unwrap_or_default()
            ));
        }
        let authorization = intercept.basic_auth().cloned();
        Ok(if upstream.scheme() == Some(&Scheme::HTTPS) {
            Self::Tunnel {
                proxy,
                authorization,
            }
        } else {
            Self::Forward {
                proxy,
                authorization,
            }
        })
    }

    /// Says at start-up which way `host` is reached: the proxy's address, never its credentials.
    pub(super) fn log(&self, host: &str) {
        match self {
            Self::Direct => {
                let set = VARIABLES
                    .iter()
                    .any(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()));
                if set {
                    tracing::info!(
                        upstream = host,
                        "upstream reached directly: loopback or NO_PROXY"
                    );
                }
            }
            Self::Forward { proxy, .. } | Self::Tunnel { proxy, .. } => {
                let via = if matches!(self, Self::Tunnel { .. }) {
                    "connect"
                } else {
                    "absolute-form"
                };
                tracing::info!(
                    upstream = host,
                    proxy = proxy.authority().map_or("", |a| a.as_str()),
                    via,
                    "upstream reached through a proxy"
                );
            }
        }
    }

    /// The `Proxy-Authorization` each request carries: only absolute-form requests do (a
    /// tunnel sends it once, on its CONNECT).
    pub(super) fn request_authorization(&self) -> Option<HeaderValue> {
        match self {
            Self::Forward { authorization, .. } => authorization.clone(),
            _ => None,
        }
    }

    /// The connector that takes connections this route.
    pub(super) fn connector(&self, http: HttpConnector) -> RouteConnector {
        match self {
            Self::Direct => RouteConnector::Direct(http),
            Self::Forward { proxy, .. } => RouteConnector::Forward {
                proxy: proxy.clone(),
                http,
            },
            Self::Tunnel {
                proxy,
                authorization,
            } => {
                let tunnel = Tunnel::new(proxy.clone(), http);
                RouteConnector::Tunnel(match authorization {
                    Some(auth) => tunnel.with_auth(auth.clone()),
                    None => tunnel,
                })
            }
        }
    }
}

/// `localhost`, 127.0.0.0/8 or `::1` (a URI's host keeps an IPv6 address in brackets).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Opens the TCP connection of a [`Route`]: to the upstream, to the proxy (marked proxied,
/// so the client writes absolute-form requests), or a tunnel through the proxy.
#[derive(Clone)]
pub(super) enum RouteConnector {
    Direct(HttpConnector),
    Forward { proxy: Uri, http: HttpConnector },
    Tunnel(Tunnel<HttpConnector>),
}

impl Service<Uri> for RouteConnector {
    type Response = Routed;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Routed, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Direct(http) | Self::Forward { http, .. } => {
                http.poll_ready(cx).map_err(Into::into)
            }
            Self::Tunnel(tunnel) => tunnel.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Self::Direct(http) => routed(http.call(dst), false),
            Self::Forward { proxy, http } => routed(http.call(proxy.clone()), true),
            Self::Tunnel(tunnel) => routed(tunnel.call(dst), false),
        }
    }
}

fn routed<F, E>(
    connecting: F,
    proxied: bool,
) -> Pin<Box<dyn Future<Output = Result<Routed, BoxError>> + Send>>
where
    F: Future<Output = Result<TokioIo<TcpStream>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    Box::pin(async move {
        let io = connecting.await.map_err(Into::into)?;
        Ok(Routed { io, proxied })
    })
}

/// A TCP connection that knows whether it goes to a forward proxy.
pub(super) struct Routed {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for Routed {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Routed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Routed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> Matcher {
        Matcher::builder()
            .http("http://u:p@proxy.internal:3128")
            .https("http://proxy.internal:3129")
            .no("skip.example, 10.0.0.0/8")
            .build()
    }

    fn route(upstream: &str) -> Route {
        Route::choose(&upstream.parse().unwrap(), &matcher()).unwrap()
    }

    #[test]
    fn loopback_and_no_proxy_hosts_go_direct() {
        for upstream in [
            "http://127.0.0.1:8080/v1",
            "http://127.9.9.9/v1",
            "https://localhost/v1",
            "http://LOCALHOST:1/v1",
            "http://[::1]:8080/v1",
            "https://skip.example/v1",
            "https://api.skip.example/v1",
            "http://10.1.2.3/v1",
        ] {
            assert_eq!(route(upstream), Route::Direct, "{upstream}");
        }
    }

    #[test]
    fn http_upstreams_forward_and_https_upstreams_tunnel() {
        let Route::Forward {
            proxy,
            authorization,
        } = route("http://upstream.test:9/v1")
        else {
            panic!("not forwarded");
        };
        assert_eq!(proxy.authority().unwrap(), "proxy.internal:3128");
        // base64("u:p")
        assert_eq!(authorization.unwrap(), "Basic dTpw");
        let Route::Tunnel {
            proxy,
            authorization,
        } = route("https://api.openai.com/v1")
        else {
            panic!("not tunnelled");
        };
        assert_eq!(proxy.authority().unwrap(), "proxy.internal:3129");
        assert!(authorization.is_none());
    }

    #[test]
    fn only_forwarded_requests_carry_the_proxy_credentials() {
        assert!(route("http://upstream.test/v1")
            .request_authorization()
            .is_some());
        let tunnelled = Matcher::builder().all("http://u:p@proxy:1").build();
        let route = Route::choose(&"https://a.example/".parse().unwrap(), &tunnelled).unwrap();
        assert!(route.request_authorization().is_none());
    }

    #[test]
    fn a_proxy_of_another_scheme_stops_start_up() {
        for proxy in ["socks5://proxy:1080", "https://proxy:443"] {
            let matcher = Matcher::builder().all(proxy).build();
            let error =
                Route::choose(&"https://a.example/".parse().unwrap(), &matcher).unwrap_err();
            assert!(error.contains("only http://"), "{error}");
        }
    }

    #[test]
    fn no_variable_means_direct() {
        let matcher = Matcher::builder().build();
        let route = Route::choose(&"https://a.example/".parse().unwrap(), &matcher).unwrap();
        assert_eq!(route, Route::Direct);
    }
}
