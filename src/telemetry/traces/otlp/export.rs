//! The span exporter: each batch encoded once by [`Encoder`] and sent over OTLP/HTTP
//! (protobuf) or OTLP/gRPC, retried as the OTLP specification asks.
//!
//! It replaces `opentelemetry-otlp`'s exporter, which converted every span into intermediate
//! structs before encoding (and, on gRPC, cloned the whole batch first). What goes on the wire
//! is the same: the same request bytes (`encode`'s tests), `Content-Type:
//! application/x-protobuf` on HTTP, the `/opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! method on gRPC, the configured headers (or metadata), the same timeout, and the same retry
//! policy: up to 3 retries, backing off from 100 ms (doubling, at most 1.6 s, up to 100 ms of
//! jitter), within the export's timeout; HTTP 429, 502, 503, 504 and connection errors are
//! retried, a `Retry-After` in seconds is honoured; gRPC's transient codes likewise.
//!
//! Runs on the span processor's export thread ([`super::batch`]), which blocks on each
//! export: the HTTP client is blocking, and gRPC calls go through a tonic channel whose
//! connection lives on the pipeline's small runtime. The request comes encoded: each span was
//! written where it ended.

use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::settings::Settings;
use crate::config::OtlpProtocol;

/// The `User-Agent` of OTLP/HTTP exports.
const USER_AGENT: &str = concat!("gatewayz/", env!("CARGO_PKG_VERSION"));

/// The OTLP/gRPC method.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Why one attempt failed, and whether another may follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Worth another attempt after the backoff.
    Transient(String),
    /// Worth another attempt, not before this long (the collector said so).
    Throttled(Duration, String),
    /// Another attempt would fail the same way.
    Permanent(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Throttled(_, m) | Self::Permanent(m) => m,
        }
    }
}

/// The retry policy's state for one export: pure, so its decisions are tested without a
/// clock or a collector.
#[derive(Debug)]
pub struct Backoff {
    retries: usize,
    delay: Duration,
    cap: Duration,
}

impl Backoff {
    pub const MAX_RETRIES: usize = 3;
    const INITIAL: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(1600);
    /// Longest wait a collector's throttle can impose.
    const MAX_THROTTLE: Duration = Duration::from_secs(600);
    pub const MAX_JITTER: Duration = Duration::from_millis(100);

    pub fn new() -> Self {
        Self {
            retries: 0,
            delay: Self::INITIAL,
            cap: Self::MAX,
        }
    }

    /// After `failure`, with `left` of the export's time budget: how long to wait before the
    /// next attempt, or `None` to give up. `jitter` is added to the wait (at most
    /// [`Backoff::MAX_JITTER`]).
    pub fn after(
        &mut self,
        failure: &Failure,
        left: Duration,
        jitter: Duration,
    ) -> Option<Duration> {
        if left.is_zero() || self.retries >= Self::MAX_RETRIES {
            return None;
        }
        match failure {
            Failure::Permanent(_) => return None,
            Failure::Transient(_) => {}
            Failure::Throttled(wait, _) => {
                let wait = (*wait).min(Self::MAX_THROTTLE);
                if wait > self.cap {
                    self.cap = Self::MAX_THROTTLE;
                }
                self.delay = self.delay.max(wait);
            }
        }
        let sleep = self.delay.saturating_add(jitter).min(self.cap);
        if sleep >= left {
            return None;
        }
        self.retries += 1;
        self.delay = self.delay.saturating_mul(2).min(self.cap);
        Some(sleep)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Where batches go.
enum Transport {
    Http(Http),
    Grpc(Grpc),
}

/// Sends encoded requests to the collector.
pub struct Exporter {
    transport: Transport,
    timeout: Duration,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("otlp::Exporter")
    }
}

impl Exporter {
    /// The exporter for `settings`. For gRPC, call it inside the runtime that will drive the
    /// channel (`Runtime::enter`).
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let transport = match settings.protocol {
            OtlpProtocol::HttpProtobuf => Transport::Http(Http::new(settings)?),
            OtlpProtocol::Grpc => Transport::Grpc(Grpc::new(settings)?),
        };
        Ok(Self {
            transport,
            timeout: settings.timeout,
        })
    }

    /// Sends one `ExportTraceServiceRequest`, retried as the policy says within the timeout.
    /// Blocks the calling thread.
    pub fn export(&self, request: Bytes) -> Result<(), String> {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        loop {
            let left = self.timeout.saturating_sub(started.elapsed());
            let failure = match self.attempt(&request, left) {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let left = self.timeout.saturating_sub(started.elapsed());
            match backoff.after(&failure, left, jitter()) {
                Some(wait) => std::thread::sleep(wait),
                None => return Err(failure.message().to_owned()),
            }
        }
    }

    fn attempt(&self, body: &Bytes, left: Duration) -> Result<(), Failure> {
        let answer = match &self.transport {
            Transport::Http(http) => http.send(body.clone(), left)?,
            Transport::Grpc(grpc) => futures_executor::block_on(grpc.send(body.clone(), left))?,
        };
        partial_success(&answer);
        Ok(())
    }
}

/// Up to [`Backoff::MAX_JITTER`].
fn jitter() -> Duration {
    let max = Backoff::MAX_JITTER.as_millis() as u64;
    Duration::from_millis(rand::random_range(0..=max))
}

/// A collector that kept some spans says so in the answer; logged at debug, as the SDK's
/// exporter did (below the `opentelemetry-otlp=error` directive's level).
fn partial_success(answer: &[u8]) {
    let Ok(response) = ExportTraceServiceResponse::decode(answer) else {
        return;
    };
    if let Some(partial) = response.partial_success {
        if partial.rejected_spans > 0 || !partial.error_message.is_empty() {
            tracing::debug!(
                rejected_spans = partial.rejected_spans,
                message = %partial.error_message,
                "the OTLP collector rejected spans"
            );
        }
    }
}

/// OTLP/HTTP with protobuf bodies.
struct Http {
    client: reqwest::blocking::Client,
    endpoint: reqwest::Url,
    headers: reqwest::header::HeaderMap,
}

impl Http {
    fn new(settings: &Settings) -> Result<Self, String> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
        let endpoint = reqwest::Url::parse(&settings.endpoint).map_err(|e| {
            format!(
                "endpoint {:?}: {e}",
                super::settings::redacted(&settings.endpoint)
            )
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        for (name, value) in &settings.headers {
            // The file's are validated with the configuration; a bad pair from the
            // environment is skipped, as the SDK did.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        // A blocking client owns a runtime that must not be built or dropped on an async
        // runtime's thread: build it on one of its own.
        let client = std::thread::spawn(|| reqwest::blocking::Client::builder().build())
            .join()
            .map_err(|_| "the HTTP client's thread panicked".to_owned())?
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            endpoint,
            headers,
        })
    }

    fn send(&self, body: Bytes, timeout: Duration) -> Result<Vec<u8>, Failure> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .timeout(timeout)
            .body(body)
            .send()
            .map_err(|e| Failure::Transient(format!("{}", without_url(e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.bytes().map(|b| b.to_vec()).unwrap_or_default());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(http_failure(status.as_u16(), retry_after))
    }
}

/// The OTLP/HTTP specification's retryable statuses.
pub fn http_failure(status: u16, retry_after: Option<Duration>) -> Failure {
    let message = format!("the collector answered HTTP {status}");
    match (status, retry_after) {
        (429 | 503, Some(wait)) => Failure::Throttled(wait, message),
        (429 | 502 | 503 | 504, _) => Failure::Transient(message),
        _ => Failure::Permanent(message),
    }
}

/// reqwest's error without the URL it names (it may hold credentials).
fn without_url(e: reqwest::Error) -> reqwest::Error {
    e.without_url()
}

/// OTLP/gRPC: a unary call whose request is the encoded bytes.
struct Grpc {
    client: tonic::client::Grpc<tonic::transport::Channel>,
    metadata: tonic::metadata::MetadataMap,
}

impl Grpc {
    fn new(settings: &Settings) -> Result<Self, String> {
        let channel = tonic::transport::Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|e| {
                format!(
                    "endpoint {:?}: {e}",
                    super::settings::redacted(&settings.endpoint)
                )
            })?
            .timeout(settings.timeout)
            .connect_lazy();
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (name, value) in &settings.headers {
            if let (Ok(name), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_str()),
            ) {
                metadata.insert(name, value);
            }
        }
        Ok(Self {
            client: tonic::client::Grpc::new(channel),
            metadata,
        })
    }

    async fn send(&self, body: Bytes, timeout: Duration) -> Result<Vec<u8>, Failure> {
        let mut client = self.client.clone();
        client
            .ready()
            .await
            .map_err(|e| Failure::Transient(format!("the collector is unreachable: {e}")))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(timeout);
        let path = http::uri::PathAndQuery::from_static(GRPC_EXPORT);
        let response = client
            .unary(request, path, Raw)
            .await
            .map_err(|status| grpc_failure(status.code(), status.message()))?;
        Ok(response.into_inner().to_vec())
    }
}

/// The OTLP/gRPC specification's retryable codes. `RESOURCE_EXHAUSTED` is retried only with a
/// `RetryInfo`, which this exporter does not decode: it is not retried.
pub fn grpc_failure(code: tonic::Code, message: &str) -> Failure {
    use tonic::Code;
    let text = format!("the collector answered {code:?}: {message}");
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Failure::Transient(text),
        _ => Failure::Permanent(text),
    }
}

/// A codec that sends bytes as they are and hands the answer back as bytes.
#[derive(Debug, Clone, Copy)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Self::Encoder {
        Raw
    }

    fn decoder(&mut self) -> Self::Decoder {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_JITTER: Duration = Duration::ZERO;

    #[test]
    fn transient_failures_back_off_three_times_then_give_up() {
        let mut b = Backoff::new();
        let f = Failure::Transient("x".into());
        let ms = Duration::from_millis;
        let left = Duration::from_secs(10);
        assert_eq!(b.after(&f, left, NO_JITTER), Some(ms(100)));
        assert_eq!(b.after(&f, left, ms(30)), Some(ms(230)));
        assert_eq!(b.after(&f, left, NO_JITTER), Some(ms(400)));
        assert_eq!(b.after(&f, left, NO_JITTER), None);
    }

    #[test]
    fn permanent_failures_and_a_spent_budget_are_not_retried() {
        let ms = Duration::from_millis;
        assert_eq!(
            Backoff::new().after(&Failure::Permanent("x".into()), ms(10_000), NO_JITTER),
            None
        );
        // The wait would not end before the deadline.
        assert_eq!(
            Backoff::new().after(&Failure::Transient("x".into()), ms(100), NO_JITTER),
            None
        );
        assert_eq!(
            Backoff::new().after(&Failure::Transient("x".into()), Duration::ZERO, NO_JITTER),
            None
        );
    }

    #[test]
    fn a_throttle_is_honoured_and_raises_the_cap() {
        let mut b = Backoff::new();
        let s = Duration::from_secs;
        let throttled = Failure::Throttled(s(5), "x".into());
        assert_eq!(b.after(&throttled, s(60), NO_JITTER), Some(s(5)));
        // The next backoff starts from the throttle, doubled.
        assert_eq!(
            b.after(&Failure::Transient("x".into()), s(60), NO_JITTER),
            Some(s(10))
        );
        // A throttle longer than what is left gives up.
        assert_eq!(Backoff::new().after(&throttled, s(4), NO_JITTER), None);
    }

    #[test]
    fn statuses_and_codes_are_classified_as_the_specification_says() {
        let s = Duration::from_secs;
        assert!(matches!(http_failure(429, Some(s(2))), Failure::Throttled(w, _) if w == s(2)));
        assert!(matches!(http_failure(503, None), Failure::Transient(_)));
        for status in [429, 502, 504] {
            assert!(
                matches!(http_failure(status, None), Failure::Transient(_)),
                "{status}"
            );
        }
        for status in [400, 401, 404, 413, 500] {
            assert!(
                matches!(http_failure(status, Some(s(1))), Failure::Permanent(_)),
                "{status}"
            );
        }
        assert!(matches!(
            grpc_failure(tonic::Code::Unavailable, ""),
            Failure::Transient(_)
        ));
        assert!(matches!(
            grpc_failure(tonic::Code::ResourceExhausted, ""),
            Failure::Permanent(_)
        ));
        assert!(matches!(
            grpc_failure(tonic::Code::Unauthenticated, ""),
            Failure::Permanent(_)
        ));
    }
}
