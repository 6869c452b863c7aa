//! A tiny HTTP proxy on a loopback port, for the upstream proxy tests: it serves absolute-form
//! requests (`POST http://host:port/...`, one per connection) and `CONNECT host:port` tunnels,
//! and records what it saw. It alone resolves the made-up host [`UPSTREAM_HOST`] (to 127.0.0.1,
//! same port), so a request to that host succeeds only through it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The host only this proxy resolves.
pub const UPSTREAM_HOST: &str = "upstream.test";

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST`, `CONNECT`, ...
    pub method: String,
    /// The request target as sent: absolute-form or authority-form.
    pub target: String,
    /// The `Proxy-Authorization` value, if any.
    pub authorization: Option<String>,
}

/// A running proxy; it stops accepting when the test process ends.
pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let log = log.clone();
                std::thread::spawn(move || serve(client, &log));
            }
        });
        Self { addr, seen }
    }

    /// `http://ADDR` with `user:password@` when given.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(client: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let mut parts = head[0].split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        head[1..].iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        target: target.clone(),
        authorization: header("proxy-authorization"),
    });
    let mut client = client;
    if method == "CONNECT" {
        let Some(mut upstream) = resolve(&target).and_then(|a| TcpStream::connect(a).ok()) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
            return;
        };
        let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
        let buffered = reader.buffer().to_vec();
        let _ = upstream.write_all(&buffered);
        pipe(reader.into_inner(), upstream);
        return;
    }
    // Absolute form: `http://host:port/path`.
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(mut upstream) = resolve(authority).and_then(|a| TcpStream::connect(a).ok()) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in &head[1..head.len() - 1] {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name != "proxy-authorization" && name != "connection" {
            forwarded.push_str(line);
        }
    }
    forwarded.push_str("connection: close\r\n\r\n");
    let _ = upstream.write_all(forwarded.as_bytes());
    let _ = upstream.write_all(&body);
    // One request per connection: the answer (which says `connection: close`) goes back as it
    // arrives, streams included, then both sides close.
    let _ = std::io::copy(&mut upstream, &mut client);
}

/// `upstream.test:PORT` → 127.0.0.1:PORT; any other host is unknown.
fn resolve(authority: &str) -> Option<SocketAddr> {
    let (host, port) = authority.rsplit_once(':')?;
    if host != UPSTREAM_HOST {
        return None;
    }
    Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)))
}

/// Copies both ways until either side closes.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let _ = std::io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}
