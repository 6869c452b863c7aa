//! Shared support for black-box tests: start the real `gatewayz` binary (gateway or
//! mock-upstream) on a random loopback port, find the address it logged, stop it on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod otlp;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `gatewayz` process.
pub struct Process {
    pub addr: SocketAddr,
    child: Child,
    /// Every stderr line so far (the process keeps logging after start-up).
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Process {
    /// `http://ADDR`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far, joined.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatewayz"))
}

/// Starts `gatewayz ARGS...` and waits until it logs `listening on http://ADDR`.
pub fn spawn(args: &[&str], envs: &[(&str, &str)], dir: Option<tempfile::TempDir>) -> Process {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("GATEWAYZ_TEST_LOG").unwrap_or("info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start gatewayz");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "gatewayz {args:?} did not report its address; log:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
    };
    Process {
        addr,
        child,
        log,
        _dir: dir,
    }
}

/// Starts the gateway on a random port with `config` (TOML) written to a temp file.
pub fn gateway(config: &str) -> Process {
    gateway_with_env(config, &[])
}

pub fn gateway_with_env(config: &str, envs: &[(&str, &str)]) -> Process {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gatewayz.toml");
    std::fs::write(&path, config).expect("write config");
    let path = path.to_str().expect("utf-8 path").to_owned();
    spawn(
        &["serve", "--config", &path, "--listen", "127.0.0.1:0"],
        envs,
        Some(dir),
    )
}

/// Starts `gatewayz mock-upstream` on a random port with extra flags.
pub fn mock_upstream(flags: &[&str]) -> Process {
    let mut args = vec!["mock-upstream", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(flags);
    spawn(&args, &[], None)
}

/// A `[providers.NAME]` section for an upstream served by a mock-upstream process.
pub fn openai_provider(name: &str, upstream: &Process, extra: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\n{extra}\n",
        upstream.url("/v1")
    )
}

/// A blocking HTTP client for tests.
pub fn client() -> reqwest::blocking::Client {
    gatewayz::install_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A chat completion body.
pub fn chat_body(model: &str, prompt: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string()
}
