//! Garbage from clients is counted, not logged line by line: many connections sending a
//! malformed request line to the real binary leave a bounded number of log lines (the periodic
//! summary) and a counter that saw every one of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const CONNECTIONS: u64 = 500;

#[test]
fn malformed_requests_are_counted_and_summarized_not_logged_one_by_one() {
    let gw = common::builtin_gateway();
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(gw.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"GARBAGE\r\n\r\n").unwrap();
        // The server answers 400 and closes; read to the end so the next one starts clean.
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert!(reply.starts_with(b"HTTP/1.1 400"), "{reply:?}");
    }
    let metric = "gatewayz_http_protocol_errors_total";
    common::scrape::until(&gw, Duration::from_secs(20), metric, |s| {
        (common::scrape::get(s, metric)? >= CONNECTIONS as f64).then_some(())
    });
    // The summary: at most one line per 10 s interval, together counting every connection.
    let summaries = || -> Vec<String> {
        gw.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("HTTP protocol errors"))
            .cloned()
            .collect()
    };
    common::wait_until(Duration::from_secs(25), "the summary lines", || {
        summaries()
            .iter()
            .filter_map(|l| common::log_figure(l, "count"))
            .sum::<u64>()
            >= CONNECTIONS
    });
    assert!(summaries().len() <= 3, "{:?}", summaries());
    let log = gw.log_text();
    let about_it = log
        .lines()
        .filter(|l| l.contains("actix_http") || l.contains("parse error") || l.contains("ERROR"))
        .count();
    assert_eq!(about_it, 0, "{log}");
}
