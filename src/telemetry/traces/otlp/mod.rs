//! The trace pipeline: the tracer the gateway's spans start from ([`super::span`]) and, when
//! configured, a batched OTLP exporter.
//!
//! [`Pipeline::build`] always yields a tracer, so every request gets a trace id (the
//! `x-trace-id` header, log correlation, `traceparent` sent upstream) even with no collector.
//! Without an exporter the sampler is parent-based "off": nothing is recorded for new traces
//! and a caller's sampling decision is passed on untouched. With one, sampled spans go through
//! the gateway's own processor ([`batch`]): each span is encoded where it ends ([`encode`]),
//! into a bounded queue that drops when full, and an export thread sends the requests through
//! a [`ReportingExporter`] ([`export`]), so a dead or slow collector never touches a request.
//!
//! OTLP/gRPC runs on its own small tokio runtime (tonic needs one, and actix's would hang at
//! shutdown); [`Pipeline::shutdown`] flushes, then drops that runtime. Call it from
//! synchronous code, after the HTTP server has stopped.

pub mod batch;
pub mod encode;
pub mod export;
pub mod report;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;

use super::span::{Root, Sampler, Tracer};
use crate::config::{OtlpConfig, OtlpProtocol};
use batch::Processor;
use encode::Encoder;
use report::ReportingExporter;
pub use settings::Settings;

/// Instrumentation scope of every gatewayz span.
pub const SCOPE: &str = "gatewayz";

/// Why the trace pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("telemetry.otlp: {0}")]
    Settings(String),
    #[error("telemetry.otlp: cannot build the exporter: {0}")]
    Exporter(String),
    #[error("telemetry.otlp: cannot start the gRPC runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("telemetry.otlp: cannot start the span export thread: {0}")]
    Thread(std::io::Error),
}

/// The tracer, and what must outlive it.
pub struct Pipeline {
    tracer: Arc<Tracer>,
    /// The export queue; `None` without an exporter.
    processor: Option<Arc<Processor>>,
    /// Drives tonic's connection for OTLP/gRPC; dropped after the processor is shut down.
    runtime: Option<tokio::runtime::Runtime>,
    /// What is exported where, for the start-up log line; `None` without an exporter.
    pub target: Option<String>,
}

impl Pipeline {
    /// Builds the pipeline from `[telemetry.otlp]` and the process environment.
    pub fn build(config: Option<&OtlpConfig>) -> Result<Self, OtlpError> {
        let env = |name: &str| std::env::var(name).ok();
        match settings::resolve(config, &env).map_err(OtlpError::Settings)? {
            Some(settings) => Self::exporting(&settings),
            None => Ok(Self::local()),
        }
    }

    /// No exporter: ids and propagation only. A new trace is not sampled; a caller's
    /// decision is passed on.
    pub fn local() -> Self {
        Self {
            tracer: Arc::new(Tracer::new(
                Sampler::parent_based(Root::Never),
                scope(),
                None,
            )),
            processor: None,
            runtime: None,
            target: None,
        }
    }

    fn exporting(settings: &Settings) -> Result<Self, OtlpError> {
        crate::install_crypto_provider();
        let (exporter, runtime) = match settings.protocol {
            OtlpProtocol::HttpProtobuf => (export::Exporter::new(settings), None),
            OtlpProtocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otlp-grpc")
                    .enable_all()
                    .build()?;
                let exporter = {
                    let _entered = runtime.enter();
                    export::Exporter::new(settings)
                };
                (exporter, Some(runtime))
            }
        };
        let exporter = exporter.map_err(OtlpError::Exporter)?;
        let processor = Arc::new(
            Processor::new(
                ReportingExporter::new(exporter, report::REPORT_INTERVAL),
                settings.batching,
                Encoder::new(&resource(settings.service_name.as_deref())),
            )
            .map_err(OtlpError::Thread)?,
        );
        let protocol = match settings.protocol {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        };
        Ok(Self {
            tracer: Arc::new(Tracer::new(
                settings.sampler,
                scope(),
                Some(Arc::clone(&processor)),
            )),
            processor: Some(processor),
            runtime,
            target: Some(format!(
                "{protocol} {}",
                settings::redacted(&settings.endpoint)
            )),
        })
    }

    /// The tracer the gateway's spans start from.
    pub fn tracer(&self) -> Arc<Tracer> {
        Arc::clone(&self.tracer)
    }

    /// Exports what is queued and stops the exporter. Blocking: at most `limit`, plus up to
    /// 200 ms to stop the gRPC runtime.
    pub fn shutdown(self, limit: Duration) {
        if let Some(processor) = &self.processor {
            if let Err(e) = processor.shutdown(limit) {
                tracing::warn!(error = %e, "trace pipeline shutdown");
            }
        }
        if let Some(runtime) = self.runtime {
            runtime.shutdown_timeout(Duration::from_millis(200));
        }
    }
}

/// The gateway's instrumentation scope: its name, no version (as the SDK's tracer had it).
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE).build()
}

/// `service.name` (file, then `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, then
/// `gatewayz`), `service.version`, and the rest of `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(service_name: Option<&str>) -> Resource {
    let detected = Resource::builder().build();
    let name = match service_name {
        Some(name) => name.to_owned(),
        None => match detected.get(&opentelemetry::Key::from_static_str("service.name")) {
            Some(v) if !v.as_str().starts_with("unknown_service") => v.as_str().into_owned(),
            _ => "gatewayz".to_owned(),
        },
    };
    Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}
