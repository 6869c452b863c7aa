//! Loki's native push format: protobuf `PushRequest`, compressed with snappy's raw (block)
//! format, sent as `application/x-protobuf`.
//!
//! The four messages are written by hand from grafana/loki `pkg/push/push.proto` (the
//! `loki-api` crate lacks structured metadata, field 3 of `EntryAdapter`); they decode a push
//! (tests and the test receiver). [`encode`] writes one straight from the records: it groups
//! a batch into streams by the fixed label set (static labels plus `level`), sorts each
//! stream's entries by timestamp, and attaches `trace_id` / `span_id` as structured metadata.

use std::collections::BTreeMap;

use super::batch::Record;
use crate::telemetry::traces::propagation::{span_id_hex, trace_id_hex};
use crate::telemetry::wire::{field_len, varint, varint_len};

/// `logproto.PushRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// Prometheus-style label set: `{level="info", service="gatewayz"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The stream label set, rendered once: static labels and whether `level` joins them.
#[derive(Debug, Clone)]
pub struct StreamLabels {
    fixed: Vec<(String, String)>,
    level: bool,
}

impl StreamLabels {
    pub fn new(labels: &BTreeMap<String, String>, level: bool) -> Self {
        Self {
            fixed: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            level,
        }
    }

    /// `{k="v", ...}` for a record of `level`, names sorted.
    pub fn render(&self, level: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .fixed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if self.level {
            pairs.push(("level", level));
            pairs.sort_unstable();
        }
        let mut out = String::from("{");
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
        out
    }
}

/// The body of one push: `records` as a `PushRequest`, protobuf, then snappy raw.
///
/// The protobuf is written straight from the records, without the messages above: the
/// records are sorted by stream (the label set: static labels plus `level`, in label order)
/// and within it by timestamp (stable, so equal timestamps keep arrival order — Loki rejects
/// out-of-order entries within a stream), each stream's length is summed from its entries'
/// before it is written, and the ids are written as hex where they go. The bytes are the
/// ones prost writes for the same request (tested).
///
/// `compressor` is the shipper's, kept from push to push: a new one allocates (and zeroes) its
/// 32-KiB hash table on every push.
pub fn encode(
    mut records: Vec<Record>,
    labels: &StreamLabels,
    compressor: &mut snap::raw::Encoder,
) -> Result<Vec<u8>, snap::Error> {
    let stream_of = |r: &Record| if labels.level { r.level } else { "" };
    records.sort_by(|a, b| stream_of(a).cmp(stream_of(b)).then(a.ts_ns.cmp(&b.ts_ns)));
    let mut streams: Vec<(String, &[Record], usize)> = Vec::new();
    let mut rest = records.as_slice();
    let mut total = 0;
    while let Some(first) = rest.first() {
        let level = stream_of(first);
        let n = rest
            .iter()
            .position(|r| stream_of(r) != level)
            .unwrap_or(rest.len());
        let (entries, tail) = rest.split_at(n);
        rest = tail;
        let label_set = labels.render(level);
        let len = field_len(label_set.len())
            + entries
                .iter()
                .map(|r| field_len(entry_len(r)))
                .sum::<usize>();
        total += field_len(len);
        streams.push((label_set, entries, len));
    }
    let mut proto = Vec::with_capacity(total);
    for (label_set, entries, len) in &streams {
        key(&mut proto, 1, LEN);
        varint(&mut proto, *len as u64);
        key(&mut proto, 1, LEN);
        varint(&mut proto, label_set.len() as u64);
        proto.extend_from_slice(label_set.as_bytes());
        for r in *entries {
            key(&mut proto, 2, LEN);
            varint(&mut proto, entry_len(r) as u64);
            write_entry(&mut proto, r);
        }
    }
    debug_assert_eq!(proto.len(), total);
    compressor.compress_vec(&proto)
}

/// Protobuf wire type of varints.
const VARINT: u8 = 0;
/// Protobuf wire type of strings, bytes and messages.
const LEN: u8 = 2;

fn key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    out.push(field << 3 | wire_type);
}

/// `google.protobuf.Timestamp` of `ts_ns`: seconds and nanos, each left out when zero (an
/// `int32`'s negative varint takes ten bytes, but nanos are never negative here).
fn timestamp(ts_ns: i64) -> (i64, i32) {
    (
        ts_ns.div_euclid(1_000_000_000),
        ts_ns.rem_euclid(1_000_000_000) as i32,
    )
}

fn timestamp_len(ts_ns: i64) -> usize {
    let (seconds, nanos) = timestamp(ts_ns);
    let field = |v: i64| if v == 0 { 0 } else { 1 + varint_len(v as u64) };
    field(seconds) + field(i64::from(nanos))
}

/// Structured metadata: a pair's size for a name and value of these lengths.
const TRACE_ID_PAIR: usize = 2 + "trace_id".len() + 2 + 32;
const SPAN_ID_PAIR: usize = 2 + "span_id".len() + 2 + 16;

/// An `EntryAdapter`'s content size.
fn entry_len(r: &Record) -> usize {
    let line = if r.line.is_empty() {
        0
    } else {
        field_len(r.line.len())
    };
    let ids = if r.ids.is_some() {
        field_len(TRACE_ID_PAIR) + field_len(SPAN_ID_PAIR)
    } else {
        0
    };
    field_len(timestamp_len(r.ts_ns)) + line + ids
}

fn write_entry(out: &mut Vec<u8>, r: &Record) {
    let (seconds, nanos) = timestamp(r.ts_ns);
    key(out, 1, LEN);
    varint(out, timestamp_len(r.ts_ns) as u64);
    if seconds != 0 {
        key(out, 1, VARINT);
        varint(out, seconds as u64);
    }
    if nanos != 0 {
        key(out, 2, VARINT);
        varint(out, nanos as u64);
    }
    if !r.line.is_empty() {
        key(out, 2, LEN);
        varint(out, r.line.len() as u64);
        out.extend_from_slice(r.line.as_bytes());
    }
    if let Some((trace_id, span_id)) = r.ids {
        pair(out, "trace_id", &trace_id_hex(trace_id));
        pair(out, "span_id", &span_id_hex(span_id));
    }
}

/// A `LabelPairAdapter` as field 3 of an entry.
fn pair(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    key(out, 3, LEN);
    varint(out, (field_len(name.len()) + field_len(value.len())) as u64);
    key(out, 1, LEN);
    varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    key(out, 2, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// The inverse of [`encode`] (tests and the test receiver).
pub fn decode(body: &[u8]) -> Result<PushRequest, String> {
    let proto = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    <PushRequest as prost::Message>::decode(proto.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};

    fn rec(ts: i64, level: &'static str, line: &str, ids: Option<(u128, u64)>) -> Record {
        Record {
            ts_ns: ts,
            level,
            line: line.into(),
            ids: ids.map(|(t, s)| (TraceId::from(t), SpanId::from(s))),
        }
    }

    /// The request built as messages, as the shipper built it before it wrote the bytes
    /// itself: what prost encodes of it is what [`encode`] must write.
    fn messages(records: Vec<Record>, labels: &StreamLabels) -> PushRequest {
        let mut streams: BTreeMap<&'static str, Vec<Record>> = BTreeMap::new();
        for r in records {
            let key = if labels.level { r.level } else { "" };
            streams.entry(key).or_default().push(r);
        }
        let streams = streams
            .into_iter()
            .map(|(level, mut records)| {
                records.sort_by_key(|r| r.ts_ns);
                StreamAdapter {
                    labels: labels.render(level),
                    entries: records
                        .into_iter()
                        .map(|r| EntryAdapter {
                            timestamp: Some(Timestamp {
                                seconds: r.ts_ns.div_euclid(1_000_000_000),
                                nanos: r.ts_ns.rem_euclid(1_000_000_000) as i32,
                            }),
                            line: r.line,
                            structured_metadata: r
                                .ids
                                .map(|(t, s)| {
                                    vec![
                                        LabelPairAdapter {
                                            name: "trace_id".into(),
                                            value: t.to_string(),
                                        },
                                        LabelPairAdapter {
                                            name: "span_id".into(),
                                            value: s.to_string(),
                                        },
                                    ]
                                })
                                .unwrap_or_default(),
                        })
                        .collect(),
                    hash: 0,
                }
            })
            .collect();
        PushRequest { streams }
    }

    /// [`encode`]'s protobuf, checked byte for byte against prost's for the same request.
    fn encoded(records: Vec<Record>, labels: &StreamLabels) -> PushRequest {
        let body = encode(records.clone(), labels, &mut snap::raw::Encoder::new()).unwrap();
        let proto = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let expected = messages(records, labels);
        assert_eq!(proto, prost::Message::encode_to_vec(&expected));
        let back = decode(&body).unwrap();
        assert_eq!(back, expected);
        back
    }

    #[test]
    fn groups_by_level_sorts_and_round_trips() {
        let labels = StreamLabels::new(
            &BTreeMap::from([
                ("service".into(), "gw".into()),
                ("env".into(), "a\"b".into()),
            ]),
            true,
        );
        let back = encoded(
            vec![
                rec(3_000_000_001, "info", "c", None),
                rec(1, "error", "e", Some((0xab, 0xcd))),
                rec(2, "info", "a", None),
                rec(2, "info", "b", None),
            ],
            &labels,
        );
        assert_eq!(back.streams.len(), 2);
        assert_eq!(
            back.streams[0].labels,
            r#"{env="a\"b", level="error", service="gw"}"#
        );
        let info: Vec<_> = back.streams[1]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(info, ["a", "b", "c"]);
        let ts = back.streams[1].entries[2].timestamp.unwrap();
        assert_eq!((ts.seconds, ts.nanos), (3, 1));
        let metadata = &back.streams[0].entries[0].structured_metadata;
        assert_eq!(metadata[0].name, "trace_id");
        assert_eq!(metadata[0].value, format!("{:032x}", 0xab));
        assert_eq!(metadata[1].name, "span_id");
        assert_eq!(metadata[1].value, format!("{:016x}", 0xcd));
    }

    #[test]
    fn without_level_label_one_stream() {
        let labels = StreamLabels::new(&BTreeMap::from([("service".into(), "gw".into())]), false);
        let back = encoded(
            vec![rec(2, "info", "a", None), rec(1, "warn", "b", None)],
            &labels,
        );
        assert_eq!(back.streams.len(), 1);
        assert_eq!(back.streams[0].labels, r#"{service="gw"}"#);
        assert_eq!(back.streams[0].entries[0].line, "b");
    }

    /// The fields prost leaves out (a zero second or nanosecond, an empty line), timestamps
    /// before the epoch, and lengths past one and two bytes of varint (a line over 127
    /// bytes, a stream over 16,383).
    #[test]
    fn the_bytes_are_prosts_at_every_edge() {
        let labels = StreamLabels::new(&BTreeMap::from([("service".into(), "gw".into())]), true);
        let long = "é".repeat(100);
        let mut records = vec![
            rec(0, "info", "", None),
            rec(
                1_000_000_000,
                "info",
                "whole second",
                Some((u128::MAX, u64::MAX)),
            ),
            rec(-1, "warn", "before the epoch", Some((1, 1))),
            rec(i64::MAX, "warn", &long, None),
            rec(i64::MIN, "debug", "x", None),
        ];
        records.extend((0..200).map(|i| rec(i, "error", &long, Some((i as u128, 7)))));
        let back = encoded(records, &labels);
        assert_eq!(back.streams.len(), 4);
        assert!(back.streams[3].entries.len() == 2 && back.streams[1].entries.len() == 200);
        assert_eq!(encoded(Vec::new(), &labels).streams.len(), 0);
    }
}
