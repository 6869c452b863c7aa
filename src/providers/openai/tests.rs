//! Client tests against a local TCP upstream that records the raw request: what reaches the
//! upstream, and how each way of failing is classified.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::Api;
use crate::providers::StreamFault;

const ANSWER: &str = r#"{"model":"m1","usage":{"prompt_tokens":1,"completion_tokens":2}}"#;

fn json_reply(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn config(base_url: String) -> OpenAiProviderConfig {
    OpenAiProviderConfig {
        base_url,
        api_key: None,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        stream_idle_timeout: Duration::from_secs(5),
        max_event_bytes: 1 << 20,
        max_response_bytes: 32 << 20,
        headers: BTreeMap::new(),
        inject_stream_usage: true,
    }
}

/// One attempt with an empty body and no trace, as most tests here send.
async fn attempt(client: &OpenAiClient, want: Want) -> Result<Reply, ProviderError> {
    client
        .call(
            Api::Chat,
            Bytes::from_static(b"{}"),
            want,
            &UpstreamTrace::default(),
            &Forwarded::default(),
        )
        .await
}

/// Serves one connection: reads one request (head and `content-length` body), answers
/// `reply`, and yields the request as text.
async fn one_request(reply: impl Into<String>) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let reply = reply.into();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-request");
            seen.extend_from_slice(&buf[..n]);
            if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&seen[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        while seen.len() < head_end + length {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            seen.extend_from_slice(&buf[..n]);
        }
        socket.write_all(reply.as_bytes()).await.unwrap();
        String::from_utf8(seen).unwrap()
    });
    (addr, served)
}

fn header<'a>(request: &'a str, name: &str) -> Vec<&'a str> {
    request
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn the_request_carries_its_headers_and_body() {
    let (addr, served) = one_request(json_reply(ANSWER)).await;
    let mut config = config(format!("http://{addr}/v1/"));
    config.api_key = Some("k-up".into());
    config.headers = BTreeMap::from([
        ("X-Team".to_string(), "blue".to_string()),
        // A configured header never overrides the request's own.
        ("accept".to_string(), "text/plain".to_string()),
        // ... but overrides the client's forwarded one (operator policy).
        ("OpenAI-Beta".to_string(), "operator".to_string()),
    ]);
    let client_headers: [(&str, &[u8]); 4] = [
        ("openai-beta", b"client"),
        ("openai-organization", b"org-1"),
        ("authorization", b"Bearer client-key"),
        ("user-agent", b"sdk/1"),
    ];
    let forwarded = Forwarded::collect(|name| {
        client_headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    });
    let client = OpenAiClient::new(&config).unwrap();
    assert_eq!(client.host(), "127.0.0.1");
    let trace = UpstreamTrace {
        traceparent: Some(HeaderValue::from_static(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )),
        tracestate: None,
    };
    let body = Bytes::from_static(br#"{"model":"m1","messages":[]}"#);
    let Reply::Json {
        body: answer,
        usage,
        response_model,
        request_id,
    } = client
        .call(Api::Chat, body, Want::Json, &trace, &forwarded)
        .await
        .unwrap()
    else {
        panic!("not a JSON reply");
    };
    assert_eq!(&answer[..], ANSWER.as_bytes());
    assert_eq!(usage.map(|u| u.completion_tokens), Some(2));
    assert_eq!(response_model.as_deref(), Some("m1"));
    assert!(request_id.is_none(), "the upstream sent none");

    let request = served.await.unwrap();
    assert!(
        request.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{request}"
    );
    assert_eq!(header(&request, "host"), [addr.to_string()]);
    assert_eq!(header(&request, "content-type"), ["application/json"]);
    assert_eq!(header(&request, "accept"), ["application/json"]);
    assert_eq!(header(&request, "authorization"), ["Bearer k-up"]);
    assert_eq!(header(&request, "x-team"), ["blue"]);
    assert_eq!(header(&request, "openai-beta"), ["operator"]);
    assert_eq!(header(&request, "openai-organization"), ["org-1"]);
    assert_eq!(
        header(&request, "user-agent"),
        [concat!("gatewayz/", env!("CARGO_PKG_VERSION"), " (sdk/1)")]
    );
    assert_eq!(
        header(&request, "traceparent"),
        ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
    );
    assert!(header(&request, "tracestate").is_empty());
    assert_eq!(header(&request, "content-length"), ["28"]);
    assert!(request.ends_with("\r\n\r\n{\"model\":\"m1\",\"messages\":[]}"));
}

#[tokio::test]
async fn user_info_in_the_url_becomes_basic_auth() {
    let (addr, served) = one_request(json_reply(ANSWER)).await;
    let client = OpenAiClient::new(&config(format!("http://us%65r:p%40ss@{addr}/v1"))).unwrap();
    attempt(&client, Want::Json).await.unwrap();
    let request = served.await.unwrap();
    // base64("user:p@ss")
    assert_eq!(header(&request, "authorization"), ["Basic dXNlcjpwQHNz"]);
    assert_eq!(header(&request, "host"), [addr.to_string()]);
    assert!(!request.contains("p%40ss"), "{request}");
}

#[tokio::test]
async fn a_stream_waits_for_its_first_chunk_and_an_error_status_keeps_its_body() {
    const SSE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
        transfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    let (addr, served) = one_request(SSE).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let empty = attempt(&client, Want::Stream { strip_usage: false }).await;
    assert!(
        matches!(&empty, Err(ProviderError::Stream(StreamFault::NoDone))),
        "{:?}",
        empty.err()
    );
    assert_eq!(
        header(&served.await.unwrap(), "accept"),
        ["text/event-stream"]
    );

    const TEAPOT: &str = "HTTP/1.1 418 I'm a teapot\r\ncontent-type: application/json\r\n\
        request-id: req_up_1\r\ncontent-length: 7\r\n\r\n{\"e\":1}";
    let (addr, _served) = one_request(TEAPOT).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    match attempt(&client, Want::Json).await {
        Err(ProviderError::Status {
            status,
            body,
            content_type,
            retry_after,
            request_id,
        }) => {
            assert_eq!(retry_after, None);
            // Anthropic's `request-id` counts too.
            assert_eq!(request_id.unwrap(), "req_up_1");
            assert_eq!(status, 418);
            assert_eq!(&body[..], b"{\"e\":1}");
            assert_eq!(content_type.as_deref(), Some("application/json"));
        }
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn a_429_carries_its_retry_after() {
    const LIMITED: &str = "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
        retry-after: 12\r\ncontent-length: 2\r\n\r\n{}";
    let (addr, _served) = one_request(LIMITED).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    assert!(
        matches!(
            error,
            ProviderError::Status { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(12)
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), "rate_limited");
}

/// A JSON answer past `max_response_bytes` fails the attempt, whether its length is declared
/// or it arrives chunked and keeps growing.
#[tokio::test]
async fn an_answer_past_the_size_limit_is_too_large() {
    let mut small = config(String::new());
    small.max_response_bytes = 1024;
    let declared = json_reply(&format!("{{\"pad\":\"{}\"}}", "x".repeat(2000)));
    let mut body = String::new();
    for _ in 0..4 {
        body.push_str(&format!("200\r\n{}\r\n", "y".repeat(0x200)));
    }
    let chunked = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{body}0\r\n\r\n"
    );
    for reply in [declared, chunked] {
        let (addr, _served) = one_request(reply).await;
        small.base_url = format!("http://{addr}/v1");
        let client = OpenAiClient::new(&small).unwrap();
        let error = attempt(&client, Want::Json).await.err().unwrap();
        assert!(
            matches!(error, ProviderError::TooLarge { limit: 1024 }),
            "{error:?}"
        );
        assert!(error.retryable());
    }
}

#[tokio::test]
async fn a_refused_port_is_a_connect_error_without_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = OpenAiClient::new(&config(format!("http://user:secret@{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    let ProviderError::Connect(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("refused"), "{message}");
    assert!(
        !message.contains("secret") && !message.contains("127.0.0.1"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failed_tls_handshake_is_a_connect_error() {
    // Answers the TLS client hello with plain HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _served = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = socket.read(&mut [0u8; 1024]).await;
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let client = OpenAiClient::new(&config(format!("https://{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
}

#[tokio::test]
async fn the_connect_timeout_covers_the_tls_handshake() {
    // Accepts the connection, never answers the client hello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let mut config = config(format!("https://{addr}/v1"));
    config.connect_timeout = Duration::from_millis(100);
    let client = OpenAiClient::new(&config).unwrap();
    let started = std::time::Instant::now();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    // As with reqwest, an expired connect timeout is a timeout.
    assert!(matches!(error, ProviderError::Timeout), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_error() {
    const CUT: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        content-length: 100\r\n\r\n{\"model\"";
    let (addr, _served) = one_request(CUT).await;
    let client = OpenAiClient::new(&config(format!("http://{addr}/v1"))).unwrap();
    let error = attempt(&client, Want::Json).await.err().unwrap();
    assert!(matches!(error, ProviderError::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn a_stream_silent_past_its_idle_timeout_ends_with_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\n\r\n\
                  30\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\r\n",
            )
            .await
            .unwrap();
        // Silent, with the connection open, until the test is over.
        let _ = held.await;
    });
    let mut c = config(format!("http://{addr}/v1"));
    c.stream_idle_timeout = Duration::from_millis(200);
    let client = OpenAiClient::new(&c).unwrap();
    let want = Want::Stream { strip_usage: false };
    let reply = attempt(&client, want).await;
    let Ok(Reply::Stream(upstream)) = reply else {
        panic!("not a stream: {:?}", reply.err());
    };
    let (held, mut rest, _, ended) = upstream.into_parts();
    assert!(!ended);
    let mut got = held.to_vec();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rest.next().await {
                Some(Ok(chunk)) => got.extend_from_slice(&chunk),
                other => return other,
            }
        }
    })
    .await
    .expect("the idle timeout cut the stream");
    assert_eq!(
        got,
        b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
    );
    assert!(
        matches!(outcome, Some(Err(ProviderError::Timeout))),
        "{outcome:?}"
    );
    assert!(rest.next().await.is_none(), "nothing after the timeout");
    let _ = release.send(());
    server.await.unwrap();
}

/// The path suffix goes into the path, before a query `base_url` carries (Azure's classic
/// `?api-version=`), and a trailing slash does not double.
#[test]
fn the_endpoint_keeps_the_base_url_s_query() {
    for (base, want) in [
        (
            "https://r.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21",
            "https://r.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
        ),
        ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://h", "http://h/chat/completions"),
    ] {
        assert_eq!(endpoint(base, "chat/completions").unwrap().as_str(), want, "{base}");
    }
}
