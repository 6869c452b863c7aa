//! The human-readable stderr line, written without the formatting machinery.
//!
//! `tracing-subscriber`'s full format costs ~16,000 instructions for the access line: a
//! `write!` through a `dyn Write` per piece, an ANSI style built and painted for every field
//! name even with colours off, the timestamp through `Display`. [`Plain`] writes the same
//! bytes with `push_str`: `2026-12-07T11:44:08.123456Z  INFO gatewayz::http::finish: chat
//! completion answered status="served" latency_ms=1.234 ...`. Whatever it does not handle
//! the same way byte for byte — colours (a terminal), a span prefix, events bridged from the
//! `log` crate (their metadata is normalized), error values (their source lists) — goes to
//! the full format itself. A test holds the two equal.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The full format's plain-text line, fast; see the module docs.
#[derive(Default)]
pub struct Plain {
    full: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes()
            || meta.fields().field("log.target").is_some()
            || ctx.event_scope().is_some()
        {
            return self.full.format_event(ctx, writer, event);
        }
        let mut line = buffer();
        push_rfc3339_micros(&mut line, SystemTime::now());
        line.push(' ');
        line.push_str(level(*meta.level()));
        line.push(' ');
        line.push_str(meta.target());
        line.push_str(": ");
        let mut fields = Fields {
            line,
            empty: true,
            unhandled: false,
            sanitize: writer.sanitizes_ansi_escapes(),
        };
        event.record(&mut fields);
        if fields.unhandled {
            keep(fields.line);
            return self.full.format_event(ctx, writer, event);
        }
        fields.line.push('\n');
        let written = writer.write_str(&fields.line);
        keep(fields.line);
        written
    }
}

/// This thread's line buffer, empty. A log layer writes a line into it, copies or writes it
/// out at its size, and gives it back with [`keep`]: no line pays an allocation of its own,
/// nor a reallocation as it grows. (During the thread's teardown, or if a line were written
/// while another holds the buffer, a new one serves; `tracing` does not dispatch inside a
/// dispatch.)
pub(crate) fn buffer() -> String {
    let mut line = BUFFER.try_with(Cell::take).unwrap_or_default();
    line.clear();
    line
}

/// Gives the buffer back to the thread for its next line; a runaway line's is dropped.
pub(crate) fn keep(line: String) {
    if line.capacity() <= BUFFER_KEPT {
        let _ = BUFFER.try_with(|b| b.set(line));
    }
}

/// The largest line buffer a thread keeps between events.
const BUFFER_KEPT: usize = 16 * 1024;

thread_local! {
    static BUFFER: Cell<String> = const { Cell::new(String::new()) };
}

/// Appends `at` as the full format writes it (humantime's RFC 3339 with microseconds,
/// `2026-12-07T11:44:08.123456Z`), digit by digit: humantime's `Display` goes through
/// `core::fmt` (~500 instructions a line). The date is Howard Hinnant's `civil_from_days`;
/// a time before 1970 or after 9999 goes to humantime.
pub(crate) fn push_rfc3339_micros(out: &mut String, at: SystemTime) {
    const LATEST: u64 = 253_402_300_800; // 10000-01-01T00:00:00Z
    let since = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) if since.as_secs() < LATEST => since,
        _ => {
            let _ = write!(out, "{}", humantime::format_rfc3339_micros(at));
            return;
        }
    };
    let secs = since.as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days since 0000-03-01, in eras of 400 years (146,097 days).
    let z = days + 719_468;
    let (era, day_of_era) = (z / 146_097, z % 146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let m = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * m + 2) / 5 + 1;
    let month = if m < 10 { m + 3 } else { m - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    let micros = u64::from(since.subsec_micros());
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut digits = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(0, 4, year);
    digits(5, 2, month);
    digits(8, 2, day);
    digits(11, 2, of_day / 3_600);
    digits(14, 2, of_day / 60 % 60);
    digits(17, 2, of_day % 60);
    digits(20, 6, micros);
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// How a float is written: as `{:?}` writes it (`1.0`, the stderr line's fields) or as `{}`
/// (`1`, Loki's JSON line).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Float {
    Debug,
    Display,
}

/// Appends `value` as `style` formats it, without `core::fmt` when it is a whole number of
/// thousandths (latencies: milliseconds rounded to the microsecond), ~600 instructions less.
/// `core::fmt` writes the shortest digits that read back as the value. When `n / 1000`,
/// divided in floating point, gives the value back, the decimal `n / 1000` reads back as it;
/// with at most 15 significant digits it is the only decimal that short which does (two such
/// decimals lie further apart than a double's rounding interval is wide), so it is those
/// digits; below 1e15 thousandths no exponent is written. Anything else (zero and its sign,
/// other fractions, exponents, NaN and the infinities) `core::fmt` writes.
pub(crate) fn push_f64(out: &mut String, value: f64, style: Float) {
    let thousandths = (value * 1000.0).round();
    if value != 0.0 && thousandths.abs() < 1e15 && thousandths / 1000.0 == value {
        let n = thousandths.abs() as u64;
        if value < 0.0 {
            out.push('-');
        }
        out.push_str(itoa::Buffer::new().format(n / 1000));
        let fraction = n % 1000;
        if fraction != 0 {
            let digits = [
                b'.',
                b'0' + (fraction / 100) as u8,
                b'0' + (fraction / 10 % 10) as u8,
                b'0' + (fraction % 10) as u8,
            ];
            let end = 4
                - usize::from(fraction.is_multiple_of(10))
                - usize::from(fraction.is_multiple_of(100));
            out.push_str(std::str::from_utf8(&digits[..end]).unwrap_or_default());
        } else if style == Float::Debug {
            out.push_str(".0");
        }
        return;
    }
    let _ = match style {
        Float::Debug => write!(out, "{value:?}"),
        Float::Display => write!(out, "{value}"),
    };
}

/// The full format's level, padded to five columns.
fn level(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// The full format's field visitor, into one string: `message` bare (control characters
/// escaped), the others `name=value` with the value's `Debug`, one space apart.
struct Fields {
    line: String,
    empty: bool,
    /// A value this visitor does not write as the full format would: the line is redone.
    unhandled: bool,
    sanitize: bool,
}

impl Fields {
    /// The separator and `name=`, or false for a field the full format skips.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.empty) {
            self.line.push(' ');
        }
        if name != "message" {
            self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
            self.line.push('=');
        }
        true
    }

    fn message(&mut self, text: &str) {
        if !self.sanitize || !text.bytes().any(needs_escape) {
            self.line.push_str(text);
            return;
        }
        for ch in text.chars() {
            match ch {
                '\x1b' => self.line.push_str("\\x1b"),
                '\x07' => self.line.push_str("\\x07"),
                '\x08' => self.line.push_str("\\x08"),
                '\x0c' => self.line.push_str("\\x0c"),
                '\x7f' => self.line.push_str("\\x7f"),
                ch if ('\u{80}'..='\u{9f}').contains(&ch) => {
                    let _ = write!(self.line, "\\u{{{:x}}}", ch as u32);
                }
                ch => self.line.push(ch),
            }
        }
    }
}

/// A byte the full format's message escaping may rewrite (C1 controls are two bytes in
/// UTF-8, the first 0xC2).
fn needs_escape(b: u8) -> bool {
    matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2)
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.name(field) {
            return;
        }
        if field.name() == "message" {
            self.message(value);
        } else if value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        } else {
            let _ = write!(self.line, "{value:?}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.name(field) {
            self.line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.name(field) {
            self.line.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field) {
            self.line.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.name(field) {
            push_f64(&mut self.line, value, Float::Debug);
        }
    }

    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.unhandled = true;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.name(field) {
            return;
        }
        if field.name() == "message" {
            let start = self.line.len();
            let _ = write!(self.line, "{value:?}");
            if self.sanitize
                && self.line.as_bytes()[start..]
                    .iter()
                    .any(|&b| needs_escape(b))
            {
                let text = self.line.split_off(start);
                self.message(&text);
            }
        } else {
            let _ = write!(self.line, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Both ways against `format!`: thousandths at the edges (15 digits, 1e15), whole numbers,
    /// zero's sign, latencies as the access line rounds them, values `core::fmt` writes
    /// (exponents, long digits, NaN), and random bit patterns of every magnitude.
    #[test]
    fn floats_are_written_as_the_formatter_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.2 + 0.1,
            1_658_206_780_088_562.2,
            1e15 + 0.5,
            999_999_999_999.999,
            1e12,
            0.001,
            -0.001,
            0.0005,
            1e-4,
            9.999e-5,
            1e-5,
            0.00015,
            1e15,
            1e16,
            9_999_999_999_999_998.0,
            1e16 - 2.0,
            123.456,
            1.5e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut bits = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..200_000_u64 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            values.push(f64::from_bits(bits));
            // Every mantissa at magnitudes from 2^-14 to 2^53, thousandths of all sizes, and
            // latencies as the access line rounds them.
            let exponent = (bits >> 57) % 68 + 1009;
            values.push(f64::from_bits(
                exponent << 52 | bits & 0x000f_ffff_ffff_ffff,
            ));
            values.push((bits >> (bits % 64)) as f64 / 1000.0);
            values.push(-((bits % 10_000_000) as f64) / 1000.0);
            let ms = (bits % 100_000_000) as f64 / 1e9;
            values.push((ms * 1000.0 * 1000.0).round() / 1000.0);
            values.push(i as f64);
        }
        for value in values {
            for (style, expected) in [
                (Float::Debug, format!("{value:?}")),
                (Float::Display, format!("{value}")),
            ] {
                let mut out = String::from("x=");
                push_f64(&mut out, value, style);
                assert_eq!(
                    out[2..],
                    expected,
                    "{:?} of {:#x}",
                    style == Float::Debug,
                    value.to_bits()
                );
            }
        }
    }

    /// Every day from 1970 to 9999, each at another time of day, and the edges, as humantime
    /// writes them (it does not write a time outside them).
    #[test]
    fn timestamps_are_humantimes() {
        let epoch = SystemTime::UNIX_EPOCH;
        let mut instants = vec![
            epoch,
            epoch + std::time::Duration::new(253_402_300_799, 999_999_999),
            epoch + std::time::Duration::from_nanos(1_796_000_000_999_999_999),
        ];
        for day in 0..2_932_897_u64 {
            let secs = day * 86_400 + (day * 7_919) % 86_400;
            let micros = (day * 104_729) % 1_000_000;
            instants.push(epoch + std::time::Duration::from_micros(secs * 1_000_000 + micros));
        }
        for at in instants {
            let mut out = String::new();
            push_rfc3339_micros(&mut out, at);
            assert_eq!(out, humantime::format_rfc3339_micros(at).to_string());
        }
    }

    #[derive(Debug)]
    struct Failure;
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("upstream \"closed\"")
        }
    }
    impl std::error::Error for Failure {}

    /// Every kind of field, odd text, every level, a span around, a `log` record: the same
    /// line as the full format's after the timestamp, and the timestamp in the same format.
    #[test]
    fn the_lines_are_the_full_formats() {
        let (plain, full) = (Captured::default(), Captured::default());
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(plain.clone())
                    .event_format(Plain::default()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(full.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let provider = Some("openai");
            let missing: Option<&str> = None;
            let ttft = Some(12.5_f64);
            tracing::info!(
                status = "served",
                latency_ms = 1.0_f64,
                ttft_ms = ttft,
                provider,
                absent = missing,
                input_tokens = 12_u64,
                delta = -3_i64,
                big = u128::MAX,
                ok = true,
                trace_id = %"0af7651916cd43dd8448eb211c80319c",
                r#type = "raw",
                "chat completion answered"
            );
            tracing::warn!(error = %Failure, reason = "timeout", "provider attempt failed");
            tracing::error!("formatted {} {:?}", 7, "x");
            tracing::debug!(
                quoted = "a \"b\" \\ c\td\u{e9}\u{1b}",
                "escape \u{1b}[31m bel \u{7} c1 \u{85} é"
            );
            tracing::trace!(message = "message as a field", after = 1_i64);
            tracing::info!(only = "fields, no message");
            tracing::info!(
                err = &Failure as &(dyn std::error::Error + 'static),
                "an error value"
            );
            tracing::info!(target: "elsewhere::target", n = 0.1_f64 + 0.2, "{}", "display \u{1b}");
            tracing::info_span!("request", id = 3).in_scope(|| tracing::info!("in a span"));
            let record = log::Record::builder()
                .args(format_args!("from the log crate"))
                .level(log::Level::Warn)
                .target("some_crate::module")
                .build();
            tracing_log::format_trace(&record).unwrap();
        });
        let (plain, full) = (plain.lines(), full.lines());
        assert_eq!(plain.len(), 10, "{plain:#?}");
        assert_eq!(plain.len(), full.len());
        for (plain, full) in plain.iter().zip(&full) {
            let (plain_at, plain_rest) = plain.split_once(' ').unwrap();
            let (full_at, full_rest) = full.split_once(' ').unwrap();
            assert_eq!(plain_rest, full_rest);
            for at in [plain_at, full_at] {
                let instant = humantime::parse_rfc3339(at).unwrap();
                assert_eq!(humantime::format_rfc3339_micros(instant).to_string(), at);
            }
        }
        assert!(full[0].ends_with(
            "INFO gatewayz::telemetry::line::tests: chat completion answered status=\"served\" \
             latency_ms=1.0 ttft_ms=12.5 provider=\"openai\" input_tokens=12 delta=-3 \
             big=340282366920938463463374607431768211455 ok=true \
             trace_id=0af7651916cd43dd8448eb211c80319c type=\"raw\""
        ));
    }
}
