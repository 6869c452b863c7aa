//! One bad peer must not hurt everybody: an upstream answer that never ends, a stream line
//! that never ends, a client declaring an absurd body, a client trickling its request head,
//! and a thousand open streams when SIGTERM comes — against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::scrape::{get, until};
use common::{chat_body, failing_upstream, failover_gateway, mock_stats, mock_upstream, model};
use common::{openai_provider, post_chat, Process, MOCK_CONFIG};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

/// A JSON answer that never ends is cut at `max_response_bytes`: the attempt fails over, and
/// the gateway's memory stays bounded by the limit, not by the upstream.
#[test]
fn an_endless_json_answer_fails_over_with_memory_bounded() {
    let bad = failing_upstream("oversize");
    let good = mock_upstream(&[]);
    let gw = failover_gateway(&bad.url("/v1"), "max_response_bytes = 1048576", &good, "");
    for _ in 0..3 {
        let reply = post_chat(&gw, &chat_body("m", "big", false), None);
        assert_eq!(reply.status(), 200);
        let body: Value = reply.json().unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "You said: big");
    }
    assert_eq!(mock_stats(&good)["chat_requests"], 3);
    until(&gw, WAIT, "too_large attempts counted", |s| {
        let n = get(
            s,
            "gatewayz_provider_requests_total{outcome=\"error\",provider=\"bad\",reason=\"too_large\"}",
        )?;
        (n == 3.0).then_some(())
    });
    let peak = peak_rss_mib(gw.pid());
    assert!(peak < 64, "peak RSS {peak} MiB");
}

/// A stream line that never ends is cut at `max_event_bytes`: the client gets an SSE error
/// event after the content it had, and memory stays bounded.
#[test]
fn an_endless_stream_line_is_cut_with_memory_bounded() {
    let bad = failing_upstream("oversize");
    let good = mock_upstream(&[]);
    let gw = failover_gateway(&bad.url("/v1"), "max_event_bytes = 1048576", &good, "");
    for _ in 0..3 {
        let reply = post_chat(&gw, &chat_body("m-bad", "one two three", true), None);
        assert_eq!(reply.status(), 200);
        let events = common::sse_data(&reply.text().unwrap());
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_error", "{events:?}");
        assert!(!events.iter().any(|e| e == "[DONE]"));
    }
    until(&gw, WAIT, "stream_too_large attempts counted", |s| {
        let n = get(
            s,
            "gatewayz_provider_requests_total{outcome=\"error\",provider=\"bad\",reason=\"stream_too_large\"}",
        )?;
        (n == 3.0).then_some(())
    });
    let peak = peak_rss_mib(gw.pid());
    assert!(peak < 64, "peak RSS {peak} MiB");
}

/// Raw HTTP/1.1 on a fresh connection: writes `request`, returns the status line (or an
/// empty string if the server closed without answering).
fn raw(gw: &Process, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(gw.addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A declared body far past the largest allowed limit is refused before reading (413) and the
/// gateway keeps serving. A guard at the largest limit the configuration allows: what made the
/// old gateway abort was a limit large enough to pre-allocate the declared length, which the
/// configuration's bounds now refuse (`src/config/tests.rs::out_of_bound_values_name_the_key_and_line`).
#[test]
fn an_absurd_content_length_is_refused_before_reading() {
    let gw = common::gateway(&format!(
        "[server]\nmax_body_bytes = 67108864\n{MOCK_CONFIG}"
    ));
    let head = |length: u64| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {length}\r\n\r\n{{\"model\""
        )
    };
    let status = raw(&gw, head(100_000_000_000).as_bytes());
    assert!(status.contains(" 413 "), "{status}");
    let reply = post_chat(&gw, &chat_body("mock-gpt", "still here", false), None);
    assert_eq!(reply.status(), 200);
    let peak = peak_rss_mib(gw.pid());
    assert!(peak < 64, "peak RSS {peak} MiB");
}

/// A client trickling its request head (slowloris) is cut by the head timeout, not held.
#[test]
fn a_trickled_request_head_is_cut() {
    let gw = common::gateway(MOCK_CONFIG);
    let mut socket = TcpStream::connect(gw.addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
        .unwrap();
    let mut closed = false;
    for i in 0..40 {
        // One header byte every 500 ms: the head never completes.
        if socket.write_all(&[b'x' + (i % 2)]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match socket.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                // An answer (408) then the close.
                assert!(String::from_utf8_lossy(&buf[..n]).contains("408"));
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "a trickling client was held for {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    let reply = post_chat(
        &gw,
        &chat_body("mock-gpt", "others are served", false),
        None,
    );
    assert_eq!(reply.status(), 200);
}

/// A client trickling its body is answered 408 after `server.body_read_timeout`, and its
/// connection is closed; 200 such clients at once do not stop others from being served.
#[test]
fn a_trickled_body_gets_408_and_its_connection_freed() {
    let gw = common::gateway(&format!(
        "[server]\nbody_read_timeout = \"1s\"\n{MOCK_CONFIG}"
    ));
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\
                content-type: application/json\r\ncontent-length: 1000\r\n\r\n{";
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut socket = TcpStream::connect(gw.addr).unwrap();
            socket.write_all(head.as_bytes()).unwrap();
            socket.set_read_timeout(Some(WAIT)).unwrap();
            socket
        })
        .collect();
    let reply = post_chat(&gw, &chat_body("mock-gpt", "not blocked", false), None);
    assert_eq!(reply.status(), 200);
    let started = Instant::now();
    for socket in &mut slow {
        // Keep trickling until the gateway answers.
        let _ = socket.write_all(b" ");
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    }
    // read_to_end returned: every connection was closed by the gateway.
    assert!(started.elapsed() < WAIT);
}

/// A thousand streams open when SIGTERM arrives: every one runs to its `[DONE]`, then the
/// process exits cleanly.
#[test]
fn a_thousand_open_streams_drain_on_sigterm() {
    const STREAMS: usize = 1000;
    let upstream = mock_upstream(&["--chunks", "8", "--chunk-delay", "250ms"]);
    let mut gw = common::gateway(&format!(
        "{}{}",
        openai_provider("up", &upstream, ""),
        model("m", &["up"])
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    gatewayz::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = gw.url("/v1/chat/completions");
    let body = chat_body("m", "a b c d e f g h", true);
    let tasks: Vec<_> = (0..STREAMS)
        .map(|_| {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            runtime.spawn(async move {
                let reply = request.send().await.map_err(|e| e.to_string())?;
                reply.text().await.map_err(|e| e.to_string())
            })
        })
        .collect();
    common::wait_until(WAIT, "every stream started upstream", || {
        mock_stats(&upstream)["streams_started"].as_u64() == Some(STREAMS as u64)
    });
    let status = gw
        .terminate(Duration::from_secs(40))
        .expect("the gateway exits");
    let texts: Vec<_> = runtime.block_on(async {
        let mut texts = Vec::new();
        for task in tasks {
            texts.push(task.await.unwrap());
        }
        texts
    });
    let complete = texts
        .iter()
        .filter(|t| t.as_ref().is_ok_and(|t| t.ends_with("data: [DONE]\n\n")))
        .count();
    assert_eq!(
        complete,
        STREAMS,
        "first failure: {:?}",
        texts.iter().find(|t| t.is_err())
    );
    assert!(status.success(), "{status:?}");
}
