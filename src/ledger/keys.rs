//! Client keys kept in the ledger's database ("virtual keys"): made, changed, rotated and
//! revoked through the admin API or `gatewayz keys`, and seen by every replica that shares
//! the database.
//!
//! A row holds the key's policy (team, models, limits, budget, expiry) and the SHA-256 digest
//! of its secret, never the secret: the secret is made here ([`new_secret`]), shown once to
//! whoever made it, and dropped. Every change bumps a one-row revision in the same
//! transaction; each replica's [`KeySync`] reads that revision every `[admin]
//! key_sync_interval` and the whole table only when it moved, and hands the table to the
//! gateway, which swaps its key set. A database that does not answer changes nothing: the
//! keys last read keep working (and revoked ones stay refused) until it answers again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::record::unix_ms;
use super::store::{Db, Sums};
use super::writer::describe;
use super::LedgerError;
use crate::config::{BudgetPeriod, KeyPolicy, LedgerConfig, Limits};
use crate::telemetry::reach::{Note, Reach};

/// A key as the database keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub policy: KeyPolicy,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("an API key named {0:?} exists already")]
    Exists(String),
    #[error("no API key named {0:?}")]
    NotFound(String),
    /// The database failed or did not answer (the message never holds its URL).
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for KeyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(describe(&e))
    }
}

/// A new secret: `gwz-` and 48 hex digits (192 random bits from the thread's CSPRNG).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes);
    let mut secret = String::with_capacity(4 + 48);
    secret.push_str("gwz-");
    for b in bytes {
        secret.push_str(&format!("{b:02x}"));
    }
    secret
}

/// Lowercase hex of 32 bytes (a digest as the table keeps it, a console session's token).
pub(crate) fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn to_i64(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn to_u64(n: Option<i64>) -> Option<u64> {
    n.map(|n| u64::try_from(n).unwrap_or(0))
}

const COLUMNS: &str = "name, digest, team, models, rate_limit_rpm, rate_limit_tpm, \
                       max_parallel, budget_usd, budget_period, soft_budget_usd, expires_ms, \
                       created_ms, updated_ms";

/// One row as a key; `None` for a row this version cannot read (logged and skipped).
fn read_row(row: &sqlx::any::AnyRow) -> Result<Option<StoredKey>, sqlx::Error> {
    let name: String = row.try_get(0)?;
    let Some(digest) = unhex(&row.try_get::<String, _>(1)?) else {
        tracing::warn!(key = %name, "a stored API key has an unreadable digest; skipped");
        return Ok(None);
    };
    let models = match row.try_get::<Option<String>, _>(3)? {
        None => None,
        Some(json) => match serde_json::from_str::<Vec<String>>(&json) {
            Ok(models) => Some(models),
            Err(_) => {
                tracing::warn!(key = %name, "a stored API key has an unreadable model list; skipped");
                return Ok(None);
            }
        },
    };
    let budget_period = match row.try_get::<Option<String>, _>(8)? {
        None => None,
        Some(text) => match BudgetPeriod::parse(&text) {
            Ok(period) => Some(period),
            Err(_) => {
                tracing::warn!(key = %name, "a stored API key has an unreadable budget period; skipped");
                return Ok(None);
            }
        },
    };
    let expires_ms: Option<i64> = row.try_get(10)?;
    Ok(Some(StoredKey {
        policy: KeyPolicy {
            team: row.try_get(2)?,
            models,
            limits: Limits {
                rpm: to_u64(row.try_get(4)?),
                tpm: to_u64(row.try_get(5)?),
                max_parallel: to_u64(row.try_get(6)?),
                budget_usd: row.try_get(7)?,
                budget_period,
                soft_budget_usd: row.try_get(9)?,
            },
            expires: expires_ms.map(|ms| {
                SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            }),
            name,
        },
        digest,
        created_ms: row.try_get(11)?,
        updated_ms: row.try_get(12)?,
    }))
}

/// Whether `e` is a unique constraint refusing a row (another replica made the key first).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation() || d.message().contains("UNIQUE"))
}

impl Db {
    /// The revision of the key table: it moves on every change.
    pub async fn keys_revision(&self) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT revision FROM api_keys_revision WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        row.map_or(Ok(0), |r| r.try_get::<i64, _>(0))
    }

    /// Every stored key, by name.
    pub async fn keys(&self) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY name"))
            .fetch_all(self.pool())
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.extend(read_row(row)?);
        }
        Ok(keys)
    }

    /// One stored key.
    pub async fn key(&self, name: &str) -> Result<StoredKey, KeyError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE name = $1"))
            .bind(name.to_owned())
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => read_row(&row)?.ok_or_else(|| KeyError::NotFound(name.to_owned())),
            None => Err(KeyError::NotFound(name.to_owned())),
        }
    }

    /// Stores a new key; [`KeyError::Exists`] when its name is taken.
    pub async fn insert_key(&self, key: &StoredKey) -> Result<(), KeyError> {
        let mut tx = self.pool().begin().await?;
        let taken = sqlx::query("SELECT name FROM api_keys WHERE name = $1")
            .bind(key.policy.name.clone())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(KeyError::Exists(key.policy.name.clone()));
        }
        let sql = format!(
            "INSERT INTO api_keys ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        let inserted = bind(sqlx::query(&sql), key).execute(&mut *tx).await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(KeyError::Exists(key.policy.name.clone()))
            }
            other => other?,
        };
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a stored key's policy and digest; [`KeyError::NotFound`] when it is gone.
    pub async fn update_key(&self, key: &StoredKey) -> Result<(), KeyError> {
        let mut tx = self.pool().begin().await?;
        let sql = "UPDATE api_keys SET digest = $2, team = $3, models = $4, \
                   rate_limit_rpm = $5, rate_limit_tpm = $6, max_parallel = $7, budget_usd = $8, \
                   budget_period = $9, soft_budget_usd = $10, expires_ms = $11, \
                   created_ms = $12, updated_ms = $13 WHERE name = $1";
        let done = bind(sqlx::query(sql), key).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(KeyError::NotFound(key.policy.name.clone()));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a stored key (revokes it); [`KeyError::NotFound`] when there is none.
    pub async fn delete_key(&self, name: &str) -> Result<(), KeyError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM api_keys WHERE name = $1")
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(KeyError::NotFound(name.to_owned()));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What a key spent and used since `since_ms` (the rollups).
    pub async fn key_usage(&self, name: &str, since_ms: i64) -> Result<Sums, sqlx::Error> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT), \
             CAST(COALESCE(SUM(errors), 0) AS BIGINT), \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
             CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT), \
             CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) \
             FROM usage_hourly WHERE key_name = $1 AND hour_ms >= $2",
        )
        .bind(name.to_owned())
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(Sums {
            requests: row.try_get(0)?,
            errors: row.try_get(1)?,
            input_tokens: row.try_get(2)?,
            output_tokens: row.try_get(3)?,
            cached_tokens: row.try_get(4)?,
            cost_usd: row.try_get(5)?,
        })
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds a key's 13 columns in [`COLUMNS`] order.
fn bind<'q>(query: AnyQuery<'q>, key: &StoredKey) -> AnyQuery<'q> {
    let p = &key.policy;
    query
        .bind(p.name.clone())
        .bind(hex(&key.digest))
        .bind(p.team.clone())
        .bind(
            p.models
                .as_ref()
                .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "[]".into())),
        )
        .bind(to_i64(p.limits.rpm))
        .bind(to_i64(p.limits.tpm))
        .bind(to_i64(p.limits.max_parallel))
        .bind(p.limits.budget_usd)
        .bind(p.limits.budget_period.map(|b| b.to_string()))
        .bind(p.limits.soft_budget_usd)
        .bind(p.expires.map(unix_ms))
        .bind(key.created_ms)
        .bind(key.updated_ms)
}

/// Moves the key table's revision (in the change's transaction).
async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_keys_revision SET revision = revision + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What the gateway does with the key table each time it moved.
pub type OnKeys = Arc<dyn Fn(&[StoredKey]) + Send + Sync>;

type Job = Box<dyn FnOnce(Db) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

enum Msg {
    /// A database call, run on the sync's thread.
    Run(Job),
    /// Read the table now (after a change made here) and answer once it is applied.
    Refresh(oneshot::Sender<()>),
}

/// The longest an admin call waits for the database.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The replica's reader of the key table, and the way admin calls reach the database: a
/// thread with its own runtime and pool, as the ledger's writer has.
#[derive(Clone)]
pub struct KeySync {
    jobs: mpsc::Sender<Msg>,
}

impl KeySync {
    /// Starts the thread: it reads the table every `interval` (at once the first time) and
    /// hands it to `on_keys` whenever its revision moved.
    pub fn start(
        config: &LedgerConfig,
        interval: Duration,
        on_keys: OnKeys,
    ) -> Result<Self, LedgerError> {
        let db = Db::open(config).map_err(|e| LedgerError(describe(&e)))?;
        let (jobs, queue) = mpsc::channel(64);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LedgerError(format!("cannot start the key sync's runtime: {e}")))?;
        let mut sync = Poller {
            db,
            on_keys,
            seen: None,
            reach: Reach::default(),
        };
        std::thread::Builder::new()
            .name("gatewayz-keys".into())
            .spawn(move || runtime.block_on(sync.run(queue, interval)))
            .map_err(|e| LedgerError(format!("cannot start the key sync's thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `call` against the database, at most [`CALL_TIMEOUT`].
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce(Db) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, KeyError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            Box::pin(async move {
                let _ = reply.send(call(db).await);
            })
        });
        let gone = || KeyError::Unavailable("the key sync has stopped".into());
        let asked = async {
            self.jobs.send(Msg::Run(job)).await.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        };
        tokio::time::timeout(CALL_TIMEOUT, asked)
            .await
            .map_err(|_| {
                KeyError::Unavailable(format!(
                    "the database did not answer within {}s",
                    CALL_TIMEOUT.as_secs()
                ))
            })?
    }

    /// Reads the table and applies it now; waits at most [`CALL_TIMEOUT`].
    pub async fn refresh(&self) {
        let (done, applied) = oneshot::channel();
        if self.jobs.send(Msg::Refresh(done)).await.is_ok() {
            let _ = tokio::time::timeout(CALL_TIMEOUT, applied).await;
        }
    }
}

struct Poller {
    db: Db,
    on_keys: OnKeys,
    /// The revision last applied.
    seen: Option<i64>,
    reach: Reach,
}

impl Poller {
    async fn run(&mut self, mut queue: mpsc::Receiver<Msg>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = queue.recv() => match msg {
                    Some(Msg::Run(job)) => job(self.db.clone()).await,
                    Some(Msg::Refresh(done)) => {
                        self.poll().await;
                        let _ = done.send(());
                    }
                    None => break,
                },
                _ = tick.tick() => self.poll().await,
            }
        }
        self.db.close().await;
    }

    /// Reads the revision, and the table when it moved; a failure keeps the keys as they are.
    async fn poll(&mut self) {
        let read = async {
            let revision = self.db.keys_revision().await?;
            if self.seen == Some(revision) {
                return Ok(None);
            }
            Ok::<_, sqlx::Error>(Some((revision, self.db.keys().await?)))
        };
        match tokio::time::timeout(CALL_TIMEOUT, read).await {
            Ok(Ok(read)) => {
                if let Some(Note::Back { failures, .. }) = self.reach.succeeded(Instant::now()) {
                    tracing::info!(failures, "the API keys' database answers again");
                }
                if let Some((revision, keys)) = read {
                    (self.on_keys)(&keys);
                    self.seen = Some(revision);
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => describe(&e),
                    _ => format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
                };
                match self.reach.failed(Instant::now()) {
                    Some(Note::Down) => tracing::warn!(
                        error = %error,
                        "cannot read the API keys from the ledger's database; the keys last read \
                         keep working until it answers"
                    ),
                    Some(Note::StillDown { failures }) => tracing::warn!(
                        error = %error,
                        failures,
                        "still cannot read the API keys from the ledger's database"
                    ),
                    _ => {}
                }
            }
        }
    }
}

/// Characters a stored key's name may have (it is a URL segment of the admin API).
pub fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.@:+".contains(c)
}

/// Checks a stored key against the configuration: its name's characters, not a file key's
/// name, and what `[[keys]]` entries are checked for. The error names the field.
pub fn check(
    config: &crate::config::Config,
    policy: &KeyPolicy,
) -> Result<(), crate::config::Invalid> {
    if !policy.name.chars().all(name_char) {
        return Err(crate::config::Invalid::new(
            "name",
            "must be 1 to 128 letters, digits or - _ . @ : +",
        ));
    }
    config.validate_key(policy)
}

/// `gatewayz keys`: the same operations as the admin API, straight on the database.
pub mod cli {
    use super::*;
    use crate::config::Config;

    async fn open(config: &Config) -> Result<Db, String> {
        let settings = config
            .ledger
            .as_ref()
            .ok_or("the configuration has no [ledger]: keys are kept in its database")?;
        let db = Db::open(settings).map_err(|e| describe(&e))?;
        db.migrate().await.map_err(|e| describe(&e))?;
        Ok(db)
    }

    /// Makes a key; returns its secret (to be shown once).
    pub async fn create(config: &Config, policy: KeyPolicy) -> Result<String, String> {
        if config.keys.iter().any(|k| k.name == policy.name) {
            return Err(format!(
                "the configuration file defines a key named {:?} already",
                policy.name
            ));
        }
        check(config, &policy).map_err(|e| format!("{}: {}", e.key, e.message))?;
        let db = open(config).await?;
        let secret = new_secret();
        let done = db
            .insert_key(&stored(policy, &secret, SystemTime::now()))
            .await
            .map_err(|e| e.to_string());
        db.close().await;
        done.map(|()| secret)
    }

    /// The stored keys as a table (never their secrets).
    pub async fn list(config: &Config) -> Result<String, String> {
        let db = open(config).await?;
        let keys = db.keys().await.map_err(|e| describe(&e));
        db.close().await;
        let mut out = String::from(
            "name\tteam\tmodels\trate_limit_rpm\trate_limit_tpm\tmax_parallel\tbudget_usd\t\
             budget_period\texpires_at\n",
        );
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        for key in keys? {
            let p = &key.policy;
            let l = &p.limits;
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                p.name,
                dash(p.team.clone()),
                dash(p.models.as_ref().map(|m| m.join(","))),
                dash(l.rpm.map(|n| n.to_string())),
                dash(l.tpm.map(|n| n.to_string())),
                dash(l.max_parallel.map(|n| n.to_string())),
                dash(l.budget_usd.map(|n| n.to_string())),
                dash(l.budget_usd.map(|_| l.period().to_string())),
                dash(
                    p.expires
                        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                ),
            ));
        }
        Ok(out)
    }

    /// Revokes a stored key.
    pub async fn revoke(config: &Config, name: &str) -> Result<(), String> {
        let db = open(config).await?;
        let done = db.delete_key(name).await.map_err(|e| e.to_string());
        db.close().await;
        done
    }
}

/// A key's row as the clock reads now.
pub fn stored(policy: KeyPolicy, secret: &str, now: SystemTime) -> StoredKey {
    let ms = unix_ms(now);
    StoredKey {
        policy,
        digest: sha256(secret.as_bytes()),
        created_ms: ms,
        updated_ms: ms,
    }
}

/// SHA-256 of a secret.
pub fn sha256(secret: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hex() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 52);
        assert!(a.starts_with("gwz-"));
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = sha256(b"secret");
        assert_eq!(unhex(&hex(&d)), Some(d));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }
}
