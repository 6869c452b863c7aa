//! Process metrics read from `/proc/self` at scrape time (Linux), without the `prometheus`
//! crate's `process` feature and its extra dependencies. Elsewhere every figure is absent.

use std::time::{SystemTime, UNIX_EPOCH};

/// One reading of the process' figures; `None` where `/proc` could not tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reading {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub threads: Option<f64>,
}

/// Clock ticks per second; 100 on every Linux platform we ship for.
const TICKS: f64 = 100.0;
/// Page size; 4 KiB on x86-64 and (by default) aarch64.
const PAGE: f64 = 4096.0;

/// Reads `/proc/self/{stat,fd,limits}`.
pub fn read() -> Reading {
    let mut r = Reading::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the `(comm)`, which may contain spaces.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            // rest[0] is field 3 (state): utime 14, stime 15, threads 20, vsize 23, rss 24.
            r.cpu_seconds = num(11).zip(num(12)).map(|(u, s)| (u + s) / TICKS);
            r.threads = num(17);
            r.virtual_bytes = num(20);
            r.resident_bytes = num(21).map(|pages| pages * PAGE);
        }
    }
    r.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    r.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    r
}

/// Unix time the process started, taken once when metrics are set up.
pub fn start_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let r = super::read();
        if cfg!(target_os = "linux") {
            assert!(r.resident_bytes.unwrap_or(0.0) > 0.0);
            assert!(r.open_fds.unwrap_or(0.0) >= 1.0);
            assert!(r.threads.unwrap_or(0.0) >= 1.0);
            assert!(r.cpu_seconds.is_some());
        }
    }
}
