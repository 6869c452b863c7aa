//! `x-request-id` on every answer, as an actix-web middleware.
//!
//! The gateway's id of a request is the client's `x-request-id` when it is a plausible id
//! (1 to [`MAX_LEN`] characters of letters, digits and `-_.:/+=`), else a generated
//! `req_` + 32 hex digits. The middleware writes it back into the request's headers, so the
//! handlers (the access line) read the one id, then puts it on the answer unless the handler
//! already set one — the upstream's id, when the provider sent one. Errors the gateway makes
//! itself (401, 404, 413, ...) carry the gateway's id like any other answer.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;

/// The request id header, in both directions.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept; a longer one is replaced.
pub const MAX_LEN: usize = 128;

/// Installs the gateway's id on the request and the answer.
/// Install with `App::wrap(from_fn(request_id))`.
pub async fn request_id(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = match req.headers().get(HEADER) {
        Some(id) if is_valid(id.as_bytes()) => id.clone(),
        _ => generate(),
    };
    req.headers_mut().insert(HEADER, id.clone());
    let mut res = next.call(req).await?;
    if !res.headers().contains_key(HEADER) {
        res.headers_mut().insert(HEADER, id);
    }
    Ok(res)
}

/// Whether a client's id is kept: short, and only characters safe in logs and headers.
fn is_valid(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// A fresh id: `req_` and 128 random bits in hex (written in place: no formatting pass).
fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"req_00000000000000000000000000000000";
    let bits = rand::random::<u128>();
    for (i, digit) in id[4..].iter_mut().enumerate() {
        *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("req_unknown"))
}

/// The answer's id for an upstream's id: converted between the `http` versions of actix-web
/// and hyper by value.
pub fn from_upstream(id: Option<&hyper::header::HeaderValue>) -> Option<HeaderValue> {
    id.and_then(|id| HeaderValue::from_bytes(id.as_bytes()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_client_ids_are_kept() {
        for id in [
            "abc",
            "before-term-1",
            "9f1c2d3e-0000-4abc-8def-123456789abc",
            "a/b+c=",
        ] {
            assert!(is_valid(id.as_bytes()), "{id}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        for id in ["", "has space", "quote\"", "new\nline", "é", long.as_str()] {
            assert!(!is_valid(id.as_bytes()), "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_distinct_and_valid() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.to_str().unwrap().starts_with("req_"));
        assert!(is_valid(a.as_bytes()));
    }
}
