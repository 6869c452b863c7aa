//! LokiShipper: ships `tracing` events to Loki in batches, off the request path.
//!
//! The pieces: [`layer::LokiLayer`] formats each event on the emitting thread and `try_send`s
//! it on a bounded channel (never blocking); this actor drains the channel into a bounded
//! [`batch::Backlog`] (drop policy applied and counted), cuts a [`batch::Batch`] when one is
//! full or when the flush timer armed by the first waiting record fires, encodes it
//! ([`encode`]) and pushes it through a [`transport::Transport`] — one push in flight,
//! retried by [`transport::classify`] with [`backoff::Backoff`]. Every record ends in exactly
//! one counter of [`LogStats`]: shipped, dropped_full, dropped_rejected or dropped_shutdown.
//!
//! Entry points: [`pipeline`] (before the actor system: returns the layer and a
//! [`LokiHandle`]), [`LokiHandle::start`] (inside it), [`RunningShipper::shutdown`] (stop
//! accepting, flush within the deadline, count the rest).

pub mod backoff;
pub mod batch;
pub mod encode;
pub mod layer;
pub mod transport;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use self::backoff::Backoff;
use self::batch::{Backlog, Batch, Limits, Record};
use self::encode::StreamLabels;
use self::layer::Shared;
pub use self::layer::{LokiLayer, SELF_TARGET};
use self::transport::{classify, HttpTransport, PushOutcome, Transport, Verdict};
use crate::config::LokiConfig;
use crate::telemetry::cadence;
use crate::telemetry::metrics::log_stats::LogStats;

/// Most records taken from the channel per wake-up, so timers and pushes interleave.
const DRAIN_PER_WAKE: usize = 4096;
/// After a drain, the shipper lets records gather in the channel until the next beat of the
/// actors' thread ([`cadence`], at most 10 ms) or until the channel is half full, before it
/// waits on it again: a busy gateway wakes the shipper's thread about every 10 ms, in the
/// same wake-up as the outbox's drain, instead of once per log line (each wake-up is a
/// context switch that preempts the request path).
///
/// Only a channel that holds a gathering's worth at 100,000 lines/s pauses. A small one (a
/// tiny `queue_capacity`) is drained as records arrive: records waiting in the channel can
/// only be dropped newest-first, so a pause would let the channel, not the configured
/// `drop_policy` applied in the backlog, decide what is lost.
const GATHER_MIN_CHANNEL: usize = 1024;

/// Why the pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error("telemetry.loki: {0}")]
    Backoff(#[from] backoff::BackoffError),
}

/// Builds the layer and the (not yet started) shipper for `config`.
pub fn pipeline(
    config: &LokiConfig,
    stats: Arc<LogStats>,
) -> Result<(LokiLayer, LokiHandle), LokiError> {
    let transport = Arc::new(HttpTransport::new(config)?);
    pipeline_with(config, stats, transport)
}

/// [`pipeline`] with another transport (tests, benches).
pub fn pipeline_with(
    config: &LokiConfig,
    stats: Arc<LogStats>,
    transport: Arc<dyn Transport>,
) -> Result<(LokiLayer, LokiHandle), LokiError> {
    let backoff = Backoff::new(config.backoff_min, config.backoff_max, config.max_tries)?;
    // The hand-off buffer: the backlog behind it holds the rest of the capacity.
    let (tx, rx) = mpsc::channel(config.queue_capacity.clamp(1, DRAIN_PER_WAKE));
    let shared = Arc::new(Shared {
        stats,
        accepting: AtomicBool::new(true),
        filling: tokio::sync::Notify::new(),
    });
    let layer = LokiLayer::new(tx.clone(), shared.clone());
    let handle = LokiHandle {
        config: config.clone(),
        rx,
        probe: tx,
        shared,
        transport,
        backoff,
    };
    Ok((layer, handle))
}

/// The shipper, built but not started.
pub struct LokiHandle {
    config: LokiConfig,
    rx: mpsc::Receiver<Record>,
    probe: mpsc::Sender<Record>,
    shared: Arc<Shared>,
    transport: Arc<dyn Transport>,
    backoff: Backoff,
}

impl std::fmt::Debug for LokiHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LokiHandle")
            .field("url", &self.config.url)
            .finish()
    }
}

impl LokiHandle {
    /// The counters this shipper and its layer write (what `/metrics` should export).
    pub fn stats(&self) -> Arc<LogStats> {
        self.shared.stats.clone()
    }

    /// Starts the actor (inside an actix system) with random jitter.
    pub fn start(self) -> RunningShipper {
        self.start_with_jitter(Box::new(rand::random::<f64>))
    }

    /// Starts the actor with a jitter source returning values in `[0, 1]` (tests: zero).
    pub fn start_with_jitter(self, jitter: Box<dyn FnMut() -> f64>) -> RunningShipper {
        let deadline = self.config.shutdown_deadline;
        let stats = self.shared.stats.clone();
        let c = &self.config;
        let shipper = LokiShipper {
            rx: Some(self.rx),
            probe: self.probe,
            shared: self.shared,
            transport: self.transport,
            labels: StreamLabels::new(&c.labels, c.level_label),
            compressor: snap::raw::Encoder::new(),
            limits: Limits {
                max_records: c.batch_max_records,
                max_bytes: c.batch_max_bytes,
            },
            flush_interval: c.flush_interval,
            backoff: self.backoff,
            jitter,
            backlog: Backlog::new(c.queue_capacity, c.drop_policy),
            timer: None,
            flush_due: false,
            in_flight: None,
            closing: None,
        };
        RunningShipper {
            addr: shipper.start(),
            deadline,
            stats,
        }
    }
}

/// A started shipper.
pub struct RunningShipper {
    addr: Addr<LokiShipper>,
    deadline: Duration,
    stats: Arc<LogStats>,
}

/// The counters when the shipper stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    pub shipped: u64,
    pub dropped_full: u64,
    pub dropped_rejected: u64,
    pub dropped_shutdown: u64,
}

impl ShutdownReport {
    fn of(stats: &LogStats) -> Self {
        let [s, f, r, d] = stats.outcomes().map(|(_, n)| n);
        Self {
            shipped: s,
            dropped_full: f,
            dropped_rejected: r,
            dropped_shutdown: d,
        }
    }
}

impl RunningShipper {
    /// Stops accepting, flushes within the configured deadline, counts what is left.
    pub async fn shutdown(self) -> ShutdownReport {
        let deadline = self.deadline;
        self.shutdown_within(deadline).await
    }

    /// [`Self::shutdown`] within `limit` when it is shorter than the configured deadline
    /// (what is left of the shutdown budget).
    pub async fn shutdown_within(self, limit: Duration) -> ShutdownReport {
        let (reply, done) = oneshot::channel();
        self.addr.do_send(Shutdown {
            deadline: self.deadline.min(limit),
            reply,
        });
        let _ = done.await;
        let report = ShutdownReport::of(&self.stats);
        tracing::info!(
            target: SELF_TARGET,
            shipped = report.shipped,
            dropped_full = report.dropped_full,
            dropped_rejected = report.dropped_rejected,
            dropped_shutdown = report.dropped_shutdown,
            "loki shipper stopped"
        );
        report
    }
}

/// The batch being pushed.
struct InFlight {
    body: Bytes,
    records: usize,
    tries: u32,
}

/// The actor. See the module docs.
pub struct LokiShipper {
    /// `None` while a receive is pending (the future owns it).
    rx: Option<mpsc::Receiver<Record>>,
    /// A sender kept to tell whether the channel is empty (capacity == max capacity).
    probe: mpsc::Sender<Record>,
    shared: Arc<Shared>,
    transport: Arc<dyn Transport>,
    labels: StreamLabels,
    /// Snappy's encoder, kept: its hash table is allocated once, not per push.
    compressor: snap::raw::Encoder,
    limits: Limits,
    flush_interval: Duration,
    backoff: Backoff,
    jitter: Box<dyn FnMut() -> f64>,
    backlog: Backlog,
    timer: Option<SpawnHandle>,
    flush_due: bool,
    in_flight: Option<InFlight>,
    closing: Option<oneshot::Sender<()>>,
}

impl Actor for LokiShipper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.receive(ctx);
    }
}

impl LokiShipper {
    fn stats(&self) -> &LogStats {
        &self.shared.stats
    }

    /// Waits for the next record, then drains what else is queued.
    fn receive(&mut self, ctx: &mut Context<Self>) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        let next = async move {
            let first = rx.recv().await;
            (rx, first)
        };
        ctx.spawn(next.into_actor(self).map(|(mut rx, first), act, ctx| {
            if let Some(first) = first {
                act.accept(first);
                for _ in 1..DRAIN_PER_WAKE {
                    match rx.try_recv() {
                        Ok(r) => act.accept(r),
                        Err(_) => break,
                    }
                }
                act.rx = Some(rx);
                if act.probe.max_capacity() >= GATHER_MIN_CHANNEL && act.closing.is_none() {
                    let shared = act.shared.clone();
                    let beat = cadence::until_next_beat();
                    let gather = async move {
                        tokio::select! {
                            () = beat => {}
                            () = shared.filling.notified() => {}
                        }
                    };
                    ctx.spawn(gather.into_actor(act).map(|(), act, ctx| act.receive(ctx)));
                } else {
                    act.receive(ctx);
                }
            }
            act.progress(ctx);
        }));
    }

    fn accept(&mut self, record: Record) {
        let dropped = self.backlog.push(record);
        if dropped > 0 {
            self.stats()
                .dropped_full
                .fetch_add(dropped, Ordering::Relaxed);
            self.stats()
                .queue_depth
                .fetch_sub(dropped as i64, Ordering::Relaxed);
        }
    }

    /// Arms the timer, starts a push if one is due, finishes a shutdown when all is sent.
    fn progress(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_none() && !self.backlog.is_empty() {
            let due = self.flush_due || self.closing.is_some() || self.backlog.fills(self.limits);
            if due {
                self.push_batch(ctx);
            }
        }
        if !self.backlog.is_empty() && self.timer.is_none() && !self.flush_due {
            // The first waiting record arms the flush timer.
            self.timer = Some(ctx.run_later(self.flush_interval, |act, ctx| {
                act.timer = None;
                act.flush_due = true;
                act.progress(ctx);
            }));
        }
        let channel_empty = self.probe.capacity() == self.probe.max_capacity();
        if self.closing.is_some()
            && self.in_flight.is_none()
            && self.backlog.is_empty()
            && channel_empty
        {
            self.finish(ctx);
        }
    }

    fn push_batch(&mut self, ctx: &mut Context<Self>) {
        let mut batch = Batch::new(self.limits);
        self.backlog.fill(&mut batch);
        self.flush_due = false;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let records = batch.take();
        let n = records.len();
        match encode::encode(records, &self.labels, &mut self.compressor) {
            Ok(body) => {
                self.in_flight = Some(InFlight {
                    body: Bytes::from(body),
                    records: n,
                    tries: 0,
                });
                self.send(ctx);
            }
            Err(e) => {
                tracing::warn!(target: SELF_TARGET, error = %e, records = n, "loki batch not encodable");
                self.settle(n, &self.shared.stats.dropped_rejected);
            }
        }
    }

    fn send(&mut self, ctx: &mut Context<Self>) {
        let Some(flight) = &mut self.in_flight else {
            return;
        };
        flight.tries += 1;
        let push = self.transport.push(flight.body.clone());
        ctx.spawn(
            push.into_actor(self)
                .map(|outcome, act, ctx| act.on_outcome(outcome, ctx)),
        );
    }

    fn on_outcome(&mut self, outcome: PushOutcome, ctx: &mut Context<Self>) {
        let Some(flight) = &self.in_flight else {
            return;
        };
        let (records, tries) = (flight.records, flight.tries);
        match classify(&outcome) {
            Verdict::Accepted => {
                self.in_flight = None;
                self.settle(records, &self.shared.stats.shipped);
            }
            Verdict::Retry if self.backoff.may_retry(tries) => {
                let delay = self.backoff.delay(tries - 1, (self.jitter)());
                tracing::debug!(target: SELF_TARGET, ?outcome, tries, ?delay, "loki push retried");
                ctx.run_later(delay, |act, ctx| act.send(ctx));
                return;
            }
            verdict => {
                tracing::warn!(target: SELF_TARGET, ?outcome, ?verdict, tries, records, "loki batch dropped");
                self.in_flight = None;
                self.settle(records, &self.shared.stats.dropped_rejected);
            }
        }
        self.progress(ctx);
    }

    /// Moves `n` records out of the queue into `counter`.
    fn settle(&self, n: usize, counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.stats()
            .queue_depth
            .fetch_sub(n as i64, Ordering::Relaxed);
    }

    /// Counts what is still held as `dropped_shutdown`, answers the shutdown and stops.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        let in_channel = self.probe.max_capacity() - self.probe.capacity();
        let held =
            self.backlog.clear() + self.in_flight.take().map_or(0, |f| f.records) + in_channel;
        self.settle(held, &self.shared.stats.dropped_shutdown);
        if let Some(reply) = self.closing.take() {
            let _ = reply.send(());
        }
        ctx.stop();
    }
}

/// Stop accepting, flush within `deadline`, then reply.
struct Shutdown {
    deadline: Duration,
    reply: oneshot::Sender<()>,
}

impl Message for Shutdown {
    type Result = ();
}

impl Handler<Shutdown> for LokiShipper {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        self.shared.accepting.store(false, Ordering::Relaxed);
        self.closing = Some(msg.reply);
        ctx.run_later(msg.deadline, |act, ctx| act.finish(ctx));
        self.progress(ctx);
    }
}

#[cfg(test)]
mod tests;
