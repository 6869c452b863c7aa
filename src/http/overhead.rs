//! The `x-gatewayz-overhead-ms` response header: the time the gateway itself added to a chat
//! completion, in milliseconds with microsecond resolution (`0.087`).
//!
//! It is the request's age when the response is built minus the time spent waiting on
//! upstreams (every attempt included). For a JSON answer that is the whole overhead; for a
//! stream the headers go out with the first chunk, so it is the overhead on the time to first
//! byte. Formatting writes into a stack buffer: the only allocation is the header value's own.

use std::io::Write;
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};

/// The header's name.
pub const HEADER: HeaderName = HeaderName::from_static("x-gatewayz-overhead-ms");

/// The header value for `total` time since arrival of which `upstream_wait` was spent on
/// upstreams.
pub fn value(total: Duration, upstream_wait: Duration) -> HeaderValue {
    let micros = total.saturating_sub(upstream_wait).as_micros();
    let mut buf = [0u8; 48];
    let len = {
        let mut cursor = &mut buf[..];
        let room = cursor.len();
        // 48 bytes hold any u128 / 1000 plus ".999": the write cannot run out of room.
        let _ = write!(cursor, "{}.{:03}", micros / 1000, micros % 1000);
        room - cursor.len()
    };
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("0.000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_with_microsecond_resolution() {
        let ms = |total_us, wait_us| {
            value(
                Duration::from_micros(total_us),
                Duration::from_micros(wait_us),
            )
        };
        assert_eq!(ms(1_087, 1_000), "0.087");
        assert_eq!(ms(12_345_678, 0), "12345.678");
        assert_eq!(ms(5, 5), "0.000");
        // Clock skew between the two measures never yields a negative figure.
        assert_eq!(ms(5, 9), "0.000");
        let max = Duration::MAX.as_micros();
        assert_eq!(
            value(Duration::MAX, Duration::ZERO).to_str().unwrap(),
            format!("{}.{:03}", max / 1000, max % 1000)
        );
    }
}
