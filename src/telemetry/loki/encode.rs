//! Loki's native push format: protobuf `PushRequest`, compressed with snappy's raw (block)
//! format, sent as `application/x-protobuf`.
//!
//! The four messages are written by hand from grafana/loki `pkg/push/push.proto` (the
//! `loki-api` crate lacks structured metadata, field 3 of `EntryAdapter`). [`encode`] groups a
//! batch into streams by the fixed label set (static labels plus `level`), sorts each
//! stream's entries by timestamp (stable, so equal timestamps keep arrival order — Loki
//! rejects out-of-order entries within a stream), and attaches `trace_id` / `span_id` as
//! structured metadata.

use std::collections::BTreeMap;

use super::batch::Record;

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

/// Groups `records` into streams and builds the request.
pub fn to_request(records: Vec<Record>, labels: &StreamLabels) -> PushRequest {
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
                entries: records.into_iter().map(entry).collect(),
                hash: 0,
            }
        })
        .collect();
    PushRequest { streams }
}

fn entry(r: Record) -> EntryAdapter {
    let mut structured_metadata = Vec::new();
    if let Some(trace_id) = r.trace_id {
        structured_metadata.push(LabelPairAdapter {
            name: "trace_id".into(),
            value: trace_id.to_string(),
        });
    }
    if let Some(span_id) = r.span_id {
        structured_metadata.push(LabelPairAdapter {
            name: "span_id".into(),
            value: span_id.to_string(),
        });
    }
    EntryAdapter {
        timestamp: Some(Timestamp {
            seconds: r.ts_ns.div_euclid(1_000_000_000),
            nanos: r.ts_ns.rem_euclid(1_000_000_000) as i32,
        }),
        line: r.line,
        structured_metadata,
    }
}

/// Protobuf, then snappy raw: the body of one push.
pub fn encode(request: &PushRequest) -> Result<Vec<u8>, snap::Error> {
    let proto = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new().compress_vec(&proto)
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

    fn rec(ts: i64, level: &'static str, line: &str, trace: Option<&str>) -> Record {
        Record {
            ts_ns: ts,
            level,
            line: line.into(),
            trace_id: trace.map(Into::into),
            span_id: None,
        }
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
        let req = to_request(
            vec![
                rec(3_000_000_001, "info", "c", None),
                rec(1, "error", "e", Some("ab")),
                rec(2, "info", "a", None),
                rec(2, "info", "b", None),
            ],
            &labels,
        );
        let back = decode(&encode(&req).unwrap()).unwrap();
        assert_eq!(back, req);
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
        assert_eq!(
            back.streams[0].entries[0].structured_metadata[0].value,
            "ab"
        );
    }

    #[test]
    fn without_level_label_one_stream() {
        let labels = StreamLabels::new(&BTreeMap::from([("service".into(), "gw".into())]), false);
        let req = to_request(
            vec![rec(2, "info", "a", None), rec(1, "warn", "b", None)],
            &labels,
        );
        assert_eq!(req.streams.len(), 1);
        assert_eq!(req.streams[0].labels, r#"{service="gw"}"#);
        assert_eq!(req.streams[0].entries[0].line, "b");
    }
}
