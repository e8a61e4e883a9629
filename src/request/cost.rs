//! What a request costs once it is read, known before it is read.
//!
//! `max_request_bytes` bounds a request as it is sent, but not what it becomes: 64 MB of
//! `{}` is 21 million documents, and each decoded document takes hundreds of bytes. So before
//! anything is decoded, a request is *weighed* from its framing alone (its documents at every
//! depth, and its values: each field of a document, each item of a list or dict, each JSON
//! value), and its [`Weight`] gives an estimate of the memory it will take. That estimate is
//! what a process's [`super::ByteBudget`] admits, and the document count is what
//! `max_request_docs` bounds.
//!
//! It owns the counting and the estimate; who refuses what, and how it is said, belongs to
//! each face.

use prost::encoding::{WireType, decode_key, decode_varint, skip_field};

/// Documents in one request, at every depth (chunks and matches count), unless the Flow or
/// the flag says.
pub const DEFAULT_MAX_REQUEST_DOCS: usize = 100_000;

/// The estimated memory of the requests one process handles at once, unless the Flow or the
/// flag says: room for a few requests of the largest size, and a process well under 512 MB.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 256 << 20;

/// What one decoded document takes besides its fields' contents: `Document` is 648 bytes,
/// then its id and the wire map it was read from.
const BYTES_PER_DOC: usize = 768;
/// What one decoded value takes besides its contents: a `NodeProto` is 136 bytes, then its
/// map entry and key.
const BYTES_PER_VALUE: usize = 160;
/// A `serde_json::Value` (with `preserve_order`).
const BYTES_PER_JSON_VALUE: usize = 72;

/// Nesting deeper than this is refused (prost's own decoder stops at 100).
const MAX_DEPTH: u32 = 64;

/// How much a request holds, counted from its framing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Weight {
    /// Documents at every depth.
    pub docs: usize,
    /// Values: a document's fields and everything nested in them, or JSON values.
    pub values: usize,
}

impl Weight {
    /// The memory the request is expected to take once decoded, with its `bytes` as sent.
    pub fn decoded_bytes(&self, bytes: usize) -> usize {
        bytes
            .saturating_add(self.docs.saturating_mul(BYTES_PER_DOC))
            .saturating_add(self.values.saturating_mul(BYTES_PER_VALUE))
    }
}

/// Why a request is refused before it is read. Each message says how to raise the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    #[error(
        "the request holds {found} documents (chunks and matches included), over the limit of {limit} (max_request_docs); send fewer per request (--request-size) or raise max_request_docs"
    )]
    Docs { found: usize, limit: usize },
    #[error(
        "the request would take about {needed} bytes of memory once read, over this process's budget of {budget} bytes (max_in_flight_bytes); send less per request or raise max_in_flight_bytes"
    )]
    Memory { needed: usize, budget: usize },
    #[error(
        "the request is larger than the limit of {limit} bytes (max_request_bytes); send less per request or raise max_request_bytes"
    )]
    Bytes { limit: usize },
}

/// Why a request's documents cannot be weighed (nor, then, decoded).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("the documents are not a DocList: {0}")]
    Wire(#[from] prost::DecodeError),
    #[error("a field's length runs past the end of the documents")]
    Truncated,
    #[error("the documents are nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

impl OverLimit {
    /// The refusal in at most 123 bytes: a WebSocket close frame's reason.
    pub fn short(&self) -> String {
        match self {
            OverLimit::Docs { found, limit } => {
                format!("{found} documents, over max_request_docs ({limit})")
            }
            OverLimit::Memory { needed, budget } => format!(
                "needs ~{} MiB once read, over max_in_flight_bytes ({} MiB)",
                needed >> 20,
                budget >> 20
            ),
            OverLimit::Bytes { limit } => format!("over max_request_bytes ({limit})"),
        }
    }
}

/// What a JSON body is expected to take while it is read: itself, its documents' wire form
/// (about its size), and the JSON values of one document at a time, bounded by all of them.
pub fn json_decoded_bytes(body: &[u8]) -> usize {
    body.len()
        .saturating_mul(2)
        .saturating_add(json_values(body).saturating_mul(BYTES_PER_JSON_VALUE))
}

/// The weight of a request's `data` (an encoded `DataContentProto`), from its framing alone.
pub fn weigh(data: &[u8]) -> Result<Weight, Unreadable> {
    let mut weight = Weight::default();
    each_field(data, |tag, payload| match (tag, payload) {
        // `docs`, or `docs_bytes`: the same DocListProto either way.
        (1 | 2, Some(list)) => weigh_doc_list(list, 0, &mut weight),
        _ => Ok(()),
    })?;
    Ok(weight)
}

/// Each field of an encoded message: its tag, and its payload when it is length-delimited.
fn each_field(
    mut buf: &[u8],
    mut on: impl FnMut(u32, Option<&[u8]>) -> Result<(), Unreadable>,
) -> Result<(), Unreadable> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut buf)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= buf.len())
                .ok_or(Unreadable::Truncated)?;
            let (payload, rest) = buf.split_at(len);
            buf = rest;
            on(tag, Some(payload))?;
        } else {
            skip_field(wire_type, tag, &mut buf, Default::default())?;
            on(tag, None)?;
        }
    }
    Ok(())
}

fn deeper(depth: u32) -> Result<u32, Unreadable> {
    match depth < MAX_DEPTH {
        true => Ok(depth + 1),
        false => Err(Unreadable::TooDeep),
    }
}

/// `DocListProto`: `repeated DocProto docs = 1`.
fn weigh_doc_list(list: &[u8], depth: u32, w: &mut Weight) -> Result<(), Unreadable> {
    let depth = deeper(depth)?;
    each_field(list, |tag, payload| match (tag, payload) {
        (1, Some(doc)) => weigh_doc(doc, depth, w),
        _ => Ok(()),
    })
}

/// `DocProto` (and `DictOfAnyProto`, framed alike): `map<string, NodeProto> data = 1`.
fn weigh_doc(doc: &[u8], depth: u32, w: &mut Weight) -> Result<(), Unreadable> {
    w.docs += 1;
    weigh_map(doc, depth, w)
}

fn weigh_map(map: &[u8], depth: u32, w: &mut Weight) -> Result<(), Unreadable> {
    let depth = deeper(depth)?;
    each_field(map, |tag, entry| match (tag, entry) {
        (1, Some(entry)) => each_field(entry, |tag, node| match (tag, node) {
            (2, Some(node)) => weigh_node(node, depth, w),
            // A key, or an entry whose node is left out (a null).
            _ => Ok(()),
        }),
        _ => Ok(()),
    })
}

/// `NodeProto`: one value, which may hold a document, a list of them, a list or a dict.
fn weigh_node(node: &[u8], depth: u32, w: &mut Weight) -> Result<(), Unreadable> {
    w.values += 1;
    let depth = deeper(depth)?;
    each_field(node, |tag, payload| match (tag, payload) {
        (7, Some(doc)) => weigh_doc(doc, depth, w),
        (8, Some(list)) => weigh_doc_list(list, depth, w),
        // list, set, tuple: `repeated NodeProto data = 1`.
        (9..=11, Some(list)) => each_field(list, |tag, item| match (tag, item) {
            (1, Some(item)) => weigh_node(item, depth, w),
            _ => Ok(()),
        }),
        (12, Some(dict)) => weigh_map(dict, depth, w),
        _ => Ok(()),
    })
}

/// The values of a JSON text, over-counted from its structure alone (each `{`, `[`, `,` and
/// `:` outside strings, plus one): one pass, nothing built.
fn json_values(body: &[u8]) -> usize {
    let (mut values, mut in_string, mut escaped) = (1usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' | b',' | b':' => values += 1,
                _ => {}
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Document, DocumentArray};

    fn data_of(docs: Vec<Document>) -> bytes::Bytes {
        let req = crate::request::new_request("/", &DocumentArray::from(docs), &Default::default());
        req.data
    }

    #[test]
    fn documents_are_counted_at_every_depth_and_their_fields_as_values() {
        let mut doc = Document::from_text("a");
        doc.chunks = (0..3)
            .map(|i| Document::from_text(format!("c{i}")))
            .collect();
        doc.tags
            .insert("list".into(), serde_json::json!([1, 2, {"x": 3}]));
        let weight = weigh(&data_of(vec![doc, Document::default()])).unwrap();
        assert_eq!(weight.docs, 2 + 3);
        // doc: id, text, chunks, tags; tags: the list (3 items, the dict's x); chunks: id, text
        // each; the empty doc: id.
        assert!(weight.values >= 4 + 3 * 2 + 1 + 4, "{weight:?}");
        assert_eq!(weigh(&[]).unwrap(), Weight::default());
    }

    #[test]
    fn garbage_and_endless_nesting_are_errors_not_crashes() {
        assert!(weigh(&[0x0a, 0xff, 0xff]).is_err());
        let mut doc = Document::from_text("leaf");
        for _ in 0..80 {
            doc = Document {
                chunks: DocumentArray::from(vec![doc]),
                ..Document::default()
            };
        }
        assert!(weigh(&data_of(vec![doc])).is_err());
    }

    #[test]
    fn json_values_over_count_but_never_under() {
        assert_eq!(
            json_values(br#"{"data":[{},{},{}]}"#),
            1 + 1 + 1 + 1 + 3 + 2
        );
        assert_eq!(json_values(br#"{"text":"a,b:{[\"]"}"#), 3);
        assert_eq!(json_values(b"[]"), 2);
    }
}
