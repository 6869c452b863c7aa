//! Wiring: builds the router and the shared state, starts the HTTP server, handles the
//! process signals, and shuts down in order within one budget (`server.shutdown_timeout`,
//! split by [`Budget`]): stop accepting and drain requests, cut the streams still open with an
//! SSE error event just before the drain deadline, close what is left at the deadline, then
//! flush telemetry with what remains — the Loki shipper first (so the server's own goodbye
//! lines are shipped too), the trace exporter last.
//!
//! Signals are handled here, not by actix: SIGTERM drains gracefully; SIGINT and SIGQUIT stop
//! at once (actix's own behaviour; also during a drain), still flushing telemetry within the
//! budget; SIGHUP reloads the configuration file ([`reload`]), where its default action would
//! kill the process.

pub mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::actors::reporter::MetricsReporter;
use crate::actors::Actors;
use crate::board::Board;
use crate::catalog::Catalog;
use crate::config::{Config, Invalid};
use crate::http::access::MetricsAccess;
use crate::http::auth::{Changes, KeyStore};
use crate::http::drain::Drain;
use crate::http::models::ModelLists;
use crate::http::server_span::server_span;
use crate::http::{self, AppState, Generation};
use crate::ledger::keys::{KeySync, StoredKey};
use crate::ledger::Ledger;
use crate::router::{ClientError, Router};
use crate::shutdown::Budget;
use crate::state::{InProcess, Shared, Store};
use crate::telemetry::loki::LokiHandle;
use crate::telemetry::metrics::log_stats::LogStats;
use crate::telemetry::metrics::protocol_errors;
use crate::telemetry::metrics::{Labels, Metrics, Sources};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address is not allowed by the configuration (no keys, not loopback).
    #[error("configuration: {}: {}", .0.key, .0.message)]
    Exposure(Invalid),
    /// A provider's client could not be built.
    #[error("configuration: {0}")]
    Client(#[from] ClientError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    #[error("configuration: {0}")]
    SharedState(#[from] crate::state::shared::StartError),
    #[error("configuration: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// Runs the gateway until SIGTERM (graceful) or SIGINT / SIGQUIT (at once). `listen`
/// overrides `server.listen`. Once the server has stopped, flushes the Loki shipper, then the
/// trace exporter (outside the actix runtime: that flush blocks), within what is left of the
/// shutdown budget.
pub fn run(config: Config, listen: Option<SocketAddr>) -> Result<(), AppError> {
    run_with(config, listen, crate::telemetry::take_loki())
}

/// [`run`] with the Loki shipper `telemetry::init` built (in-process tests pass their own):
/// it starts before the server and is flushed after the server stopped (within
/// `telemetry.loki.shutdown_deadline` and its share of the budget); then the trace exporter
/// is flushed with the rest.
pub fn run_with(
    config: Config,
    listen: Option<SocketAddr>,
    loki: Option<LokiHandle>,
) -> Result<(), AppError> {
    // The shipper's counters are the ones `/metrics` exports.
    let log_stats = loki.as_ref().map_or_else(
        crate::telemetry::metrics::log_stats::global,
        LokiHandle::stats,
    );
    let budget = Budget::new(config.server.shutdown_timeout);
    let traces_follow = crate::telemetry::traces_exported();
    let (result, began) = actix_web::rt::System::new().block_on(async move {
        let shipper = loki.map(LokiHandle::start);
        // Ends with the actix system.
        actix_web::rt::spawn(protocol_errors::report_every(
            protocol_errors::SUMMARY_INTERVAL,
        ));
        let drain = Arc::new(Drain::default());
        let result = serve(config, listen, log_stats, budget, drain.clone()).await;
        if result.is_err() {
            // What started before the failure (the actors) gets its first poll here, inside
            // the runtime: dropped unpolled with the system, an actor would start outside it
            // and panic (a timer needs the runtime) after the error was already decided.
            actix_web::rt::task::yield_now().await;
        }
        let began = drain.started().unwrap_or_else(Instant::now);
        if let Some(shipper) = shipper {
            shipper
                .shutdown_within(budget.loki(began.elapsed(), traces_follow))
                .await;
        }
        (result, began)
    });
    crate::telemetry::shutdown(budget.left(began.elapsed()));
    result
}

/// The listening socket, as actix-server binds one (`SO_REUSEADDR`, a backlog of 2,048).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(2048)?;
    Ok(socket.into())
}

/// What the handlers read besides the configuration: everything built before them.
pub struct Parts {
    pub catalog: Arc<Catalog>,
    pub board: Arc<ArcSwap<Board>>,
    pub router: Arc<Router>,
    pub keys: Arc<KeyStore>,
    pub limits: Store,
    pub ledger: Option<Arc<Ledger>>,
    pub key_sync: Option<KeySync>,
    pub drain: Arc<Drain>,
    /// Unix time the gateway started.
    pub started_unix: u64,
}

/// Builds the shared state handlers read.
pub fn build_state(config: &Config, parts: Parts) -> AppState {
    let Parts {
        catalog,
        board,
        router,
        keys,
        limits,
        ledger,
        key_sync,
        drain,
        started_unix,
    } = parts;
    let models = ModelLists::new(&catalog, started_unix);
    AppState {
        live: ArcSwap::from_pointee(Generation {
            config: Arc::new(config.clone()),
            catalog,
            router,
            models,
        }),
        board,
        keys,
        key_sync,
        limits,
        ledger,
        admin_token: config
            .admin
            .token
            .as_deref()
            .map(crate::http::admin::AdminToken::new),
        console: config
            .admin
            .token
            .as_ref()
            .map(|_| Arc::new(crate::http::console::Console::default())),
        reload: std::sync::OnceLock::new(),
        access_log: config.telemetry.access_log,
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: config.server.body_read_timeout,
        request_timeout: config.server.request_timeout,
        started_unix,
        drain,
    }
}

async fn serve(
    config: Config,
    listen: Option<SocketAddr>,
    log_stats: Arc<LogStats>,
    budget: Budget,
    drain: Arc<Drain>,
) -> Result<(), AppError> {
    let listen = listen.unwrap_or(config.server.listen);
    config.check_exposure(listen).map_err(AppError::Exposure)?;
    // Bound before anything starts: an address in use fails the start before it connects to
    // a shared store or starts a thread.
    let listener = bind(listen).map_err(|source| AppError::Bind {
        addr: listen,
        source,
    })?;
    crate::install_crypto_provider();
    // The configuration resolved once; every table below is indexed by its ids.
    let catalog = Arc::new(Catalog::new(&config));
    let board = Arc::new(catalog.board());
    // The board of the configuration in force: the metrics and handlers read it, a reload
    // swaps it.
    let boards = Arc::new(ArcSwap::new(board.clone()));
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keys = Arc::new(KeyStore::new(&config.keys, catalog.clone(), started_unix));
    // Limit counters in this process, every limiter whole now (with `[state] redis_url`, the
    // fallback and the budgets' mirror of the shared store); the metrics read its budgets,
    // and it counts spend into the metrics' meters.
    let local = Arc::new(InProcess::new(&config, &catalog, Instant::now()));
    let limits = match config.state.redis_url {
        Some(_) => Store::Shared(Arc::new(Shared::start(&config, local.clone())?)),
        None => Store::Local(local.clone()),
    };
    let budgets = local.clone();
    let trials = keys.clone();
    let metrics = Arc::new(
        Metrics::new_or_detached(Sources {
            board: boards.clone(),
            log_stats,
            trials: Arc::new(move |now| trials.active_trials(now)),
            budgets: Arc::new(move |now, observe| budgets.budgets_left(now, observe)),
        })
        .with_legacy_names(config.metrics.legacy_names),
    );
    let meters = metrics.meters.clone();
    limits.attach_meters(meters.clone());
    let actors = Actors::start(&config, &catalog, board.clone(), meters.clone());
    let outbox = actors.outbox();
    let reporter = Arc::new(MetricsReporter {
        meters: meters.clone(),
        labels: Arc::new(Labels::new(&board)),
        outbox: outbox.clone(),
    });
    let router = Arc::new(Router::new(
        catalog.clone(),
        board.clone(),
        config.routing.max_attempts,
        reporter,
    )?);
    let shared = match &limits {
        Store::Shared(shared) => Some(shared.clone()),
        Store::Local(_) => None,
    };
    let (ledger, key_sync) = match &config.ledger {
        Some(settings) => {
            // The keys kept in the database join the file's; then, without a shared store,
            // budgets start from the spend the ledger holds.
            open_ledger(settings, &keys, &limits).await?;
            let ledger = Arc::new(Ledger::start(settings, meters.clone())?);
            let (on_keys, store) = (keys.clone(), limits.clone());
            let sync = KeySync::start(
                settings,
                config.admin.key_sync_interval,
                Arc::new(move |stored| apply_keys(&on_keys, stored, &store)),
            )?;
            (Some(ledger), Some(sync))
        }
        None => (None, None),
    };
    let state = web::Data::new(build_state(
        &config,
        Parts {
            catalog,
            board: boards.clone(),
            router,
            keys,
            limits,
            ledger: ledger.clone(),
            key_sync,
            drain: drain.clone(),
            started_unix,
        },
    ));
    if let Some(console) = &state.console {
        console.start_sampling(metrics.clone());
    }
    let access = web::Data::new(MetricsAccess::new(&config.metrics));
    let reload_meters = meters.clone();
    let (metrics, board, meters) = (
        web::Data::from(metrics),
        web::Data::from(boards),
        web::Data::from(meters),
    );
    let handlers = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(crate::http::track::track))
            .wrap(from_fn(server_span))
            .wrap(from_fn(crate::http::request_id::request_id))
            .app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(access.clone())
            .app_data(board.clone())
            .app_data(meters.clone())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    // Signals are ours (see `Signals`), and so is the drain deadline: actix's own timeout is
    // only a backstop past it.
    .disable_signals()
    .shutdown_timeout(budget.drain().as_secs() + 1)
    // Streams are relayed chunk by chunk: with Nagle on, a chunk written while the previous one
    // is unacknowledged waits for the client's delayed ACK (~40 ms on Linux).
    .tcp_nodelay(true);
    if let Some(workers) = config.server.workers {
        server = server.workers(workers);
    }
    let server = server.listen(listener).map_err(|source| AppError::Bind {
        addr: listen,
        source,
    })?;
    let mut signals = Signals::install()?;
    let reloader = Arc::new(reload::Reloader {
        state: handlers.clone(),
        actors,
        outbox,
        meters: reload_meters,
        listen: server.addrs().first().copied().unwrap_or(listen),
        running: tokio::sync::Mutex::new(()),
    });
    // The admin API holds the reloader weakly: it lives as long as this function.
    let weak = Arc::downgrade(&reloader);
    let _ = handlers.reload.set(Arc::new(move || {
        let reloader = weak.upgrade();
        Box::pin(async move {
            match reloader {
                Some(reloader) => reloader.reload("admin_api").await,
                None => Err(crate::errors::ApiError::ShuttingDown),
            }
        })
    }));
    let on_hup = || {
        let reloader = reloader.clone();
        actix_web::rt::spawn(async move {
            // The outcome is logged and counted by the reload itself.
            let _ = reloader.reload("SIGHUP").await;
        });
    };
    if let Some(&listen) = server.addrs().first() {
        let traces = crate::telemetry::traces_target();
        let banner = crate::config::banner(
            &config,
            &crate::config::Running {
                version: env!("CARGO_PKG_VERSION"),
                listen,
                traces: traces.as_deref(),
            },
        );
        let source = config
            .source
            .as_ref()
            .map_or_else(|| "built-in".into(), |p| p.display().to_string());
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = %source,
            listen = %listen,
            "{}",
            banner.trim_end()
        );
    }
    // After the banner: tests and scripts wait for this line.
    for addr in server.addrs() {
        tracing::info!(%addr, "gatewayz listening on http://{addr}");
    }
    let mut server = server.run();
    let handle = server.handle();
    let stop = tokio::select! {
        result = &mut server => {
            result?;
            tracing::info!("gatewayz stopped");
            return Ok(());
        }
        stop = signals.next_stop(&on_hup) => stop,
    };
    let began = drain.start();
    match stop {
        Stop::Graceful => {
            tracing::info!(
                drain_seconds = budget.drain().as_secs_f64(),
                budget_seconds = budget.total().as_secs_f64(),
                "SIGTERM received; draining requests in flight"
            );
            // The command is sent now; polling `server` carries it out.
            drop(handle.stop(true));
            let cut = tokio::time::sleep_until((began + budget.cut()).into());
            let deadline = tokio::time::sleep_until((began + budget.drain()).into());
            tokio::pin!(cut, deadline);
            let mut cut_done = false;
            loop {
                tokio::select! {
                    result = &mut server => {
                        result?;
                        break;
                    }
                    () = &mut cut, if !cut_done => {
                        cut_done = true;
                        tracing::info!("drain deadline near: ending open streams");
                        drain.cut();
                    }
                    () = &mut deadline => {
                        tracing::warn!("drain deadline passed: closing the connections still open");
                        // Dropping the server stops its workers at once.
                        drop(server);
                        break;
                    }
                    again = signals.next_stop(&|| tracing::info!(
                        signal = "SIGHUP",
                        "draining; SIGHUP ignored"
                    )) => match again {
                        Stop::Now => {
                            // Dropping the server stops its workers at once.
                            drop(server);
                            break;
                        }
                        Stop::Graceful => tracing::info!("already draining; SIGTERM ignored"),
                    },
                }
            }
        }
        Stop::Now => {
            drop(handle.stop(false));
            server.await?;
        }
    }
    if let Some(shared) = shared {
        // The requests' last settlements reach the shared store before the process goes.
        shared.flush(SHARED_FLUSH).await;
    }
    if let Some(ledger) = ledger {
        // The last usage records, within a third of what the budget has left after the drain
        // (the Loki shipper and the trace exporter flush after it).
        let elapsed = drain.started().map_or(Duration::ZERO, |t| t.elapsed());
        ledger.flush(budget.left(elapsed) / 3).await;
    }
    tracing::info!("gatewayz stopped");
    Ok(())
}

/// The ledger at start-up, over one pool: its migrations applied, then `budgets` (when there
/// is no shared store) set from their period's spend. An SQLite file that cannot be opened is
/// a configuration error; a database server that does not answer within 5 s is waited out
/// by the writer, and the budgets start whole (both said in the log).
async fn open_ledger(
    settings: &crate::config::LedgerConfig,
    keys: &KeyStore,
    limits: &Store,
) -> Result<(), crate::ledger::LedgerError> {
    let budgets = match limits {
        Store::Local(local) => Some(&**local),
        Store::Shared(_) => None,
    };
    let sqlite = settings.backend() == crate::config::Backend::Sqlite;
    let fail = |e: &sqlx::Error| {
        crate::ledger::LedgerError(format!(
            "cannot open the SQLite file: {}",
            crate::ledger::describe(e)
        ))
    };
    let db = match crate::ledger::Db::open(settings) {
        Ok(db) => db,
        Err(e) if sqlite => return Err(fail(&e)),
        Err(_) => return Ok(()),
    };
    let migrated = tokio::time::timeout(Duration::from_secs(5), db.migrate()).await;
    let result = match migrated {
        Ok(Err(e)) if sqlite => Err(fail(&e)),
        Ok(Ok(())) => {
            match tokio::time::timeout(Duration::from_secs(5), db.keys()).await {
                Ok(Ok(stored)) => apply_keys(keys, &stored, limits),
                Ok(Err(e)) => tracing::warn!(
                    error = %crate::ledger::describe(&e),
                    "the API keys in the ledger's database could not be read yet; they join \
                     when it answers"
                ),
                Err(_) => tracing::warn!(
                    "the API keys in the ledger's database could not be read within 5s; they \
                     join when it answers"
                ),
            }
            if let Some(local) = budgets {
                reload_budgets(&db, local).await;
            }
            Ok(())
        }
        Ok(Err(e)) => {
            if budgets.is_some() {
                tracing::warn!(
                    error = %crate::ledger::describe(&e),
                    "budgets start whole: the ledger could not be read"
                );
            }
            Ok(())
        }
        Err(_) => {
            if budgets.is_some() {
                tracing::warn!("budgets start whole: the ledger did not answer within 5s");
            }
            Ok(())
        }
    };
    db.close().await;
    result
}

/// Makes the database's keys the ones in force (beside the file's), with a line saying what
/// changed.
fn apply_keys(keys: &KeyStore, stored: &[StoredKey], limits: &Store) {
    let changes = keys.sync(stored, limits);
    if changes != Changes::default() {
        tracing::info!(
            added = changes.added,
            changed = changes.changed,
            removed = changes.removed,
            "API keys from the ledger's database applied"
        );
    }
}

/// Sets every budget's spend from the ledger's rollups.
async fn reload_budgets(db: &crate::ledger::Db, local: &InProcess) {
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        local.reload_budgets(SystemTime::now(), |team, name, since| async move {
            db.spent_since(team, &name, since).await
        }),
    )
    .await;
    match read {
        Ok(Ok(n)) if n > 0 => tracing::info!(budgets = n, "budgets resume from the ledger's spend"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(
            error = %crate::ledger::describe(&e),
            "budgets start whole: the ledger could not be read"
        ),
        Err(_) => tracing::warn!("budgets start whole: the ledger did not answer within 5s"),
    }
}

/// The longest the shared limit store's last settlements may hold the exit.
const SHARED_FLUSH: Duration = Duration::from_secs(1);

/// How the process was asked to stop.
enum Stop {
    /// SIGTERM: drain within the budget.
    Graceful,
    /// SIGINT, SIGQUIT: close connections at once (also during a drain).
    Now,
}

/// The process signals the gateway handles (instead of actix, which would let SIGHUP kill it).
struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for a stop signal, calling `on_hup` at each SIGHUP meanwhile.
    async fn next_stop(&mut self, on_hup: &dyn Fn()) -> Stop {
        loop {
            tokio::select! {
                Some(()) = self.hup.recv() => on_hup(),
                Some(()) = self.term.recv() => return Stop::Graceful,
                Some(()) = self.int.recv() => {
                    tracing::info!(signal = "SIGINT", "stopping now");
                    return Stop::Now;
                }
                Some(()) = self.quit.recv() => {
                    tracing::info!(signal = "SIGQUIT", "stopping now");
                    return Stop::Now;
                }
                else => return Stop::Now,
            }
        }
    }
}
