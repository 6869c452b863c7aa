//! The one shared module of the black-box tests. This file starts the real `gatewayz` binary
//! (gateway or mock-upstream) on a random loopback port, finds the address it logged and stops
//! it on drop, and holds the request, configuration and polling helpers every test file uses;
//! [`scrape`] reads `/metrics`, [`otlp`] and [`loki`] are protocol-faithful receivers, [`proxy`]
//! is an HTTP proxy that records what it relays, [`redis`] a throwaway `redis-server`,
//! [`postgres`] a throwaway PostgreSQL cluster, and [`inproc`] runs the gateway inside the test
//! process. Each test binary uses a subset, hence `dead_code` allowed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod inproc;
pub mod loki;
pub mod otlp;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod scrape;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// Sends a signal by name (`"HUP"`, `"TERM"`, ...).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        poll(limit, || self.child.try_wait().ok().flatten())
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
            // A text line ends the address with a space, a JSON one with a quote.
            if let Some(addr) = line
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
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

/// Starts the gateway on a random port with its built-in configuration (a mock provider
/// serving `mock-gpt`).
pub fn builtin_gateway() -> Process {
    spawn(&["serve", "--listen", "127.0.0.1:0"], &[], None)
}

/// Starts the gateway on a random port with `config` (TOML) written to a temp file.
pub fn gateway(config: &str) -> Process {
    gateway_with_env(config, &[])
}

pub fn gateway_with_env(config: &str, envs: &[(&str, &str)]) -> Process {
    let (dir, path) = config_file(config);
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

/// A mock-upstream failing every chat request the way `mode` (`--fail-mode`) says.
pub fn failing_upstream(mode: &str) -> Process {
    mock_upstream(&["--fail-rate", "1", "--fail-mode", mode])
}

/// A `kind = "openai"` `[providers.NAME]` section at `base` (a URL up to `/v1`), with `extra`
/// keys.
pub fn provider_at(name: &str, base: &str, extra: &str) -> String {
    format!("[providers.{name}]\nkind = \"openai\"\nbase_url = \"{base}\"\n{extra}\n")
}

/// A `[providers.NAME]` section for an upstream served by a mock-upstream process.
pub fn openai_provider(name: &str, upstream: &Process, extra: &str) -> String {
    provider_at(name, &upstream.url("/v1"), extra)
}

/// A `[models.ID]` section served by `providers`, in that order.
pub fn model(id: &str, providers: &[&str]) -> String {
    format!("[models.{id}]\nproviders = {providers:?}\n")
}

/// The failover pair: a gateway with model `m` = [bad, good] and `m-bad` = [bad]; `bad` at
/// `bad_base` (a URL up to `/v1`) with `bad_extra` keys, `extra` sections ahead of them all.
pub fn failover_gateway(bad_base: &str, bad_extra: &str, good: &Process, extra: &str) -> Process {
    gateway(&format!(
        "{extra}{}{}{}{}",
        provider_at("bad", bad_base, bad_extra),
        openai_provider("good", good, ""),
        model("m", &["bad", "good"]),
        model("m-bad", &["bad"]),
    ))
}

/// A streamed chat completion read up to its first bytes and held there while the test does
/// something (a reload, a look at what is in flight), then read to its end.
pub struct HeldStream {
    resume: mpsc::Sender<()>,
    reader: std::thread::JoinHandle<(u16, String)>,
}

impl HeldStream {
    /// Sends `body` (a streamed request) to the gateway at `addr`, with `key` as bearer token
    /// when given, and returns once its first bytes have arrived.
    pub fn open(addr: SocketAddr, body: String, key: Option<String>) -> Self {
        let (opened, opened_rx) = mpsc::channel();
        let (resume, resume_rx) = mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let mut request = chat_request(&client(), addr, body);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let mut reply = request.send().expect("send the held stream");
            let mut head = [0u8; 64];
            let n = reply.read(&mut head).expect("the stream's first bytes");
            opened.send(()).expect("the test waits");
            // The test dropping its end also lets the stream go.
            let _ = resume_rx.recv();
            let mut rest = String::new();
            let _ = reply.read_to_string(&mut rest);
            (
                reply.status().as_u16(),
                format!("{}{rest}", String::from_utf8_lossy(&head[..n])),
            )
        });
        opened_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the held stream's first bytes within 30s");
        Self { resume, reader }
    }

    /// Reads the rest of the stream: its status and whole body.
    pub fn finish(self) -> (u16, String) {
        let _ = self.resume.send(());
        self.reader.join().expect("the held stream's reader")
    }
}

/// Runs `node SCRIPT ARGS…` in `dir` (the SDKs' and playwright-core's `node_modules`), with
/// `envs` and without the OpenAI SDK's environment defaults, to its end.
pub fn node(
    dir: &std::path::Path,
    script: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut command = Command::new("node");
    command
        .arg(dir.join(script))
        .args(args)
        .current_dir(dir)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY");
    for (k, v) in envs {
        command.env(k, v);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): node is required for this test"))
}

/// A blocking HTTP client for tests.
pub fn client() -> reqwest::blocking::Client {
    gatewayz::install_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// One pooled client per test thread, for loops of requests: building one per request costs
/// a runtime and a connection each time.
pub fn http() -> reqwest::blocking::Client {
    thread_local! {
        static CLIENT: reqwest::blocking::Client = client();
    }
    CLIENT.with(|c| c.clone())
}

/// `GET PATH` of a process, with `token` as bearer token when given.
pub fn get_as(process: &Process, path: &str, token: Option<&str>) -> reqwest::blocking::Response {
    let mut request = client().get(process.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().expect("GET")
}

/// `GET PATH` of a process, as JSON.
pub fn get_json(process: &Process, path: &str) -> serde_json::Value {
    get_as(process, path, None)
        .json()
        .unwrap_or_else(|e| panic!("GET {path} as JSON: {e}"))
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

/// The one chat completion request: `POST /v1/chat/completions` of a JSON `body` to the
/// gateway at `addr` (a [`Process`]'s or an [`inproc`] one's), for the caller to add headers
/// to and send.
pub fn chat_request(
    client: &reqwest::blocking::Client,
    addr: SocketAddr,
    body: impl Into<reqwest::blocking::Body>,
) -> reqwest::blocking::RequestBuilder {
    client
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
}

/// POSTs a chat completion body to the gateway, with `key` as bearer token when given.
pub fn post_chat(gw: &Process, body: &str, key: Option<&str>) -> reqwest::blocking::Response {
    let mut request = chat_request(&client(), gw.addr, body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().expect("send chat request")
}

/// The key of the `team` client in [`TEAM_AND_TRIAL_KEYS`].
pub const TEAM_KEY: &str = "team-key-123456";

/// Two client keys: `team` ([`TEAM_KEY`]) and `trial`, a trial running until 2099.
pub const TEAM_AND_TRIAL_KEYS: &str = r#"
[[keys]]
name = "team"
key = "team-key-123456"

[[keys]]
name = "trial"
key = "trial-key-123456"
trial_expires = "2099-01-01T00:00:00Z"
"#;

/// A model `mock-gpt` served by the built-in mock provider `mock-a`.
pub const MOCK_CONFIG: &str = r#"
[providers.mock-a]
kind = "mock"

[models.mock-gpt]
providers = ["mock-a"]
"#;

/// A chat completion on `mock-gpt` ([`MOCK_CONFIG`]) carrying `x-request-id: id`; the status,
/// 0 when no answer came.
pub fn chat_with_id(client: &reqwest::blocking::Client, addr: SocketAddr, id: &str) -> u16 {
    chat_request(client, addr, chat_body("mock-gpt", "hi", false))
        .header("x-request-id", id)
        .send()
        .map_or(0, |r| r.status().as_u16())
}

/// Asserts an OpenAI-shaped error `{"error": {"message", "type", "code"}}` with `status` and
/// `code`; returns the body.
pub fn assert_openai_error(
    reply: reqwest::blocking::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(reply.status().as_u16(), status, "status");
    let content_type = reply
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = reply.json().expect("JSON error body");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert!(error["type"].as_str().is_some(), "type in {body}");
    assert_eq!(error["code"], code, "code in {body}");
    body
}

/// `GET /mock/stats` of a mock-upstream process.
pub fn mock_stats(upstream: &Process) -> serde_json::Value {
    get_json(upstream, "/mock/stats")
}

/// The `KEY=N` figure of a log line, such as the `count=12` of a summary.
pub fn log_figure(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
}

/// How often [`poll`] asks again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// The polling loop of the tests: asks `check` until it returns `Some` (that value), or gives
/// `None` once `limit` has passed; asks at least once. A wait is a condition polled with a
/// deadline, never a sleep that hopes. (Two waits live elsewhere: the Loki receiver's condvar,
/// as `loki.rs` stays self-contained for `benches/loki.rs`, and `loki_shipping`'s async one.)
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Polls `condition` until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    if poll(limit, || condition().then_some(())).is_none() {
        panic!("timed out: {what}");
    }
}

/// A `[[keys]]` entry named `name` with secret [`key_secret`]`(name)` and `lines`.
pub fn key_entry(name: &str, lines: &str) -> String {
    format!(
        "[[keys]]\nname = \"{name}\"\nkey = \"{}\"\n{lines}\n",
        key_secret(name)
    )
}

/// The secret of [`key_entry`]`(name, ..)`.
pub fn key_secret(name: &str) -> String {
    format!("{name}-secret-key")
}

/// A loopback address nothing listens on (a port just bound and released): a target that
/// refuses connections, or a port to hand to a server that cannot be started on port 0.
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// What a process that ran to its end reported.
pub struct Exited {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `gatewayz ARGS...` to completion, killing it (and failing) after `limit`: for
/// commands that must exit on their own, such as `serve` with a bad configuration.
pub fn run_to_exit(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Exited {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start gatewayz");
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let status = poll(limit, || child.try_wait().expect("wait")).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("gatewayz {args:?} did not exit within {limit:?}");
    });
    Exited {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

/// Writes `contents` to a `gatewayz.toml` in a fresh temp dir.
pub fn config_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gatewayz.toml");
    std::fs::write(&path, contents).expect("write config");
    let path = path.to_str().expect("utf-8 path").to_owned();
    (dir, path)
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

/// The text a streamed answer spells out, and its usage chunk when there was one.
pub fn assemble(events: &[String]) -> (String, Option<serde_json::Value>) {
    let mut text = String::new();
    let mut usage = None;
    for data in events.iter().filter(|d| *d != "[DONE]") {
        let v: serde_json::Value = serde_json::from_str(data).expect("JSON event");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    (text, usage)
}

/// `$GATEWAYZ_TEST_PYTHON`, else `./.venv/bin/python`.
pub fn python() -> std::path::PathBuf {
    if let Some(python) = std::env::var_os("GATEWAYZ_TEST_PYTHON") {
        return std::path::PathBuf::from(python);
    }
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the OpenAI and Anthropic SDKs: neither $GATEWAYZ_TEST_PYTHON nor {} exists; \
         run ./scripts/test, which creates the virtual environment",
        venv.display()
    );
    venv
}

/// Runs a tool (`python3 alerts/render.py`, `promtool`) to its end and returns what it wrote
/// on stdout; a tool that cannot start, or exits unsuccessfully, fails the test with its
/// output.
pub fn run_tool(command: &mut Command) -> Vec<u8> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
