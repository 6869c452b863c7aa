//! The span processor: each span is encoded on the thread where it ends, and batches of
//! encoded spans go to the collector from one export thread.
//!
//! It replaces the SDK's `BatchSpanProcessor`, which moved every finished span's data (its
//! name, attribute vector, events, links) through a channel to its own thread, where it was
//! copied once more into the exporter's batch, encoded, and freed: every allocation a
//! request's spans made on the worker was given back on another thread. Here the span is
//! written where it ends as the bytes the request will carry ([`encode::span_field`]) and its
//! data is dropped on the thread that made it; only bytes reach the export thread.
//!
//! The SDK processor's behaviour is kept: at most `max_queue` spans wait (a span that finds
//! the queue full is dropped and counted; the first drop and the total at shutdown are
//! logged); an export starts when `max_batch` spans wait or `delay` has passed since the last
//! one; a request holds at most `max_batch` spans; `force_flush` exports everything queued
//! and waits for it (at most [`FLUSH_TIMEOUT`]); `shutdown` exports everything, stops the
//! exporter and joins the thread. `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` and
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` set the three ([`super::settings`]). A request is byte for
//! byte the encoding of the same spans as one batch ([`Encoder::encode`], itself the SDK
//! exporter's bytes): `tests` check both.

use std::cell::Cell;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use super::encode::Encoder;

/// Longest `force_flush` waits for the export thread, as the SDK's processor.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The export thread's name (the SDK processor's, which tools and `loadtest/` know).
const THREAD_NAME: &str = "OpenTelemetry.Traces.BatchProcessor";

/// Where the export thread sends requests.
pub trait Export: Send + 'static {
    /// Sends one encoded `ExportTraceServiceRequest` holding `spans` spans. Blocking; a
    /// failure is the exporter's to report.
    fn export(&mut self, request: Bytes, spans: usize);
    /// Called once, after the last export.
    fn shutdown(&mut self);
}

/// How spans are batched: the SDK's defaults, or `OTEL_BSP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Spans waiting at most; more are dropped.
    pub max_queue: usize,
    /// Longest time between two exports.
    pub delay: Duration,
    /// Spans in one request at most; this many waiting start an export.
    pub max_batch: usize,
}

impl Default for Batching {
    fn default() -> Self {
        use opentelemetry_sdk::trace::{
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE_DEFAULT, OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT,
            OTEL_BSP_SCHEDULE_DELAY_DEFAULT,
        };
        Self {
            max_queue: OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT,
            delay: OTEL_BSP_SCHEDULE_DELAY_DEFAULT,
            max_batch: OTEL_BSP_MAX_EXPORT_BATCH_SIZE_DEFAULT,
        }
    }
}

/// Encoded spans in the order they ended. Pure: no locks, no threads.
#[derive(Debug, Default)]
pub struct Queue {
    /// The spans' `ScopeSpans.spans` fields, back to back.
    data: Vec<u8>,
    /// Per span: its scope's index in `scopes`, and where its bytes end in `data`.
    spans: Vec<(usize, usize)>,
    /// Every scope seen, in the order first seen (a gateway's spans have one).
    scopes: Vec<InstrumentationScope>,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Appends a span already encoded as [`encode::span_field`], of `scope`.
    pub fn push_encoded(&mut self, scope: &InstrumentationScope, field: &[u8]) {
        let scope = match self.scopes.iter().position(|s| s == scope) {
            Some(i) => i,
            None => {
                self.scopes.push(scope.clone());
                self.scopes.len() - 1
            }
        };
        self.data.extend_from_slice(field);
        self.spans.push((scope, self.data.len()));
    }

    /// Moves everything queued into `into` (emptied first); both keep their allocations.
    pub fn take_into(&mut self, into: &mut Queue) {
        into.data.clear();
        into.spans.clear();
        std::mem::swap(&mut self.data, &mut into.data);
        std::mem::swap(&mut self.spans, &mut into.spans);
        // Scopes are only ever added: `into` learns the new ones, the indices stay valid.
        if into.scopes.len() < self.scopes.len() {
            into.scopes
                .extend_from_slice(&self.scopes[into.scopes.len()..]);
        }
    }

    /// The requests for what is queued, in order, at most `max_batch` spans each: `send` gets
    /// each request and its span count.
    pub fn requests(
        &self,
        encoder: &Encoder,
        max_batch: usize,
        mut send: impl FnMut(Vec<u8>, usize),
    ) {
        let mut from = 0;
        for chunk in self.spans.chunks(max_batch.max(1)) {
            let to = chunk.last().map_or(from, |&(_, end)| end);
            // The chunk's scopes in the order they first appear, as `Encoder::encode` groups.
            let mut order: Vec<usize> = Vec::new();
            for &(scope, _) in chunk {
                if !order.contains(&scope) {
                    order.push(scope);
                }
            }
            let scopes: Vec<&InstrumentationScope> =
                order.iter().map(|&i| &self.scopes[i]).collect();
            let mut request = Vec::with_capacity(to - from + 256);
            encoder.request(&mut request, &scopes, |ss, i| {
                let mut start = from;
                for &(scope, end) in chunk {
                    if scope == order[i] {
                        ss.extend_from_slice(&self.data[start..end]);
                    }
                    start = end;
                }
            });
            send(request, chunk.len());
            from = to;
        }
    }
}

thread_local! {
    /// A span's encoding on its way into the queue: one buffer per thread, kept.
    static FIELD: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// What a caller waits for: answered after the export that follows the ask.
enum Ask {
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

struct State {
    queue: Queue,
    encoder: Arc<Encoder>,
    /// Spans dropped for a full queue, since the start.
    dropped: u64,
    asks: Vec<Ask>,
    /// Shutdown asked: no more spans, flushes or shutdowns.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The export thread waits on it: a full batch, an ask, or the delay.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data, whole after any panic: go on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The span processor (see the module's documentation).
pub struct Processor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    batching: Batching,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("otlp::batch::Processor")
    }
}

impl Processor {
    /// Starts the export thread, which sends to `exporter` requests `encoder` writes.
    pub fn new(
        exporter: impl Export,
        batching: Batching,
        encoder: Encoder,
    ) -> std::io::Result<Self> {
        // As the settings resolve it, and at least one: a batch that never fills the queue
        // would wait for the delay only.
        let batching = Batching {
            max_batch: batching.max_batch.clamp(1, batching.max_queue.max(1)),
            ..batching
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::default(),
                encoder: Arc::new(encoder),
                dropped: 0,
                asks: Vec::new(),
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&shared, exporter, batching)
            })?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
            batching,
        })
    }

    /// Spans dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Queues a span of `scope` that `write` encodes (as [`super::encode::span_field`] does),
    /// unless the queue is closed or full. The span is encoded before the lock is taken, so
    /// that workers ending spans at once wait for one another only for a copy.
    pub fn push(&self, scope: &InstrumentationScope, write: impl FnOnce(&mut Vec<u8>)) {
        // The thread's buffer, borrowed for the span (a span ending while its thread's locals
        // are being torn down gets a buffer of its own).
        let mut field = FIELD.try_with(Cell::take).unwrap_or_default();
        field.clear();
        write(&mut field);
        let full = self.enqueue(scope, &field);
        let _ = FIELD.try_with(|buffer| buffer.set(field));
        if full {
            self.shared.wake.notify_one();
        }
    }

    /// Queues an encoded span unless the queue is closed or full; true when it made a full
    /// batch.
    fn enqueue(&self, scope: &InstrumentationScope, field: &[u8]) -> bool {
        let mut state = self.shared.lock();
        if state.closed {
            return false;
        }
        if state.queue.len() >= self.batching.max_queue {
            state.dropped += 1;
            return false;
        }
        state.queue.push_encoded(scope, field);
        state.queue.len() == self.batching.max_batch
    }

    /// Exports everything queued and waits for it (at most [`FLUSH_TIMEOUT`]).
    pub fn force_flush(&self) -> OTelSdkResult {
        self.ask(Ask::Flush, FLUSH_TIMEOUT)
    }

    /// Exports everything queued, stops the exporter and joins the thread, waiting at most
    /// `timeout` for the export (past it, the thread goes on and is not joined).
    pub fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Ask::Shutdown, timeout)?;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        Ok(())
    }

    /// Queues `ask` and waits up to `timeout` for its answer.
    fn ask(&self, ask: impl FnOnce(SyncSender<()>) -> Ask, timeout: Duration) -> OTelSdkResult {
        let (answer, answered) = sync_channel(1);
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            let ask = ask(answer);
            state.closed = matches!(ask, Ask::Shutdown(_));
            state.asks.push(ask);
        }
        self.shared.wake.notify_one();
        answered.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => OTelSdkError::Timeout(timeout),
            RecvTimeoutError::Disconnected => {
                OTelSdkError::InternalFailure("the span export thread stopped".into())
            }
        })
    }
}

impl Drop for Processor {
    /// Without a shutdown first (the trace pipeline shuts it down before it drops it), the
    /// export thread still exports what waits and stops; nobody waits for it.
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        let (answer, _) = sync_channel(1);
        state.asks.push(Ask::Shutdown(answer));
        drop(state);
        self.shared.wake.notify_one();
    }
}

/// The export thread: waits for a full batch, an ask or the delay, exports what is queued,
/// answers the asks; returns after a shutdown.
fn run(shared: &Shared, mut exporter: impl Export, batching: Batching) {
    let _suppressed = Context::enter_telemetry_suppressed_scope();
    let mut batch = Queue::default();
    let mut last_export = Instant::now();
    let mut drops_logged = false;
    loop {
        let (asks, encoder, dropped) = {
            let mut state = shared.lock();
            loop {
                if !state.asks.is_empty() || state.queue.len() >= batching.max_batch {
                    break;
                }
                let waited = last_export.elapsed();
                if waited >= batching.delay {
                    break;
                }
                state = shared
                    .wake
                    .wait_timeout(state, batching.delay - waited)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            state.queue.take_into(&mut batch);
            (
                std::mem::take(&mut state.asks),
                Arc::clone(&state.encoder),
                state.dropped,
            )
        };
        if dropped > 0 && !drops_logged {
            drops_logged = true;
            tracing::warn!(
                max_queue = batching.max_queue,
                "the span queue is full: spans are dropped (the total is logged at shutdown)"
            );
        }
        batch.requests(&encoder, batching.max_batch, |request, spans| {
            exporter.export(Bytes::from(request), spans);
        });
        last_export = Instant::now();
        let mut stop = false;
        for ask in asks {
            match ask {
                Ask::Flush(answer) => {
                    let _ = answer.send(());
                }
                Ask::Shutdown(answer) => {
                    exporter.shutdown();
                    if dropped > 0 {
                        tracing::warn!(
                            dropped,
                            max_queue = batching.max_queue,
                            "spans were dropped because the span queue was full"
                        );
                    }
                    let _ = answer.send(());
                    stop = true;
                }
            }
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::mpsc::{channel, Receiver, Sender};

    use opentelemetry::KeyValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use opentelemetry_sdk::trace::SpanData;
    use opentelemetry_sdk::Resource;

    use super::super::encode;
    use super::super::encode::tests::{sdk_encoding, spans};
    use super::*;

    /// One resource for every test: a resource's attributes iterate in its own hash order,
    /// and the processor, like the SDK's exporter, is handed the provider's one.
    fn resource() -> &'static Resource {
        static RESOURCE: std::sync::OnceLock<Resource> = std::sync::OnceLock::new();
        RESOURCE.get_or_init(|| {
            Resource::builder()
                .with_service_name("gatewayz")
                .with_attribute(KeyValue::new("service.version", "0.1.0"))
                .build()
        })
    }

    fn push(queue: &mut Queue, span: &SpanData) {
        let mut field = Vec::new();
        encode::span_field(&mut field, span);
        queue.push_encoded(&span.instrumentation_scope, &field);
    }

    fn queued(spans: &[SpanData]) -> Queue {
        let mut queue = Queue::default();
        for span in spans {
            push(&mut queue, span);
        }
        queue
    }

    fn requests(queue: &Queue, max_batch: usize) -> Vec<(Vec<u8>, usize)> {
        let mut out = Vec::new();
        queue.requests(&Encoder::new(resource()), max_batch, |r, n| {
            out.push((r, n))
        });
        out
    }

    #[test]
    fn a_request_is_the_batchs_encoding_and_the_sdks() {
        let spans = spans();
        let got = requests(&queued(&spans), 512);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, spans.len());
        let mut whole = Vec::new();
        Encoder::new(resource()).encode(&spans, &mut whole);
        assert_eq!(got[0].0, whole);
        let sdk = sdk_encoding(spans, resource());
        assert_eq!(
            ExportTraceServiceRequest::decode(got[0].0.as_slice()).unwrap(),
            ExportTraceServiceRequest::decode(sdk.as_slice()).unwrap()
        );
        assert_eq!(got[0].0, sdk);
    }

    #[test]
    fn a_long_queue_goes_out_in_requests_of_at_most_max_batch() {
        // Interleaved scopes: each request groups its own spans by scope.
        let spans: Vec<SpanData> = spans().into_iter().cycle().take(23).collect();
        let mut queue = queued(&spans);
        // Taken as the export thread takes it: the queue empties, its allocations stay.
        let mut batch = Queue::default();
        queue.take_into(&mut batch);
        assert!(queue.is_empty());
        let got = requests(&batch, 4);
        assert_eq!(
            got.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [4, 4, 4, 4, 4, 3]
        );
        for (chunk, (request, _)) in spans.chunks(4).zip(&got) {
            assert_eq!(request, &sdk_encoding(chunk.to_vec(), resource()));
        }
        // Spans queued after a take are encoded against the scopes learnt before.
        push(&mut queue, &spans[1]);
        queue.take_into(&mut batch);
        assert_eq!(
            requests(&batch, 4)[0].0,
            sdk_encoding(vec![spans[1].clone()], resource())
        );
    }

    /// An exporter that hands each request to the test, and waits for a go-ahead per export
    /// when the test holds the gate (saying first that it has started).
    struct Recorder {
        sent: Sender<(Vec<u8>, usize)>,
        started: Sender<()>,
        gate: Option<Receiver<()>>,
        stopped: Sender<()>,
    }

    impl Export for Recorder {
        fn export(&mut self, request: Bytes, spans: usize) {
            let _ = self.started.send(());
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            let _ = self.sent.send((request.to_vec(), spans));
        }

        fn shutdown(&mut self) {
            let _ = self.stopped.send(());
        }
    }

    struct Rig {
        processor: Processor,
        sent: Receiver<(Vec<u8>, usize)>,
        started: Receiver<()>,
        stopped: Receiver<()>,
        gate: Option<Sender<()>>,
    }

    /// A processor with `max_queue`, `delay` and `max_batch`, whose exports go through at once.
    fn rig(max_queue: usize, delay: Duration, max_batch: usize) -> Rig {
        rigged(max_queue, delay, max_batch, false)
    }

    /// The same, each export held until the test opens the gate once for it.
    fn gated_rig(max_queue: usize, delay: Duration, max_batch: usize) -> Rig {
        rigged(max_queue, delay, max_batch, true)
    }

    fn rigged(max_queue: usize, delay: Duration, max_batch: usize, gated: bool) -> Rig {
        let (sent, sent_rx) = channel();
        let (stopped, stopped_rx) = channel();
        let (started, started_rx) = channel();
        let (gate, gate_rx) = if gated {
            let (tx, rx) = channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let processor = Processor::new(
            Recorder {
                sent,
                started,
                gate: gate_rx,
                stopped,
            },
            Batching {
                max_queue,
                delay,
                max_batch,
            },
            Encoder::new(resource()),
        )
        .unwrap();
        Rig {
            processor,
            sent: sent_rx,
            started: started_rx,
            stopped: stopped_rx,
            gate,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const WAIT: Duration = Duration::from_secs(10);

    fn span() -> SpanData {
        spans().swap_remove(0)
    }

    /// Ends one more [`span`] into `processor`, as a span of the gateway's ends.
    fn end(processor: &Processor) {
        let span = span();
        processor.push(&span.instrumentation_scope, |field| {
            encode::span_field(field, &span)
        });
    }

    #[test]
    fn a_full_batch_is_exported_without_waiting_for_the_delay() {
        let rig = rig(8, HOUR, 2);
        end(&rig.processor);
        end(&rig.processor);
        let (request, n) = rig.sent.recv_timeout(WAIT).unwrap();
        assert_eq!(n, 2);
        assert_eq!(request, sdk_encoding(vec![span(), span()], resource()));
    }

    #[test]
    fn the_delay_exports_what_waits() {
        let rig = rig(8, Duration::from_millis(20), 8);
        end(&rig.processor);
        assert_eq!(rig.sent.recv_timeout(WAIT).unwrap().1, 1);
    }

    #[test]
    fn a_full_queue_drops_spans_and_counts_them() {
        let rig = gated_rig(3, HOUR, 3);
        // Three start an export, which the gate holds once it has taken them...
        for _ in 0..3 {
            end(&rig.processor);
        }
        rig.started.recv_timeout(WAIT).unwrap();
        // ...three more fill the queue again, and two find it full.
        for _ in 0..3 {
            end(&rig.processor);
        }
        assert_eq!(rig.processor.dropped(), 0);
        end(&rig.processor);
        end(&rig.processor);
        assert_eq!(rig.processor.dropped(), 2);
        let gate = rig.gate.as_ref().unwrap();
        gate.send(()).unwrap();
        assert_eq!(rig.sent.recv_timeout(WAIT).unwrap().1, 3);
        // The second three: a full batch again, exported once the gate opens.
        gate.send(()).unwrap();
        assert_eq!(rig.sent.recv_timeout(WAIT).unwrap().1, 3);
        assert_eq!(rig.processor.dropped(), 2);
    }

    #[test]
    fn a_flush_exports_everything_and_waits_for_it() {
        let rig = rig(8, HOUR, 8);
        for _ in 0..3 {
            end(&rig.processor);
        }
        rig.processor.force_flush().unwrap();
        // Sent before the flush returned.
        assert_eq!(rig.sent.try_recv().unwrap().1, 3);
        // Nothing queued: a flush sends nothing.
        rig.processor.force_flush().unwrap();
        assert!(rig.sent.try_recv().is_err());
    }

    #[test]
    fn shutdown_exports_stops_the_exporter_and_refuses_what_follows() {
        let rig = rig(8, HOUR, 8);
        end(&rig.processor);
        end(&rig.processor);
        rig.processor.shutdown(WAIT).unwrap();
        assert_eq!(rig.sent.try_recv().unwrap().1, 2);
        rig.stopped.try_recv().unwrap();
        // The thread is joined; later spans, flushes and shutdowns go nowhere.
        end(&rig.processor);
        assert!(matches!(
            rig.processor.force_flush(),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(matches!(
            rig.processor.shutdown(WAIT),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(rig.sent.try_recv().is_err());
    }

    #[test]
    fn a_processor_dropped_without_shutdown_still_exports_and_stops_its_thread() {
        let rig = rig(8, HOUR, 8);
        end(&rig.processor);
        drop(rig.processor);
        assert_eq!(rig.sent.recv_timeout(WAIT).unwrap().1, 1);
        rig.stopped.recv_timeout(WAIT).unwrap();
    }

    #[test]
    fn a_shutdown_that_outlasts_its_timeout_says_so() {
        let rig = gated_rig(8, HOUR, 8);
        end(&rig.processor);
        let timeout = Duration::from_millis(10);
        assert!(matches!(
            rig.processor.shutdown(timeout),
            Err(OTelSdkError::Timeout(t)) if t == timeout
        ));
        // Once the export may go, the span still goes out and the exporter is stopped.
        rig.gate.as_ref().unwrap().send(()).unwrap();
        assert_eq!(rig.sent.recv_timeout(WAIT).unwrap().1, 1);
        rig.stopped.recv_timeout(WAIT).unwrap();
    }
}
