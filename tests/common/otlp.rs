//! A protocol-faithful OTLP trace receiver for black-box tests: OTLP/HTTP (protobuf,
//! `POST /v1/traces`) or OTLP/gRPC (`TraceService/Export`), on 127.0.0.1 port 0, decoding
//! real `ExportTraceServiceRequest`s with `opentelemetry-proto` and keeping the spans for
//! assertions. Tests poll it with a deadline ([`Receiver::wait_for`]), never sleep-and-hope.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// Span kinds as OTLP numbers them.
pub const KIND_SERVER: i32 = 2;
pub const KIND_CLIENT: i32 = 3;
/// Status code ERROR.
pub const STATUS_ERROR: i32 = 2;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub status_code: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// `service.name` of the resource that sent it.
    pub service: String,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&serde_json::Value> {
        self.attributes.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(|v| v.as_str())
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(|v| v.as_i64())
    }
}

type Store = Arc<Mutex<Vec<Span>>>;

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    grpc: bool,
    spans: Store,
}

impl Receiver {
    /// OTLP/HTTP protobuf on `POST /v1/traces`.
    pub fn http() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Store::default();
        let store = spans.clone();
        // The server thread lives as long as the test process.
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                actix_web::HttpServer::new(move || {
                    let store = store.clone();
                    actix_web::App::new().route(
                        "/v1/traces",
                        actix_web::web::post().to(move |body: actix_web::web::Bytes| {
                            let store = store.clone();
                            async move {
                                match ExportTraceServiceRequest::decode(body) {
                                    Ok(request) => {
                                        keep(&store, request);
                                        actix_web::HttpResponse::Ok()
                                            .content_type("application/x-protobuf")
                                            .body(
                                                ExportTraceServiceResponse::default()
                                                    .encode_to_vec(),
                                            )
                                    }
                                    Err(e) => actix_web::HttpResponse::BadRequest()
                                        .body(format!("not an ExportTraceServiceRequest: {e}")),
                                }
                            }
                        }),
                    )
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        Self {
            addr,
            grpc: false,
            spans,
        }
    }

    /// OTLP/gRPC.
    pub fn grpc() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Store::default();
        let collector = Collector {
            spans: spans.clone(),
        };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tonic::transport::Server::builder()
                    .serve_with_incoming(
                        TraceServiceServer::new(collector),
                        tonic::transport::server::TcpIncoming::from(listener),
                    )
                    .await
                    .unwrap();
            });
        });
        Self {
            addr,
            grpc: true,
            spans,
        }
    }

    /// The endpoint to configure: the full traces URL (HTTP) or the address (gRPC).
    pub fn endpoint(&self) -> String {
        if self.grpc {
            format!("http://{}", self.addr)
        } else {
            format!("http://{}/v1/traces", self.addr)
        }
    }

    /// A `[telemetry.otlp]` section pointing at this receiver.
    pub fn config_section(&self) -> String {
        format!(
            "[telemetry.otlp]\nendpoint = \"{}\"\nprotocol = \"{}\"\n",
            self.endpoint(),
            if self.grpc { "grpc" } else { "http/protobuf" }
        )
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Polls until `done` holds for the spans received so far, or panics after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        super::poll(limit, || Some(self.spans()).filter(|spans| done(spans))).unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}; received:\n{:#?}",
                self.spans()
            )
        })
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

struct Collector {
    spans: Store,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.spans, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn keep(store: &Store, request: ExportTraceServiceRequest) {
    let mut out = store.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| json(v.value.as_ref()))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(Span {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    status_code: span.status.map_or(0, |s| s.code),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|kv| (kv.key, json(kv.value.and_then(|v| v.value).as_ref())))
                        .collect(),
                    service: service.clone(),
                });
            }
        }
    }
}

fn json(value: Option<&AnyValue>) -> serde_json::Value {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone().into(),
        Some(AnyValue::IntValue(i)) => (*i).into(),
        Some(AnyValue::DoubleValue(d)) => (*d).into(),
        Some(AnyValue::BoolValue(b)) => (*b).into(),
        Some(other) => format!("{other:?}").into(),
        None => serde_json::Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
