//! A throwaway `redis-server` (Debian's package) on a free loopback port, nothing on disk:
//! started by the test, stopped (killed) when dropped, restartable on the same port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_addr, poll};

/// A running (or stopped) `redis-server`.
pub struct Redis {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn server_binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/redis-server");
    assert!(
        path.exists(),
        "redis-server is not installed: run ./scripts/test (it installs Debian's redis-server)"
    );
    path
}

impl Redis {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Self {
            addr: free_addr(),
            child: None,
            dir,
        };
        redis.restart();
        redis
    }

    /// `redis://ADDR/0`
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Kills the server at once (SIGKILL, as a crash or a network cut would look).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is kept on disk).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(server_binary())
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                // DEBUG SLEEP makes a slow store on purpose.
                "--enable-debug-command",
                "local",
                "--dir",
                &self.dir.path().display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let addr = self.addr;
        poll(Duration::from_secs(10), || self.command(&["PING"]).ok())
            .unwrap_or_else(|| panic!("redis-server on {addr} did not answer"));
    }

    /// Runs one command with `redis-cli`'s wire format by hand: a RESP request, the first
    /// reply line back (enough for PING, GET, DBSIZE, FLUSHALL).
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        self.command_within(args, Duration::from_secs(5))
    }

    /// [`Redis::command`], failing when the answer takes longer than `limit`.
    pub fn command_within(&self, args: &[&str], limit: Duration) -> std::io::Result<String> {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(limit))?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        (&stream).write_all(request.as_bytes())?;
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(len) = line.strip_prefix('$') {
            if len.trim() == "-1" {
                return Ok(String::new());
            }
            let mut value = String::new();
            reader.read_line(&mut value)?;
            return Ok(value.trim_end().to_owned());
        }
        Ok(line.trim_end().to_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
