//! The ledger's database: one schema for SQLite and PostgreSQL through sqlx's `Any` driver,
//! migrations applied at start-up, batches written in one transaction each.
//!
//! Raw records go to `usage_records` (the record's own id is the primary key: a batch written
//! again after a lost acknowledgement inserts nothing twice); the hourly rollups
//! (`usage_hourly`, key × team × model × provider × API per UTC hour) are incremented in the
//! same transaction from exactly the rows that were inserted (`RETURNING`), so they always
//! equal the sums of the raw records they were made from, also after raw records past their
//! retention are deleted. Queries are built at run time with `$N` placeholders, which both
//! databases accept (the batch insert uses `?` on SQLite, which binds `$N` by name lookup).

use std::collections::BTreeMap;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::record::UsageRecord;
use crate::config::{Backend, LedgerConfig};

/// The schema, in order; each step applied once (`schema_migrations`), idempotent besides.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS usage_records (
        id TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        request_id TEXT NOT NULL,
        trace_id TEXT,
        key_name TEXT,
        team TEXT,
        model TEXT NOT NULL,
        provider TEXT,
        api TEXT NOT NULL,
        status TEXT NOT NULL,
        stream BIGINT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        duration_ms DOUBLE PRECISION NOT NULL,
        upstream_ms DOUBLE PRECISION NOT NULL,
        overhead_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS usage_records_at ON usage_records (at_ms);
    CREATE TABLE IF NOT EXISTS usage_hourly (
        hour_ms BIGINT NOT NULL,
        key_name TEXT NOT NULL,
        team TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        api TEXT NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (hour_ms, key_name, team, model, provider, api)
    )",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS api_keys (
        name TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        team TEXT,
        models TEXT,
        rate_limit_rpm BIGINT,
        rate_limit_tpm BIGINT,
        max_parallel BIGINT,
        budget_usd DOUBLE PRECISION,
        budget_period TEXT,
        soft_budget_usd DOUBLE PRECISION,
        expires_ms BIGINT,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS api_keys_revision (
        id BIGINT PRIMARY KEY,
        revision BIGINT NOT NULL
    );
    INSERT INTO api_keys_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    ),
];

/// Columns of `usage_records`, in insert order.
const COLUMNS: usize = 19;
/// Rows per INSERT statement: one statement text for every full chunk, so it is prepared
/// once and cached, and short enough to parse cheaply.
const ROWS_PER_INSERT: usize = 100;

/// The ledger's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// One rollup cell's increments.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
}

impl Sums {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.errors += i64::from(r.is_error());
        self.input_tokens += to_i64(r.input_tokens);
        self.output_tokens += to_i64(r.output_tokens);
        self.cached_tokens += to_i64(r.cached_tokens);
        self.cost_usd += if r.cost_usd.is_finite() {
            r.cost_usd
        } else {
            0.0
        };
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A rollup cell: the hour and the five names (`""` for none).
type Cell = (i64, String, String, String, String, &'static str);

impl Db {
    /// A pool on `config.url` (a SQLite file is created when missing). Connects lazily: a
    /// PostgreSQL that is down at start-up does not stop the gateway; [`Db::migrate`] is the
    /// first call that needs it.
    pub fn open(config: &LedgerConfig) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = config.backend();
        let url = match backend {
            Backend::Sqlite if !config.url.contains('?') => format!("{}?mode=rwc", config.url),
            _ => config.url.clone(),
        };
        let pool = AnyPoolOptions::new()
            // SQLite has one writer; PostgreSQL gets a few for readers (reports) besides.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(&url)?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the migrations not applied yet.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                applied_ms BIGINT NOT NULL
            )",
        )
        .execute(&self.pool)
        .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<AnyRow> =
                sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(*version)
            .bind(super::record::unix_ms(std::time::SystemTime::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Writes `batch` in one transaction: the records not written before, and their
    /// increments to the hourly rollups. Returns how many were new.
    pub async fn insert(&self, batch: &[UsageRecord]) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = std::collections::HashSet::new();
        for chunk in batch.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO usage_records (id, at_ms, request_id, trace_id, key_name, team, \
                 model, provider, api, status, stream, input_tokens, output_tokens, \
                 cached_tokens, cost_usd, duration_ms, upstream_ms, overhead_ms, ttft_ms) VALUES ",
            );
            for row in 0..chunk.len() {
                sql.push_str(if row == 0 { "(" } else { ", (" });
                for col in 0..COLUMNS {
                    if col > 0 {
                        sql.push_str(", ");
                    }
                    // SQLite looks a `$N` up by name (a scan of every parameter, for each):
                    // positional `?` there, `$N` for PostgreSQL.
                    match self.backend {
                        Backend::Sqlite => sql.push('?'),
                        Backend::Postgres => {
                            sql.push('$');
                            sql.push_str(&(row * COLUMNS + col + 1).to_string());
                        }
                    }
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(r.id_hex())
                    .bind(r.at_ms)
                    .bind(r.request_id.to_string())
                    .bind(r.trace_id.as_deref().map(str::to_owned))
                    .bind(r.key.as_deref().map(str::to_owned))
                    .bind(r.team.as_deref().map(str::to_owned))
                    .bind(r.model.to_string())
                    .bind(r.provider.as_deref().map(str::to_owned))
                    .bind(r.api)
                    .bind(r.status)
                    .bind(i64::from(r.stream))
                    .bind(to_i64(r.input_tokens))
                    .bind(to_i64(r.output_tokens))
                    .bind(to_i64(r.cached_tokens))
                    .bind(r.cost_usd)
                    .bind(r.duration_ms)
                    .bind(r.upstream_ms)
                    .bind(r.overhead_ms)
                    .bind(r.ttft_ms);
            }
            for row in query.fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get::<String, _>(0)?);
            }
        }
        let mut cells: BTreeMap<Cell, Sums> = BTreeMap::new();
        for r in batch.iter().filter(|r| inserted.contains(&r.id_hex())) {
            let name = |v: &Option<std::sync::Arc<str>>| v.as_deref().unwrap_or("").to_owned();
            let cell = (
                r.hour_ms(),
                name(&r.key),
                name(&r.team),
                r.model.to_string(),
                name(&r.provider),
                r.api,
            );
            cells.entry(cell).or_default().add(r);
        }
        for ((hour, key, team, model, provider, api), s) in &cells {
            sqlx::query(
                "INSERT INTO usage_hourly (hour_ms, key_name, team, model, provider, api, \
                 requests, errors, input_tokens, output_tokens, cached_tokens, cost_usd) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (hour_ms, key_name, team, model, provider, api) DO UPDATE SET \
                 requests = usage_hourly.requests + excluded.requests, \
                 errors = usage_hourly.errors + excluded.errors, \
                 input_tokens = usage_hourly.input_tokens + excluded.input_tokens, \
                 output_tokens = usage_hourly.output_tokens + excluded.output_tokens, \
                 cached_tokens = usage_hourly.cached_tokens + excluded.cached_tokens, \
                 cost_usd = usage_hourly.cost_usd + excluded.cost_usd",
            )
            .bind(*hour)
            .bind(key.clone())
            .bind(team.clone())
            .bind(model.clone())
            .bind(provider.clone())
            .bind(*api)
            .bind(s.requests)
            .bind(s.errors)
            .bind(s.input_tokens)
            .bind(s.output_tokens)
            .bind(s.cached_tokens)
            .bind(s.cost_usd)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(inserted.len() as u64)
    }

    /// Deletes raw records that ended before `before_ms` (the rollups stay).
    pub async fn prune(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM usage_records WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Rollup sums grouped by `by` over the hours starting in `since_ms..until_ms`, largest
    /// spend first.
    pub async fn usage(
        &self,
        by: super::report::By,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<(String, Sums)>, sqlx::Error> {
        let column = by.column();
        let sql = format!(
            "SELECT {column}, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
             CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
             CAST(SUM(cached_tokens) AS BIGINT), CAST(SUM(cost_usd) AS DOUBLE PRECISION) \
             FROM usage_hourly \
             WHERE hour_ms >= $1 AND hour_ms < $2 GROUP BY {column} \
             ORDER BY SUM(cost_usd) DESC, {column}"
        );
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .bind(until_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>(0)?,
                    Sums {
                        requests: row.try_get::<i64, _>(1)?,
                        errors: row.try_get::<i64, _>(2)?,
                        input_tokens: row.try_get::<i64, _>(3)?,
                        output_tokens: row.try_get::<i64, _>(4)?,
                        cached_tokens: row.try_get::<i64, _>(5)?,
                        cost_usd: row.try_get::<f64, _>(6)?,
                    },
                ))
            })
            .collect()
    }

    /// USD spent by a key (`team: false`) or a team since `since_ms` (from the rollups: a
    /// budget period starts on an hour).
    pub async fn spent_since(
        &self,
        team: bool,
        name: &str,
        since_ms: i64,
    ) -> Result<f64, sqlx::Error> {
        let column = if team { "team" } else { "key_name" };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage_hourly \
             WHERE {column} = $1 AND hour_ms >= $2"
        );
        let row = sqlx::query(&sql)
            .bind(name.to_owned())
            .bind(since_ms)
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<f64, _>(0)
    }

    /// Raw records and their sums (tests and `gatewayz usage --raw` checks).
    pub async fn raw_totals(&self) -> Result<(i64, f64), sqlx::Error> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage_records",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get::<i64, _>(0)?, row.try_get::<f64, _>(1)?))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
