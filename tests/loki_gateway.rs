//! The real `gatewayz` binary shipping to the receiver: graceful shutdown (class 3) and
//! start-up and load (class 5). Assertions are counts: request lines matched by their
//! `x-request-id`, and the shipper's closing report on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::loki::{Entry, LokiReceiver, Mode};
use common::{chat_with_id, MOCK_CONFIG};

fn config(loki_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
shutdown_timeout = "1s"
{MOCK_CONFIG}
[telemetry.loki]
url = "{loki_url}"
labels = {{ service = "gatewayz", env = "test" }}
backoff_min = "10ms"
backoff_max = "50ms"
max_tries = 1000
{extra}
"#
    )
}

fn request_ids(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.json()["request_id"].as_str().map(str::to_owned))
        .collect()
}

/// The `key=N` figure of the shipper's closing line on stderr.
fn report_figure(gw: &common::Process, key: &str) -> u64 {
    // The stderr reader thread may still be catching up with the exited process.
    let line = common::poll(Duration::from_secs(10), || {
        gw.log_text()
            .lines()
            .find(|l| l.contains("loki shipper stopped"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no closing report in:\n{}", gw.log_text()));
    common::log_figure(&line, key).unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn records_emitted_just_before_sigterm_all_arrive() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    // A long flush interval: only the shutdown flush can deliver these lines.
    let mut gw = common::gateway(&config(&receiver.url(), r#"flush_interval = "1h""#));
    let client = common::client();
    let ids: Vec<String> = (0..20).map(|i| format!("before-term-{i}")).collect();
    for id in &ids {
        assert_eq!(chat_with_id(&client, gw.addr, id), 200);
    }
    assert!(receiver.pushes().is_empty());
    let status = gw.terminate(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
    let arrived = request_ids(&receiver.accepted());
    assert_eq!(arrived, ids, "every line, once, in order");
    let messages: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|e| e.json()["msg"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        messages.iter().any(|m| m == "gatewayz stopped"),
        "{messages:?}"
    );
    assert_eq!(report_figure(&gw, "dropped_shutdown"), 0);
    assert_eq!(report_figure(&gw, "dropped_full"), 0);
}

#[test]
fn with_loki_down_the_process_exits_within_the_deadline_and_counts_the_rest() {
    for (name, url, _receiver) in [
        ("down", format!("http://{}", common::free_addr()), None),
        (
            "stalled",
            String::new(),
            Some(LokiReceiver::start(Mode::Stall)),
        ),
    ] {
        let url = _receiver.as_ref().map_or(url, |r| r.url());
        let mut gw = common::gateway(&config(
            &url,
            r#"flush_interval = "10ms"
shutdown_deadline = "1s"
timeout = "1h""#,
        ));
        let client = common::client();
        for i in 0..10 {
            assert_eq!(chat_with_id(&client, gw.addr, &format!("{name}-{i}")), 200);
        }
        let started = Instant::now();
        let status = gw.terminate(Duration::from_secs(20)).expect("exits");
        let took = started.elapsed();
        assert!(status.success(), "{name}: {status:?}");
        // 1 s deadline plus process teardown; far below the 1 h push timeout.
        assert!(took < Duration::from_secs(5), "{name}: exit took {took:?}");
        assert_eq!(report_figure(&gw, "shipped"), 0, "{name}");
        // The 10 request lines, the start-up and stop lines: all counted, none shipped.
        let dropped = report_figure(&gw, "dropped_shutdown");
        assert!(dropped >= 12, "{name}: dropped_shutdown={dropped}");
    }
}

#[test]
fn starts_and_serves_while_loki_is_unreachable() {
    let mut gw = common::gateway(&config(&format!("http://{}", common::free_addr()), ""));
    let started = Instant::now();
    assert_eq!(chat_with_id(&common::client(), gw.addr, "first"), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(gw.terminate(Duration::from_secs(20)).is_some());
}

#[test]
fn every_concurrent_request_line_arrives_exactly_once() {
    // Loki hangs up on the first pushes, then answers 500 and 429, then accepts.
    let receiver = LokiReceiver::start(Mode::Hangup);
    let mut gw = common::gateway(&config(
        &receiver.url(),
        r#"flush_interval = "20ms"
batch_max_records = 16"#,
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = gw.addr;
            std::thread::spawn(move || {
                let client = common::client();
                for i in 0..25 {
                    assert_eq!(chat_with_id(&client, addr, &format!("load-{t}-{i}")), 200);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    receiver.script(&[500, 429]);
    receiver.set_mode(Mode::Status(204));
    for t in threads {
        t.join().unwrap();
    }
    let all = receiver.wait_until(Duration::from_secs(30), |a| request_ids(a).len() >= 200);
    assert!(
        all,
        "only {} lines arrived",
        request_ids(&receiver.accepted()).len()
    );
    std::thread::sleep(Duration::from_millis(200)); // a duplicate would arrive by now
    let mut ids = request_ids(&receiver.accepted());
    assert_eq!(ids.len(), 200, "no duplicates");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every request once");
    // Per thread, the order of its requests is the order of its lines.
    for t in 0..8 {
        let mine: Vec<String> = request_ids(&receiver.accepted())
            .into_iter()
            .filter(|id| id.starts_with(&format!("load-{t}-")))
            .collect();
        let expected: Vec<String> = (0..25).map(|i| format!("load-{t}-{i}")).collect();
        assert_eq!(mine, expected);
    }
    // The shipper's counters are what /metrics exports.
    let metrics = common::scrape::scrape(&gw);
    let shipped = metrics
        .iter()
        .find(|(k, _)| {
            k.starts_with("gatewayz_log_records_total{") && k.contains("outcome=\"shipped\"")
        })
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no shipped series in:\n{metrics:#?}"));
    assert!(shipped >= 200.0, "shipped {shipped}");
    assert!(gw.terminate(Duration::from_secs(20)).unwrap().success());
    assert_eq!(report_figure(&gw, "dropped_full"), 0);
}

#[test]
fn access_lines_carry_the_request_trace_id() {
    let receiver = LokiReceiver::start(Mode::Status(204));
    let mut gw = common::gateway(&config(&receiver.url(), r#"flush_interval = "10ms""#));
    let reply = common::chat_request(
        &common::client(),
        gw.addr,
        common::chat_body("mock-gpt", "hi", false),
    )
    .header("x-request-id", "traced")
    .header(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .send()
    .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(chat_with_id(&common::client(), gw.addr, "untraced"), 200);
    assert!(receiver.wait_until(Duration::from_secs(30), |a| request_ids(a).len() == 2));
    let accepted = receiver.accepted();
    let line = |id: &str| {
        accepted
            .iter()
            .find(|e| e.json()["request_id"] == id)
            .cloned()
            .unwrap()
    };
    let traced = line("traced");
    eprintln!(
        "LINE {} META {:?} HEADERS {:?}",
        traced.line, traced.metadata, 0
    );
    assert_eq!(
        traced.json()["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(traced
        .metadata
        .contains(&("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into())));
    assert_eq!(traced.json()["target"], "gatewayz::http::finish");
    // Without a traceparent the server span starts its own trace.
    let own = line("untraced").json();
    assert_eq!(own["trace_id"].as_str().map(str::len), Some(32));
    assert_ne!(own["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(gw.terminate(Duration::from_secs(20)).unwrap().success());
}
