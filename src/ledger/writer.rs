//! The ledger's writer: a thread with its own runtime, a bounded queue in, batches out.
//!
//! The batching is a plain state machine ([`Batcher`]: when to write, tested with a fake
//! clock); the loop around it does the I/O.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::KeyValue;
use tokio::sync::{mpsc, oneshot};

use super::record::{unix_ms, UsageRecord};
use super::report::By;
use super::store::{Db, Sums};
use super::LedgerError;
use crate::config::LedgerConfig;
use crate::telemetry::metrics::Meters;
use crate::telemetry::reach::{Note, Reach};

/// What the writer is sent.
enum Msg {
    Record(Box<UsageRecord>),
    /// Write what is queued, then answer.
    Flush(oneshot::Sender<()>),
    /// A report's rollup sums (read by the writer, which owns the database).
    Report {
        by: By,
        hours: (i64, i64),
        reply: oneshot::Sender<Result<Vec<(String, Sums)>, String>>,
    },
}

/// When a batch is written: full, or its oldest record has waited `interval`.
#[derive(Debug)]
pub struct Batcher {
    size: usize,
    interval: Duration,
    /// When the current batch's first record arrived.
    since: Option<Instant>,
    len: usize,
}

impl Batcher {
    pub fn new(size: usize, interval: Duration) -> Self {
        Self {
            size: size.max(1),
            interval,
            since: None,
            len: 0,
        }
    }

    /// A record joined the batch at `now`: whether the batch is now full.
    pub fn push(&mut self, now: Instant) -> bool {
        self.since.get_or_insert(now);
        self.len += 1;
        self.len >= self.size
    }

    /// When the batch must be written though not full; `None` while it is empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + self.interval)
    }

    /// The batch was written.
    pub fn written(&mut self) {
        self.since = None;
        self.len = 0;
    }
}

/// The ledger as the request path holds it.
pub struct Ledger {
    queue: mpsc::Sender<Msg>,
    /// Records accepted and not written yet (queued or in the batch being written).
    pending: Arc<AtomicI64>,
    meters: Arc<Meters>,
}

/// How long a batch's write may take before it counts as failed and is retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between two tries of a failing write.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The longest a report waits for the writer.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often raw records past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Ledger {
    /// Opens the database (a SQLite file is created) and starts the writer. A PostgreSQL
    /// that is down does not stop this: the writer keeps trying.
    pub fn start(config: &LedgerConfig, meters: Arc<Meters>) -> Result<Self, LedgerError> {
        let db = Db::open(config).map_err(|e| LedgerError(describe(&e)))?;
        let (queue, records) = mpsc::channel(config.queue_capacity);
        let pending = Arc::new(AtomicI64::new(0));
        meters.ledger_queue.set(0);
        let writer = Writer {
            db,
            batcher: Batcher::new(config.batch_size, config.flush_interval),
            batch: Vec::with_capacity(config.batch_size),
            retention: config.retention,
            pending: pending.clone(),
            meters: meters.clone(),
            reach: Reach::default(),
            migrated: false,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LedgerError(format!("cannot start the writer's runtime: {e}")))?;
        std::thread::Builder::new()
            .name("gatewayz-ledger".into())
            .spawn(move || runtime.block_on(writer.run(records)))
            .map_err(|e| LedgerError(format!("cannot start the writer's thread: {e}")))?;
        Ok(Self {
            queue,
            pending,
            meters,
        })
    }

    /// Hands a record to the writer; never waits. A full queue drops it (counted).
    pub fn record(&self, record: UsageRecord) {
        match self.queue.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {
                let queued = self.pending.fetch_add(1, Ordering::Relaxed) + 1;
                self.meters.ledger_queue.set(queued);
            }
            Err(_) => self.count("dropped", 1),
        }
    }

    fn count(&self, outcome: &'static str, n: u64) {
        self.meters
            .ledger_records
            .add(n, &[KeyValue::new("outcome", outcome)]);
    }

    /// The rollup sums of `hours` grouped `by`, read by the writer (so a report waits behind
    /// a write in progress, at most [`REPORT_TIMEOUT`]).
    pub async fn report(&self, by: By, hours: (i64, i64)) -> Result<Vec<(String, Sums)>, String> {
        let (reply, answer) = oneshot::channel();
        let asked = async {
            self.queue
                .send(Msg::Report { by, hours, reply })
                .await
                .map_err(|_| "the ledger's writer has stopped".to_string())?;
            answer
                .await
                .map_err(|_| "the ledger's writer has stopped".to_string())?
        };
        tokio::time::timeout(REPORT_TIMEOUT, asked)
            .await
            .map_err(|_| {
                format!(
                    "the ledger did not answer within {}s (its database may be down)",
                    REPORT_TIMEOUT.as_secs()
                )
            })?
    }

    /// Writes what is queued, waiting at most `within`; what is still unwritten then is
    /// counted `lost` (the process is about to exit).
    pub async fn flush(&self, within: Duration) {
        let (done, written) = oneshot::channel();
        let sent = tokio::time::timeout(within, self.queue.send(Msg::Flush(done))).await;
        let finished = match sent {
            Ok(Ok(())) => tokio::time::timeout(within, written).await.is_ok(),
            _ => false,
        };
        let left = self.pending.load(Ordering::Relaxed).max(0) as u64;
        if !finished && left > 0 {
            self.count("lost", left);
            tracing::warn!(
                records = left,
                "the usage ledger could not write every record before exit"
            );
        }
    }
}

/// A database error as the log and start-up errors say it: never the URL (a password).
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "not a usable database URL".into(),
        other => other.to_string(),
    }
}

struct Writer {
    db: Db,
    batcher: Batcher,
    batch: Vec<UsageRecord>,
    retention: Duration,
    pending: Arc<AtomicI64>,
    meters: Arc<Meters>,
    reach: Reach,
    migrated: bool,
}

impl Writer {
    async fn run(mut self, mut records: mpsc::Receiver<Msg>) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.batcher.deadline();
            tokio::select! {
                msg = records.recv() => match msg {
                    Some(Msg::Record(record)) => {
                        self.batch.push(*record);
                        if self.batcher.push(Instant::now()) {
                            self.write().await;
                        }
                    }
                    Some(Msg::Flush(done)) => {
                        // Everything sent before the flush is in the queue ahead of it.
                        while let Ok(msg) = records.try_recv() {
                            match msg {
                                Msg::Record(record) => {
                                    self.batch.push(*record);
                                    if self.batcher.push(Instant::now()) {
                                        self.write().await;
                                    }
                                }
                                Msg::Flush(other) => drop(other.send(())),
                                Msg::Report { reply, .. } => {
                                    drop(reply.send(Err("the gateway is shutting down".into())))
                                }
                            }
                        }
                        self.write().await;
                        let _ = done.send(());
                    }
                    Some(Msg::Report { by, hours, reply }) => {
                        let _ = reply.send(self.read(by, hours).await);
                    }
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => self.write().await,
                _ = prune.tick() => self.prune().await,
            }
        }
        self.write().await;
        self.db.close().await;
    }

    /// Writes the batch, retrying with backoff until the database takes it.
    async fn write(&mut self) {
        if self.batch.is_empty() {
            self.batcher.written();
            return;
        }
        let mut pause = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let result = tokio::time::timeout(WRITE_TIMEOUT, async {
                if !self.migrated {
                    self.db.migrate().await?;
                    self.migrated = true;
                }
                self.db.insert(&self.batch).await
            })
            .await;
            let error = match result {
                Ok(Ok(new)) => {
                    let n = self.batch.len() as i64;
                    let left = self.pending.fetch_sub(n, Ordering::Relaxed) - n;
                    self.meters.ledger_queue.set(left.max(0));
                    self.meters
                        .ledger_records
                        .add(new, &[KeyValue::new("outcome", "written")]);
                    self.meters
                        .ledger_write_duration
                        .record(started.elapsed().as_secs_f64(), &[]);
                    self.batch.clear();
                    self.batcher.written();
                    if let Some(Note::Back { failures, after }) =
                        self.reach.succeeded(Instant::now())
                    {
                        tracing::info!(
                            failures,
                            down_for = %humantime::format_duration(Duration::from_secs(after.as_secs())),
                            "the usage ledger's database answers again; the held records are written"
                        );
                    }
                    return;
                }
                Ok(Err(e)) => describe(&e),
                Err(_) => format!("no answer within {}s", WRITE_TIMEOUT.as_secs()),
            };
            self.meters.ledger_write_errors.add(1, &[]);
            match self.reach.failed(Instant::now()) {
                Some(Note::Down) => tracing::warn!(
                    error = %error,
                    records = self.batch.len(),
                    "the usage ledger cannot write to its database; records are held and queued \
                     (dropped when the queue is full) until it answers"
                ),
                Some(Note::StillDown { failures }) => tracing::warn!(
                    error = %error,
                    failures,
                    "the usage ledger still cannot write to its database"
                ),
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(BACKOFF_MAX);
        }
    }

    /// A report's sums, after what is batched is written (a report sees every record the
    /// writer has).
    async fn read(
        &mut self,
        by: By,
        (since, until): (i64, i64),
    ) -> Result<Vec<(String, Sums)>, String> {
        self.write().await;
        self.db
            .usage(by, since, until)
            .await
            .map_err(|e| describe(&e))
    }

    /// Deletes raw records past their retention.
    async fn prune(&mut self) {
        if !self.migrated {
            return;
        }
        let before = unix_ms(SystemTime::now())
            - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = self.db.prune(before).await {
            tracing::warn!(error = %describe(&e), "the usage ledger could not delete old records");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_batch_is_written_full_or_when_its_oldest_record_has_waited() {
        let t0 = Instant::now();
        let mut b = Batcher::new(3, 100 * MS);
        assert_eq!(b.deadline(), None);
        assert!(!b.push(t0));
        assert_eq!(b.deadline(), Some(t0 + 100 * MS));
        // Later records do not move the deadline.
        assert!(!b.push(t0 + 50 * MS));
        assert_eq!(b.deadline(), Some(t0 + 100 * MS));
        assert!(b.push(t0 + 60 * MS));
        b.written();
        assert_eq!(b.deadline(), None);
        assert!(!b.push(t0 + 200 * MS));
        assert_eq!(b.deadline(), Some(t0 + 300 * MS));
        // A size of 0 means one record per batch.
        assert!(Batcher::new(0, MS).push(t0));
    }
}
