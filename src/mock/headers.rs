//! What the mock upstream records of a request's headers, and the request id it answers with:
//! tests read the first from `/mock/stats` (what the gateway forwards) and check the second
//! reaches the client (`--request-ids`).

use std::collections::BTreeMap;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpRequest;

use super::Dialect;

/// A request's headers by name, repeated names joined by `, `, values that are not text left
/// out.
pub fn seen(req: &HttpRequest) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::<String, String>::new();
    for (name, value) in req.headers() {
        let Ok(value) = value.to_str() else { continue };
        seen.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    seen
}

/// The `n`th request id, in the dialect's header: `x-request-id: mock-req-N` (OpenAI's APIs),
/// `request-id: req_mock_N` (Anthropic's).
pub fn request_id(dialect: Dialect, n: u64) -> (HeaderName, HeaderValue) {
    let (name, id) = match dialect {
        Dialect::OpenAi | Dialect::Responses => ("x-request-id", format!("mock-req-{n}")),
        Dialect::Anthropic => ("request-id", format!("req_mock_{n}")),
    };
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("mock-req"));
    (HeaderName::from_static(name), value)
}
