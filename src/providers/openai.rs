//! Any OpenAI-compatible HTTP API, over one pooled hyper client per provider.
//!
//! The client is hyper-util's pooled ("legacy") client used directly, not reqwest: reqwest
//! parses the URL twice per request (its redirect policy and `Response::url`), about half of its
//! cost per proxied request, and neither can be switched off. Here the request URI is built once
//! in [`OpenAiClient::new`] and cloned per attempt.
//!
//! What reqwest did for this client is kept: a connect timeout over TCP *and* TLS, TCP
//! keepalive and `TCP_USER_TIMEOUT`, the platform certificate verifier, ALPN `h2` then
//! `http/1.1`, Basic auth from a `user:password@` in `base_url`, default headers that never
//! override the request's own, and up to two retries of a request an HTTP/2 server refused
//! unprocessed (GOAWAY with NO_ERROR, REFUSED_STREAM). Not kept: redirects are not followed
//! (a 3xx is an upstream status like any other). The `*_PROXY` environment variables are
//! honoured as reqwest did, decided once per provider ([`proxy`]). A response body's reader
//! polls its HTTP/1 connection itself when the body has nothing ready ([`drive`]), so a burst
//! the upstream wrote at once is relayed in one pass, not one chunk per scheduler turn.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    Entry, HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
    HOST, PROXY_AUTHORIZATION, RETRY_AFTER, USER_AGENT,
};
use hyper::{Method, Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error as ClientError};
use hyper_util::rt::TokioTimer;

use self::drive::{Driven, Spawner, Tracked};
use self::proxy::{Route, RouteConnector};
use super::sse::Dialect;
use super::{read_usage, ByteStream, Forwarded, ProviderError, Reply, Upstream, Want};
use crate::config::{Api, OpenAiProviderConfig};
use crate::telemetry::traces::propagation::UpstreamTrace;

/// Most bytes of an upstream error body kept to pass through.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keepalive: idle time before the first probe, and between probes.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
/// Unanswered keepalive probes before the connection is declared dead.
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged before the kernel drops the connection.
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries, on top of the first try, of a request an HTTP/2 server refused unprocessed.
const REFUSED_RETRIES: usize = 2;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// Longest upstream request id passed on to the client.
const MAX_REQUEST_ID: usize = 256;

/// How a provider's `api_key` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Auth {
    /// `Authorization: Bearer KEY` (OpenAI and compatibles).
    Bearer,
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
}
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

type Connector = ConnectTimeout<HttpsConnector<RouteConnector>>;

pub struct OpenAiClient {
    client: Client<Connector, Full<Bytes>>,
    /// `{base_url}/{api path}` by [`Api::index`], without user info.
    uris: [Uri; Api::ALL.len()],
    /// Whether the upstream speaks TLS, hence may negotiate HTTP/2.
    tls: bool,
    host: String,
    /// `Authorization` values, in order: Basic from the URL's user info, Bearer from `api_key`.
    authorization: Vec<HeaderValue>,
    /// `x-api-key` (Anthropic's way of sending `api_key`).
    api_key: Option<HeaderValue>,
    /// Configured headers, sent unless the request sets the same name.
    headers: HeaderMap,
    /// `Proxy-Authorization` for a forward proxy's absolute-form requests.
    proxy_authorization: Option<HeaderValue>,
    /// `Host` for a plain-HTTP upstream (always HTTP/1.1), made once: hyper-util would format
    /// it per request. Over TLS, HTTP/2 may be negotiated, which sends no `Host`.
    host_header: Option<HeaderValue>,
    timeout: Duration,
    idle_timeout: Duration,
    /// Largest JSON answer accepted; a larger one fails the attempt.
    max_response_bytes: usize,
    /// Longest stream event (line) accepted.
    max_event_bytes: usize,
    /// Ask for a stream's usage when the client did not.
    inject_stream_usage: bool,
}

impl OpenAiClient {
    pub fn new(config: &OpenAiProviderConfig) -> Result<Self, String> {
        Self::build(config, Auth::Bearer, Api::path)
    }

    /// The HTTP side of a provider: `auth` says how `api_key` is sent, `path` the path after
    /// `base_url` for each API.
    pub(super) fn build(
        config: &OpenAiProviderConfig,
        auth: Auth,
        path: fn(Api) -> &'static str,
    ) -> Result<Self, String> {
        crate::install_crypto_provider();
        let mut url = endpoint(&config.base_url, path(Api::Chat))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut authorization = Vec::new();
        authorization.extend(basic_auth_from(&mut url)?);
        let mut api_key = None;
        if let Some(key) = &config.api_key {
            let text = match auth {
                Auth::Bearer => format!("Bearer {key}"),
                Auth::XApiKey => key.clone(),
            };
            let mut value = HeaderValue::from_str(&text)
                .map_err(|_| "api_key: not a valid header value".to_string())?;
            value.set_sensitive(true);
            match auth {
                Auth::Bearer => authorization.push(value),
                Auth::XApiKey => api_key = Some(value),
            }
        }
        // The URL's serialization is normalized (case, default port, percent-encoding).
        let uri =
            |url: &reqwest::Url| Uri::try_from(url.as_str()).map_err(|e| format!("base_url: {e}"));
        // One URI per API, in `Api::ALL`'s order (whatever the number of APIs).
        let uris: Vec<Uri> = Api::ALL
            .iter()
            .map(|api| {
                let mut url = endpoint(&config.base_url, path(*api))?;
                basic_auth_from(&mut url)?;
                uri(&url)
            })
            .collect::<Result<_, String>>()?;
        let uris: [Uri; Api::ALL.len()] = uris
            .try_into()
            .map_err(|_| "base_url: one URI per API".to_string())?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            headers.insert(name, value);
        }
        let tls = url.scheme() == "https";
        let host_header = match uris[0].authority() {
            // The URL's serialization drops a default port, as hyper-util's `Host` does.
            Some(authority) if !tls => Some(
                HeaderValue::from_str(authority.as_str()).map_err(|e| format!("base_url: {e}"))?,
            ),
            _ => None,
        };
        let route = Route::from_env(&uris[0])?;
        route.log(&host);
        Ok(Self {
            client: build_client(config.connect_timeout, &route)?,
            proxy_authorization: route.request_authorization(),
            uris,
            api_key,
            tls,
            host,
            authorization,
            headers,
            host_header,
            timeout: config.timeout,
            idle_timeout: config.stream_idle_timeout,
            max_response_bytes: config.max_response_bytes,
            max_event_bytes: config.max_event_bytes,
            inject_stream_usage: config.inject_stream_usage,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One attempt at `api`, bounded by the provider's `timeout`: the whole JSON answer, or a
    /// stream up to its first content. The OpenAI APIs pass through; Anthropic's Messages API
    /// is translated (see [`super::messages`]).
    pub async fn call(
        &self,
        api: Api,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Reply, ProviderError> {
        if api == Api::Messages {
            return self
                .bounded(self.messages(body, want, trace, forwarded))
                .await;
        }
        self.forward(api, body, want, trace, forwarded).await
    }

    /// One attempt that passes `body` through to `api`'s endpoint and its answer back as the
    /// upstream wrote it — a stream read in `api`'s dialect, usage read in `api`'s shape —
    /// bounded by the provider's `timeout`. Every kind of provider whose upstream speaks the
    /// client's API sends it this way.
    pub(super) async fn forward(
        &self,
        api: Api,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Reply, ProviderError> {
        self.bounded(async {
            let (head, body) = self
                .exchange(api, body, want.is_stream(), trace, forwarded)
                .await?;
            let request_id = request_id(&head.headers);
            if let Want::Stream { strip_usage } = want {
                let rest = self.body_stream(body);
                let mut upstream =
                    Upstream::new(None, rest, api.dialect(), strip_usage, self.max_event_bytes)
                        .with_request_id(request_id);
                upstream.prime().await?;
                Ok(Reply::Stream(upstream))
            } else {
                let body = self.read_body(body, &head.headers).await?;
                let (usage, response_model) = read_usage(api, &body)?;
                Ok(Reply::Json {
                    body,
                    usage,
                    response_model,
                    request_id,
                })
            }
        })
        .await
    }

    /// `attempt` within the provider's `timeout` (one timer for the whole attempt, priming
    /// included).
    pub(super) async fn bounded(
        &self,
        attempt: impl Future<Output = Result<Reply, ProviderError>>,
    ) -> Result<Reply, ProviderError> {
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout),
        }
    }

    /// A Messages API request as a chat completion, its answer back in Anthropic's shapes
    /// (see [`super::messages`]).
    async fn messages(
        &self,
        body: Bytes,
        want: Want,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Reply, ProviderError> {
        let chat = super::messages::chat_request(&body, self.inject_stream_usage)?;
        let (head, answer) = self
            .exchange(Api::Chat, chat, want.is_stream(), trace, forwarded)
            .await
            .map_err(super::messages::error)?;
        if want.is_stream() {
            let events = super::messages::events(self.body_stream(answer), self.max_event_bytes);
            let mut upstream = Upstream::new(
                None,
                events,
                Dialect::Anthropic,
                false,
                self.max_event_bytes,
            )
            .with_request_id(request_id(&head.headers));
            upstream.prime().await?;
            return Ok(Reply::Stream(upstream));
        }
        let answer = self.read_body(answer, &head.headers).await?;
        super::messages::message(&answer, request_id(&head.headers))
    }

    /// Whether streamed requests may carry `stream_options.include_usage` the client did not
    /// set.
    pub(super) fn injects_stream_usage(&self) -> bool {
        self.inject_stream_usage
    }

    /// The longest event (line) accepted.
    pub(super) fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Sends and reads the answer's head: a 2xx answer's head and body, or its status as a
    /// [`ProviderError::Status`] (with the upstream's body, capped, and `Retry-After`).
    pub(super) async fn exchange(
        &self,
        api: Api,
        body: Bytes,
        stream: bool,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<(hyper::http::response::Parts, Driven), ProviderError> {
        let response = self
            .send(api, body, stream, trace, forwarded)
            .await
            .map_err(|e| classify(&e))?;
        let (head, body) = response.into_parts();
        let body = Driven::new(body, &head.extensions);
        if head.status.is_success() {
            return Ok((head, body));
        }
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = super::retry_after(
            head.headers.get(RETRY_AFTER_MS).map(HeaderValue::as_bytes),
            head.headers.get(RETRY_AFTER).map(HeaderValue::as_bytes),
        );
        let request_id = request_id(&head.headers);
        let body = read_capped(body, MAX_ERROR_BODY).await;
        Err(ProviderError::Status {
            status: head.status.as_u16(),
            body,
            content_type,
            retry_after,
            request_id,
        })
    }

    /// A streamed answer's body, cut when silent past `stream_idle_timeout`.
    pub(super) fn body_stream(&self, body: Driven) -> ByteStream {
        idle_limited(BodyDataStream::new(body), self.idle_timeout)
    }

    /// A whole answer, at most `max_response_bytes`.
    pub(super) async fn read_body(
        &self,
        body: Driven,
        headers: &HeaderMap,
    ) -> Result<Bytes, ProviderError> {
        read_limited(body, headers, self.max_response_bytes).await
    }

    /// Sends the request; retries it (at most [`REFUSED_RETRIES`] times) while an HTTP/2
    /// server refuses it unprocessed.
    async fn send(
        &self,
        api: Api,
        body: Bytes,
        stream: bool,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Result<Response<Incoming>, ClientError> {
        // Only HTTP/2, negotiated over TLS, refuses requests this way: keep the body for a
        // retry only then.
        let spare = self.tls.then(|| body.clone());
        let mut result = self
            .client
            .request(self.request(api, body, stream, trace, forwarded))
            .await;
        if let Some(body) = spare {
            for _ in 0..REFUSED_RETRIES {
                match &result {
                    Err(e) if refused_unprocessed(e) => {
                        let request = self.request(api, body.clone(), stream, trace, forwarded);
                        result = self.client.request(request).await;
                    }
                    _ => break,
                }
            }
        }
        result
    }

    /// The request of one try: the gateway's own headers, then the configured ones, then the
    /// client's `forwarded` ones, each only where the name is still free.
    fn request(
        &self,
        api: Api,
        body: Bytes,
        stream: bool,
        trace: &UpstreamTrace,
        forwarded: &Forwarded,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uris[api.index()].clone();
        let headers = request.headers_mut();
        // Static header values: no copy per request.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        for value in &self.authorization {
            headers.append(AUTHORIZATION, value.clone());
        }
        if let Some(key) = &self.api_key {
            headers.insert(X_API_KEY, key.clone());
        }
        if let Some(traceparent) = &trace.traceparent {
            headers.insert(TRACEPARENT, traceparent.clone());
        }
        if let Some(tracestate) = &trace.tracestate {
            headers.insert(TRACESTATE, tracestate.clone());
        }
        for (name, value) in &self.headers {
            if let Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
            }
        }
        for (name, value) in forwarded.headers() {
            if let Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
            }
        }
        if let Entry::Vacant(slot) = headers.entry(USER_AGENT) {
            slot.insert(forwarded.user_agent());
        }
        if let Some(host) = &self.host_header {
            if let Entry::Vacant(slot) = headers.entry(HOST) {
                slot.insert(host.clone());
            }
        }
        if let Some(credentials) = &self.proxy_authorization {
            headers.insert(PROXY_AUTHORIZATION, credentials.clone());
        }
        request
    }
}

/// The upstream's id of the request: `x-request-id` (OpenAI and most compatibles), else
/// `request-id` (Anthropic); an implausibly long one is dropped rather than passed on.
pub(super) fn request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(X_REQUEST_ID)
        .or_else(|| headers.get(REQUEST_ID))
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .cloned()
}

/// `{base_url}/{suffix}`, the suffix added to the path: a query in `base_url` (Azure's classic
/// `…/deployments/NAME?api-version=…`) stays after it.
fn endpoint(base_url: &str, suffix: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base_url).map_err(|e| format!("base_url: {e}"))?;
    let path = format!("{}/{suffix}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// The pooled client: keep-alive pool, `TCP_NODELAY`, TLS with the platform verifier and the
/// installed crypto provider, HTTP/1.1 to `http://` and ALPN-negotiated HTTP/2 or HTTP/1.1 to
/// `https://`, each connection taken the way `route` says.
fn build_client(
    connect_timeout: Duration,
    route: &Route,
) -> Result<Client<Connector, Full<Bytes>>, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_keepalive_interval(Some(TCP_KEEPALIVE));
    http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(provider)
        .map_err(|e| format!("tls: {e}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(route.connector(http));
    Ok(Client::builder(Spawner)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(ConnectTimeout {
            inner: https,
            limit: connect_timeout,
        }))
}

/// Removes `user:password@` from `url` and returns it as a Basic `Authorization` value.
fn basic_auth_from(url: &mut reqwest::Url) -> Result<Option<HeaderValue>, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "base_url: user info is not UTF-8".to_string())
    };
    let user = decode(url.username())?;
    let password = url.password().map(decode).transpose()?;
    if user.is_empty() && password.is_none() {
        return Ok(None);
    }
    let strip = |url: &mut reqwest::Url| url.set_username("").and_then(|()| url.set_password(None));
    strip(url).map_err(|()| "base_url: cannot remove user info".to_string())?;
    let credentials = format!("{user}:{}", password.unwrap_or_default());
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| "base_url: user info is not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// The transport error's kind, as the router and the breakers see it. As reqwest did: a
/// timeout anywhere in the chain (connect timeout included) is a timeout; then a failure to
/// connect (refused, DNS, TLS); anything else broke mid-request.
fn classify(e: &(dyn StdError + 'static)) -> ProviderError {
    if chain(e).any(is_timeout) {
        ProviderError::Timeout
    } else if e
        .downcast_ref::<ClientError>()
        .is_some_and(ClientError::is_connect)
    {
        ProviderError::Connect(deepest_message(e))
    } else {
        ProviderError::Transport(deepest_message(e))
    }
}

fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e| e.source())
}

fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    e.is::<ConnectTimedOut>()
        || e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        || e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
}

/// The innermost cause's message: the most specific, and never the URL (which could carry
/// credentials).
fn deepest_message(e: &(dyn StdError + 'static)) -> String {
    chain(e).last().unwrap_or(e).to_string()
}

/// Whether an HTTP/2 server turned the request away unprocessed, so it is safe to send again:
/// a graceful GOAWAY, or REFUSED_STREAM (RFC 9113 §8.7).
fn refused_unprocessed(e: &ClientError) -> bool {
    chain(e)
        .filter_map(|e| e.downcast_ref::<h2::Error>())
        .any(|e| {
            e.is_remote()
                && ((e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR))
                    || (e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM)))
        })
}

/// Reads a whole answer of at most `limit` bytes: a larger declared `Content-Length` fails
/// before reading, a body that grows past it fails as soon as it does (and is dropped, which
/// closes the connection), so memory per request stays bounded.
async fn read_limited(
    mut body: Driven,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ProviderError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProviderError::TooLarge { limit });
    }
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        if out.len() + chunk.len() > limit {
            return Err(ProviderError::TooLarge { limit });
        }
        if out.is_empty() {
            if body.is_end_stream() {
                return Ok(chunk); // the usual answer: one chunk, no copy
            }
            // The declared length is bounded by `limit` by now.
            out.reserve(declared.map_or(chunk.len(), |n| n as usize));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

async fn read_capped(mut body: Driven, cap: usize) -> Bytes {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Bytes::from(out)
}

/// Cuts a stream that stays silent longer than `idle` (counted from when the next chunk is
/// asked for, as with a fresh `timeout` per chunk, but one timer re-armed per chunk).
fn idle_limited(
    inner: impl futures_util::Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static,
    idle: Duration,
) -> ByteStream {
    Box::pin(IdleLimited {
        inner: Some(Box::pin(inner)),
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
        armed: false,
    })
}

struct IdleLimited<S> {
    /// `None` once the stream ended, failed or timed out.
    inner: Option<Pin<Box<S>>>,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The timer runs for the chunk being waited for.
    armed: bool,
}

impl<S> futures_util::Stream for IdleLimited<S>
where
    S: futures_util::Stream<Item = Result<Bytes, hyper::Error>>,
{
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.armed {
            this.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + this.idle);
            this.armed = true;
        }
        let item = match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.armed = false;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(Some(Err(e))) => Some(Err(classify(&e))),
            Poll::Ready(None) => None,
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Some(Err(ProviderError::Timeout)),
                Poll::Pending => return Poll::Pending,
            },
        };
        this.inner = None;
        Poll::Ready(item)
    }
}

/// Bounds a whole connection set-up, TCP and TLS together, by the connect timeout (the TCP
/// connector's own timeout covers only the TCP part).
#[derive(Clone)]
struct ConnectTimeout<C> {
    inner: C,
    limit: Duration,
}

/// The connect timeout expired.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
struct ConnectTimedOut;

type BoxError = Box<dyn StdError + Send + Sync>;

impl<C> tower_service::Service<Uri> for ConnectTimeout<C>
where
    C: tower_service::Service<Uri>,
    C::Response: Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Tracked<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(result) => result.map(Tracked::new).map_err(Into::into),
                Err(_) => Err(ConnectTimedOut.into()),
            }
        })
    }
}

mod drive;
mod proxy;
#[cfg(test)]
mod tests;
