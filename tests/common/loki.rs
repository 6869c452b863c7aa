//! A protocol-faithful Loki for tests: accepts `POST /loki/api/v1/push`, decodes the real
//! wire format (snappy raw block + protobuf `PushRequest`, through the crate's hand-written
//! messages) and answers as told — 204, 429, 500, 400, a scripted sequence, stall (read the
//! push, never answer), or drop the connection.
//! A std `TcpListener` on 127.0.0.1 port 0 with a thread per connection; HTTP/1.1 keep-alive.
//! Self-contained (nothing from `super`): `benches/loki.rs` includes this file by path.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gatewayz::telemetry::loki::encode::{decode, PushRequest};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer with this status.
    Status(u16),
    /// Read the push, never answer (the connection stays open).
    Stall,
    /// Read the push, then close the connection without an answer.
    Hangup,
}

/// One push as received.
#[derive(Debug, Clone)]
pub struct Push {
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub tenant: Option<String>,
    pub authorization: Option<String>,
    pub body_len: usize,
    pub request: PushRequest,
}

/// One entry with its stream labels.
#[derive(Debug, Clone)]
pub struct Entry {
    pub labels: String,
    pub ts_ns: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

impl Entry {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.line).unwrap()
    }
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    script: VecDeque<u16>,
    pushes: Vec<Push>,
}

pub struct LokiReceiver {
    pub addr: SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl LokiReceiver {
    /// Starts answering `mode`.
    pub fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new((
            Mutex::new(State {
                mode: Some(mode),
                ..State::default()
            }),
            Condvar::new(),
        ));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.0.lock().unwrap().mode = Some(mode);
    }

    /// The next pushes get these statuses, then the mode applies again.
    pub fn script(&self, statuses: &[u16]) {
        self.state.0.lock().unwrap().script.extend(statuses);
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.state.0.lock().unwrap().pushes.clone()
    }

    /// Entries of pushes answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Entry> {
        entries(
            self.pushes()
                .iter()
                .filter(|p| p.status.is_some_and(|s| s < 300)),
        )
    }

    /// Waits (at most `limit`) until `done(accepted entries)` holds.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[Entry]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let (lock, cvar) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            let accepted = entries(
                state
                    .pushes
                    .iter()
                    .filter(|p| p.status.is_some_and(|s| s < 300)),
            );
            if done(&accepted) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = cvar.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

fn entries<'a>(pushes: impl Iterator<Item = &'a Push>) -> Vec<Entry> {
    pushes
        .flat_map(|p| p.request.streams.iter())
        .flat_map(|s| {
            s.entries.iter().map(|e| {
                let ts = e.timestamp.unwrap_or_default();
                Entry {
                    labels: s.labels.clone(),
                    ts_ns: ts.seconds * 1_000_000_000 + i64::from(ts.nanos),
                    line: e.line.clone(),
                    metadata: e
                        .structured_metadata
                        .iter()
                        .map(|m| (m.name.clone(), m.value.clone()))
                        .collect(),
                }
            })
        })
        .collect()
}

fn serve(stream: TcpStream, shared: &(Mutex<State>, Condvar)) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        assert!(
            request_line.starts_with("POST /loki/api/v1/push "),
            "unexpected request {request_line:?}"
        );
        let request = decode(&body).expect("a valid snappy-raw protobuf push");
        let (lock, cvar) = shared;
        let mut state = lock.lock().unwrap();
        let mode = match state.script.pop_front() {
            Some(status) => Mode::Status(status),
            None => state.mode.unwrap_or(Mode::Status(204)),
        };
        let status = match mode {
            Mode::Status(s) => Some(s),
            _ => None,
        };
        state.pushes.push(Push {
            status,
            content_type: header("content-type"),
            tenant: header("x-scope-orgid"),
            authorization: header("authorization"),
            body_len: len,
            request,
        });
        drop(state);
        cvar.notify_all();
        match mode {
            Mode::Status(s) => {
                let reply = if s == 204 {
                    "HTTP/1.1 204 No Content\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 {s} Status\r\ncontent-length: 2\r\n\r\nno")
                };
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
            Mode::Stall => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            Mode::Hangup => return,
        }
    }
}
