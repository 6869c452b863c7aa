//! A throwaway PostgreSQL cluster (Debian's package binaries, the newest under
//! `/usr/lib/postgresql/*/bin`) on a free loopback port, its data and socket in a temp dir:
//! `initdb` by the test, stopped at once (`pg_ctl stop -m immediate`, as a crash would look),
//! restartable on the same port with its data, removed when dropped. Never the machine's own
//! cluster: a fresh machine has none, and a test must not touch one that exists.
//!
//! Built for speed where it does not change what a test sees: `fsync` and `full_page_writes`
//! are off (a machine crash could lose data; a stopped server cannot, the OS keeps what was
//! written), but commits are synchronous, so every commit a client was told about — the
//! gateway's as much as [`Postgres::sql`]'s — survives [`Postgres::stop`], as in production.
//! PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
//! (`runuser`), which then owns the temp dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::free_addr;

/// How long `pg_ctl` may take to start (crash recovery included) or stop the server.
const PG_CTL_TIMEOUT_SECS: &str = "30";

/// A running (or stopped) PostgreSQL cluster with a `gatewayz` database, superuser
/// `postgres`, trust authentication on loopback.
pub struct Postgres {
    pub addr: SocketAddr,
    running: bool,
    dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/VERSION/bin` holding the server binaries.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let version = |path: &Path| -> Vec<u32> {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.split('.').map_while(|p| p.parse().ok()).collect()
        };
        std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| {
                ["initdb", "pg_ctl", "postgres", "psql"]
                    .iter()
                    .all(|b| bin.join(b).exists())
            })
            .max_by_key(|bin| version(bin.parent().unwrap_or(bin)))
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL is not installed: run ./scripts/test \
                     (it installs Debian's postgresql)"
                )
            })
    })
}

/// Whether this test runs as root (then the server must run as `postgres`).
fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("run id -u");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// `BIN ARGS...` as the user the server runs as: `postgres` through `runuser` when root,
/// the current user otherwise; in `dir`, as the test's working directory may be closed to
/// that user.
fn server_command(bin: &str, args: &[&str], dir: &Path) -> Output {
    let program = bin_dir().join(bin);
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

impl Postgres {
    /// Creates a cluster on a free loopback port, starts it, waits until it is ready and
    /// creates the `gatewayz` database.
    pub fn start() -> Self {
        // As root the server's user must reach the dir: /tmp is open to all, TMPDIR may not be.
        let parent = if is_root() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("gatewayz-pg")
            .tempdir_in(parent)
            .expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown -R postgres:postgres failed");
        }
        let mut pg = Self {
            addr: free_addr(),
            running: false,
            dir,
        };
        let data = pg.data_dir();
        let init = server_command(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            pg.dir.path(),
        );
        assert!(
            init.status.success(),
            "initdb failed:\n{}",
            text(&init.stderr)
        );
        // The settings every start shares; the port is given to each start instead, so that
        // a port taken before the first start can be swapped for another.
        let socket_dir = pg.dir.path().display().to_string().replace('\'', "''");
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n\
             fsync = off\nfull_page_writes = off\n"
        );
        let conf = Path::new(&data).join("postgresql.conf");
        let mut contents = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        contents.push_str(&settings);
        std::fs::write(&conf, contents).expect("write postgresql.conf");
        // free_addr releases the port it found: another process may bind it before the
        // server does; then the server cannot listen, and another port is tried.
        let mut attempts = 0;
        while let Err(log) = pg.try_start() {
            attempts += 1;
            let taken = log.contains("could not create any TCP/IP sockets");
            assert!(taken && attempts < 5, "PostgreSQL did not start:\n{log}");
            pg.addr = free_addr();
        }
        pg.psql("postgres", "create database gatewayz")
            .unwrap_or_else(|e| panic!("create database gatewayz: {e}"));
        pg
    }

    /// `postgres://postgres@ADDR/gatewayz`
    pub fn url(&self) -> String {
        format!("postgres://postgres@{}/gatewayz", self.addr)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint, connections cut,
    /// crash recovery at the next start).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let out = self.stop_now();
        assert!(
            out.status.success(),
            "pg_ctl stop failed:\n{}",
            text(&out.stderr)
        );
        self.running = false;
    }

    /// Starts the server again on the same port and data dir, waiting until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not restart on {}:\n{log}", self.addr);
        }
    }

    /// Runs one query in `gatewayz`; its rows as `psql -At` prints them, trimmed. Panics with
    /// psql's error when it fails.
    pub fn sql(&self, query: &str) -> String {
        self.try_sql(query)
            .unwrap_or_else(|e| panic!("psql {query:?} failed: {e}"))
    }

    /// [`Postgres::sql`], psql's error (stderr) when it fails: a stopped server refuses.
    pub fn try_sql(&self, query: &str) -> Result<String, String> {
        self.psql("gatewayz", query)
    }

    fn psql(&self, database: &str, query: &str) -> Result<String, String> {
        let out = Command::new(bin_dir().join("psql"))
            .args(["-X", "-w", "-h", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .args(["-U", "postgres", "-d", database, "-At"])
            .args(["-c", query])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }

    /// `pg_ctl stop -m immediate`, waiting until the server is gone.
    fn stop_now(&self) -> Output {
        let data = self.data_dir();
        let args = [
            "stop",
            "-D",
            &data,
            "-m",
            "immediate",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ];
        server_command("pg_ctl", &args, self.dir.path())
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// `pg_ctl start --wait`: pg_ctl polls this cluster's `postmaster.pid` until the server
    /// accepts connections, or reports the server's exit; the log when it failed. (Not
    /// `pg_isready` on the port: another server holding the port would answer it.)
    fn try_start(&mut self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let port = format!("-p {}", self.addr.port());
        // The log is kept across starts; a failure reports this start's part of it.
        let logged = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let out = server_command(
            "pg_ctl",
            &[
                "start",
                "-D",
                &data,
                "-l",
                &log.display().to_string(),
                "-o",
                &port,
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
            ],
            self.dir.path(),
        );
        if out.status.success() {
            self.running = true;
            return Ok(());
        }
        // pg_ctl may have left a server behind (a timeout): stop it before the next try.
        let _ = self.stop_now();
        Err(format!(
            "{}\n{}",
            text(&out.stderr),
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .get(logged..)
                .unwrap_or_default()
        ))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The temp dir goes right after; a panic here would abort a test already unwinding.
        if self.running {
            let _ = self.stop_now();
        }
    }
}
