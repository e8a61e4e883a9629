//! The request envelope: Jina's `DataRequestProto` and what every part of the system reads or
//! writes in it: the endpoint, parameters (a protobuf Struct, JSON to us), the documents (sent
//! as a DocList or as its encoded bytes), the status, and routes.
//!
//! It owns no behaviour of executors, gateways or clients; it only gives them one way to touch
//! a request, so that they agree on defaults (such as the default endpoint).

mod budget;
mod cost;
mod structs;

pub mod json;
pub use budget::{Admission, ByteBudget, DEFAULT_IN_FLIGHT_BYTES};
pub use cost::{
    DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_REQUEST_DOCS, OverLimit, Unreadable, Weight,
    json_decoded_bytes, weigh,
};
pub use structs::{json_to_struct, struct_to_json};

use crate::document::{Document, DocumentArray};
use crate::proto::docarray::DocListProto;
use crate::proto::jina::{
    DataRequestProto, HeaderProto, RouteProto, StatusProto,
    data_request_proto::{DataContentProto, data_content_proto::Documents},
    status_proto::{ExceptionProto, StatusCode},
};
use prost::Message;
use prost_types::{Struct, value::Kind};
use serde_json::{Map, Value};

/// What a request may weigh, in bytes, on any face of the gateway (and at an executor served
/// alone), unless the Flow or the flag says.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// The endpoint of a request that names none.
const ROOT_ENDPOINT: &str = "/";

/// A fresh request id (uuid4 hex).
pub fn new_request_id() -> String {
    crate::document::new_id()
}

/// A new request to `endpoint` carrying `docs` and `parameters`.
pub fn new_request(
    endpoint: &str,
    docs: &DocumentArray,
    parameters: &Map<String, Value>,
) -> DataRequestProto {
    let mut req = new_request_with_data(endpoint, bytes::Bytes::new(), parameters);
    set_doc_list(&mut req, docs.to_proto());
    req
}

/// A new request to `endpoint` whose `data` is already encoded (a [`DocsWriter`]'s).
pub fn new_request_with_data(
    endpoint: &str,
    data: bytes::Bytes,
    parameters: &Map<String, Value>,
) -> DataRequestProto {
    DataRequestProto {
        header: Some(HeaderProto {
            request_id: new_request_id(),
            exec_endpoint: Some(endpoint.to_string()),
            ..Default::default()
        }),
        parameters: (!parameters.is_empty()).then(|| json_to_struct(parameters)),
        data,
        ..Default::default()
    }
}

/// A request to stream `doc` to `endpoint` (`stream_doc`), with `parameters` when there are any.
pub fn new_single_document_request(
    endpoint: &str,
    doc: &crate::document::Document,
    parameters: &Map<String, Value>,
) -> crate::proto::jina::SingleDocumentRequestProto {
    crate::proto::jina::SingleDocumentRequestProto {
        header: Some(HeaderProto {
            request_id: new_request_id(),
            exec_endpoint: Some(endpoint.to_string()),
            ..Default::default()
        }),
        parameters: (!parameters.is_empty()).then(|| json_to_struct(parameters)),
        routes: vec![],
        document: Some(doc.to_proto()),
    }
}

/// The endpoint a request asks for.
pub fn endpoint(req: &DataRequestProto) -> &str {
    req.header
        .as_ref()
        .and_then(|h| h.exec_endpoint.as_deref())
        .unwrap_or(ROOT_ENDPOINT)
}

/// The request's id (empty when none).
pub fn request_id(req: &DataRequestProto) -> &str {
    req.header.as_ref().map_or("", |h| h.request_id.as_str())
}

/// The executor the request last passed (its last route), as Python Jina's `last_executor`.
pub fn last_executor(req: &DataRequestProto) -> Option<String> {
    req.routes.last().map(|r| r.executor.clone())
}

/// The request's parameters as JSON (empty when none).
pub fn parameters(req: &DataRequestProto) -> Map<String, Value> {
    req.parameters
        .as_ref()
        .map(struct_to_json)
        .unwrap_or_default()
}

/// The request's documents, decoded. Encoded bytes that do not decode are an error.
pub fn docs(req: &DataRequestProto) -> Result<DocumentArray, prost::DecodeError> {
    Ok(DocumentArray::from_proto(doc_list(req)?))
}

/// The request's documents as the wire list, whichever way they were sent.
pub(crate) fn doc_list(req: &DataRequestProto) -> Result<DocListProto, prost::DecodeError> {
    match DataContentProto::decode(req.data.clone())?.documents {
        None => Ok(DocListProto::default()),
        Some(Documents::Docs(list)) => Ok(list),
        Some(Documents::DocsBytes(bytes)) => DocListProto::decode(bytes),
    }
}

/// Replaces the request's documents.
pub fn set_docs(req: &mut DataRequestProto, docs: DocumentArray) {
    set_doc_list(req, docs.into_proto());
}

/// Writes documents one at a time straight into a request's `data` (an encoded
/// `DataContentProto` holding a `DocListProto`), so that a large batch never exists as a list
/// of decoded documents.
pub struct DocsWriter {
    /// [`HEADER_ROOM`] bytes left free for the `DataContentProto` field header, then the docs.
    buf: Vec<u8>,
    docs: usize,
}

/// Room for the field key (1 byte) and the length varint (at most 10) before the documents.
const HEADER_ROOM: usize = 11;

impl Default for DocsWriter {
    fn default() -> Self {
        DocsWriter::with_capacity(0)
    }
}

impl DocsWriter {
    /// A writer with room for about `bytes` of documents, so that a batch of known size is
    /// written into one buffer instead of growing through copies.
    pub fn with_capacity(bytes: usize) -> DocsWriter {
        let mut buf = Vec::with_capacity(HEADER_ROOM + bytes);
        buf.resize(HEADER_ROOM, 0);
        DocsWriter { buf, docs: 0 }
    }

    /// Writes one document, encoded, after the others.
    pub fn push(&mut self, doc: &crate::proto::docarray::DocProto) {
        prost::encoding::message::encode(1, doc, &mut self.buf);
        self.docs += 1;
    }

    /// Writes one document that is already encoded, after the others.
    fn push_encoded(&mut self, doc: &[u8]) {
        use prost::encoding::{WireType, encode_key, encode_varint};
        encode_key(1, WireType::LengthDelimited, &mut self.buf);
        encode_varint(doc.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(doc);
        self.docs += 1;
    }

    /// Documents written so far.
    pub fn docs(&self) -> usize {
        self.docs
    }

    /// Bytes of documents written so far.
    pub fn len(&self) -> usize {
        self.buf.len() - HEADER_ROOM
    }

    /// Whether no document was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The request's `data`: the documents as `DataContentProto.docs` (field 1), whose header
    /// is written into the room left for it, so the documents are not copied.
    pub fn finish(self) -> bytes::Bytes {
        use prost::encoding::{WireType, encode_key, encode_varint};
        let mut head = Vec::with_capacity(HEADER_ROOM);
        encode_key(1, WireType::LengthDelimited, &mut head);
        encode_varint((self.buf.len() - HEADER_ROOM) as u64, &mut head);
        let start = HEADER_ROOM - head.len();
        let mut buf = self.buf;
        buf[start..HEADER_ROOM].copy_from_slice(&head);
        bytes::Bytes::from(buf).slice(start..)
    }
}

/// Each document of a request, decoded one at a time from its `data`, whichever way it was
/// sent (`docs` or `docs_bytes`): the list is never decoded whole.
pub fn each_doc(req: &DataRequestProto) -> Result<EachDoc, prost::DecodeError> {
    let list = doc_list_slice(&req.data)?;
    Ok(EachDoc {
        rest: EncodedDocs { rest: list },
    })
}

/// How many documents a request carries, read from the framing alone (nothing is decoded).
pub fn doc_count(req: &DataRequestProto) -> usize {
    use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
    let Ok(mut list) = doc_list_slice(&req.data) else {
        return 0;
    };
    let mut n = 0;
    while !list.is_empty() {
        let Ok((tag, wire_type)) = decode_key(&mut list) else {
            break;
        };
        if (tag, wire_type) == (1, WireType::LengthDelimited) {
            n += 1;
        }
        if skip_field(wire_type, tag, &mut list, DecodeContext::default()).is_err() {
            break;
        }
    }
    n
}

/// The encoded `DocListProto` inside an encoded `DataContentProto` (empty when it has none).
fn doc_list_slice(data: &bytes::Bytes) -> Result<bytes::Bytes, prost::DecodeError> {
    use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
    let mut buf = data.clone();
    let mut list = bytes::Bytes::new();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            // A oneof: the last one given wins.
            (1 | 2, WireType::LengthDelimited) => prost::encoding::bytes::merge(
                wire_type,
                &mut list,
                &mut buf,
                DecodeContext::default(),
            )?,
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(list)
}

/// The `DocProto`s of an encoded `DocListProto` (field 1, repeated), decoded one at a time.
pub struct EachDoc {
    rest: EncodedDocs,
}

impl Iterator for EachDoc {
    type Item = Result<crate::proto::docarray::DocProto, prost::DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let doc = self.rest.next()?;
        Some(doc.and_then(crate::proto::docarray::DocProto::decode))
    }
}

/// The documents of an encoded `DocListProto`, each as its own encoded bytes (slices of the
/// list, nothing copied); a malformed list ends with its error.
struct EncodedDocs {
    rest: bytes::Bytes,
}

impl Iterator for EncodedDocs {
    type Item = Result<bytes::Bytes, prost::DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
        while !self.rest.is_empty() {
            let item = (|| {
                let (tag, wire_type) = decode_key(&mut self.rest)?;
                if (tag, wire_type) != (1, WireType::LengthDelimited) {
                    skip_field(wire_type, tag, &mut self.rest, DecodeContext::default())?;
                    return Ok(None);
                }
                let mut doc = bytes::Bytes::new();
                prost::encoding::bytes::merge(
                    wire_type,
                    &mut doc,
                    &mut self.rest,
                    DecodeContext::default(),
                )?;
                Ok(Some(doc))
            })();
            match item {
                Ok(None) => continue,
                Ok(Some(doc)) => return Some(Ok(doc)),
                Err(e) => {
                    self.rest = bytes::Bytes::new();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Keeps the request's documents that `keep` takes, each as the bytes it came as: a filter
/// (`when:`) reads the documents but re-encodes none, so what passes is what was sent.
pub fn retain_docs(
    req: &mut DataRequestProto,
    mut keep: impl FnMut(Document) -> bool,
) -> Result<(), prost::DecodeError> {
    let list = doc_list_slice(&req.data)?;
    let mut kept = DocsWriter::with_capacity(list.len());
    for doc in (EncodedDocs { rest: list }) {
        let doc = doc?;
        let decoded = crate::proto::docarray::DocProto::decode(doc.clone())?;
        if keep(Document::from_proto(decoded)) {
            kept.push_encoded(&doc);
        }
    }
    req.data = kept.finish();
    Ok(())
}

/// Replaces the request's documents with an already built wire list.
pub(crate) fn set_doc_list(req: &mut DataRequestProto, list: DocListProto) {
    req.data = DataContentProto {
        documents: Some(Documents::Docs(list)),
    }
    .encode_to_vec()
    .into();
}

/// The request's header, created if missing.
pub fn header_mut(req: &mut DataRequestProto) -> &mut HeaderProto {
    req.header.get_or_insert_with(Default::default)
}

/// True when the request carries status ERROR.
pub fn is_error(req: &DataRequestProto) -> bool {
    req.header
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

/// What went wrong on the way to an executor, as the gateway saw it: Python Jina's
/// `InternalNetworkError`, which its HTTP face answers with 503 or 504 rather than 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InTransit {
    /// The executor could not be reached, or broke off.
    Unreachable,
    /// It did not answer in time.
    Timeout,
}

/// The stack line that marks an error of the gateway's own making (see [`InTransit`]).
const IN_TRANSIT_STACK: &str = "raised by the gateway, on the call to the executor";

impl InTransit {
    /// A status ERROR for this failure: as [`error_status`], marked as the gateway's own.
    pub fn status(self, message: &str, executor: &str) -> StatusProto {
        let name = match self {
            InTransit::Unreachable => "ConnectionError",
            InTransit::Timeout => "TimeoutError",
        };
        let mut status = error_status(name, message, executor);
        if let Some(e) = &mut status.exception {
            e.stacks.push(IN_TRANSIT_STACK.into());
        }
        status
    }

    /// The failure a status stands for, when the gateway made it.
    pub fn of(status: &StatusProto) -> Option<InTransit> {
        let e = status.exception.as_ref()?;
        if !e.stacks.iter().any(|s| s == IN_TRANSIT_STACK) {
            return None;
        }
        Some(match e.name.as_str() {
            "TimeoutError" => InTransit::Timeout,
            _ => InTransit::Unreachable,
        })
    }
}

/// A status ERROR whose exception names the error, its message and the executor.
pub fn error_status(name: &str, message: &str, executor: &str) -> StatusProto {
    StatusProto {
        code: StatusCode::Error as i32,
        description: format!("{name}: {message}"),
        exception: Some(ExceptionProto {
            name: name.into(),
            args: vec![message.into()],
            stacks: vec![],
            executor: executor.into(),
        }),
    }
}

/// Joins several requests (the parents of a join, or the shards of an executor) into one, as
/// Python Jina reduces them: documents merged by id (a later copy's fields win), the first
/// request's header and parameters with every request's `__results__`, the routes of every
/// executor once. Returns the merged request (documents already set) and its documents; on a
/// decode error, the first request and the error.
#[allow(
    clippy::result_large_err,
    reason = "the error hands back the request to answer with, on a cold path"
)]
pub fn merge(
    requests: Vec<DataRequestProto>,
) -> Result<(DataRequestProto, DocumentArray), (DataRequestProto, prost::DecodeError)> {
    let (mut merged, arrays) = gather(requests)?;
    let docs = DocumentArray::merge_by_id(arrays);
    set_doc_list(&mut merged, docs.to_proto());
    Ok((merged, docs))
}

/// Several requests as Python Jina's worker takes them (the shards' answers handed to a
/// `uses_after`): the first request, as [`merge`] keeps it; the documents of every request one
/// after another, ids repeated as they come; and each request's documents apart (Jina's
/// `docs_matrix`). The request's own documents are left for the caller to set.
#[allow(
    clippy::result_large_err,
    reason = "the error hands back the request to answer with, on a cold path"
)]
pub fn stack(
    requests: Vec<DataRequestProto>,
) -> Result<
    (DataRequestProto, DocumentArray, Vec<DocumentArray>),
    (DataRequestProto, prost::DecodeError),
> {
    let (first, matrix) = gather(requests)?;
    let docs = matrix.iter().flatten().cloned().collect();
    Ok((first, docs, matrix))
}

/// The first request, with the `__results__` and routes of the others laid over it, and the
/// documents of each.
#[allow(
    clippy::result_large_err,
    reason = "the error hands back the request to answer with, on a cold path"
)]
fn gather(
    requests: Vec<DataRequestProto>,
) -> Result<(DataRequestProto, Vec<DocumentArray>), (DataRequestProto, prost::DecodeError)> {
    let mut iter = requests.into_iter();
    let Some(mut first) = iter.next() else {
        return Ok((DataRequestProto::default(), vec![]));
    };
    let mut arrays = Vec::new();
    for r in std::iter::once(&first).chain(iter.as_slice()) {
        match docs(r) {
            Ok(d) => arrays.push(d),
            Err(e) => return Err((first, e)),
        }
    }
    let mut params = first.parameters.take().unwrap_or_default();
    for r in iter {
        if let Some(later) = r.parameters {
            merge_results(&mut params, later);
        }
        for route in r.routes {
            if !first
                .routes
                .iter()
                .any(|known| known.executor == route.executor)
            {
                first.routes.push(route);
            }
        }
    }
    first.parameters = (!params.fields.is_empty()).then_some(params);
    Ok((first, arrays))
}

/// Where Python executors put what their handlers return (a dict), keyed by the copy's name.
pub const RESULTS_KEY: &str = "__results__";

/// Puts what executor `name` returned under `__results__[name]` in the request's parameters.
pub fn set_results(req: &mut DataRequestProto, name: &str, results: Value) {
    let params = req.parameters.get_or_insert_with(Struct::default);
    let entry = params
        .fields
        .entry(RESULTS_KEY.to_string())
        .or_insert_with(|| prost_types::Value {
            kind: Some(Kind::StructValue(Struct::default())),
        });
    if struct_value_mut(entry).is_none() {
        entry.kind = Some(Kind::StructValue(Struct::default()));
    }
    if let Some(all) = struct_value_mut(entry) {
        all.fields
            .insert(name.to_string(), structs::json_to_value(&results));
    }
}

/// Lays the `__results__` of `later` over those of `params`, key by key (the other parameters
/// are the first request's, as Python Jina's worker and head reduce requests). Parameters stay
/// a `Struct` on the whole request path: nothing here goes through JSON.
fn merge_results(params: &mut Struct, mut later: Struct) {
    let Some(theirs) = later.fields.remove(RESULTS_KEY) else {
        return;
    };
    match params
        .fields
        .get_mut(RESULTS_KEY)
        .and_then(struct_value_mut)
    {
        Some(mine) => {
            if let Some(Kind::StructValue(theirs)) = theirs.kind {
                mine.fields.extend(theirs.fields);
            }
        }
        None => {
            params.fields.insert(RESULTS_KEY.into(), theirs);
        }
    }
}

fn struct_value_mut(v: &mut prost_types::Value) -> Option<&mut Struct> {
    match &mut v.kind {
        Some(Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

/// The parameters an executor named `executor` gets, as Python Jina gives them: the client's,
/// with `executor__key` keys applied to that executor only (as `key`) and dropped for the
/// others, and a `parameters[executor]` object laid over them.
pub fn parameters_for(params: &Struct, executor: &str) -> Struct {
    let mut out = params.clone();
    for (k, v) in &params.fields {
        let specific = k.contains("__") && !k.starts_with("__") && !k.ends_with("__");
        if !specific {
            continue;
        }
        out.fields.remove(k);
        let (target, key) = k.rsplit_once("__").expect("contains __");
        // Python joins the parts before the last separator without it.
        if target.replace("__", "") == executor {
            out.fields.insert(key.to_string(), v.clone());
        }
    }
    if let Some(Kind::StructValue(own)) = params.fields.get(executor).and_then(|v| v.kind.as_ref())
    {
        out.fields.extend(own.fields.clone());
    }
    out
}

/// Marks the request as failed with this status.
pub fn set_error(req: &mut DataRequestProto, status: StatusProto) {
    header_mut(req).status = Some(status);
}

/// A route entry for an executor, starting now.
pub fn start_route(executor: &str) -> RouteProto {
    RouteProto {
        executor: executor.into(),
        start_time: Some(now()),
        end_time: None,
        status: None,
    }
}

/// The current time as a protobuf Timestamp.
pub fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn params(v: Value) -> Struct {
        json_to_struct(&map(v))
    }

    #[test]
    fn each_executor_gets_its_own_parameters_as_python_jina_sends_them() {
        let client = params(json!({"top_k": 3, "b__only_b": 1, "b": {"k": "own"}}));
        assert_eq!(
            parameters_for(&client, "p1"),
            params(json!({"top_k": 3, "b": {"k": "own"}}))
        );
        assert_eq!(
            parameters_for(&client, "b"),
            params(json!({"top_k": 3, "only_b": 1, "b": {"k": "own"}, "k": "own"}))
        );
        // `__results__` and other keys that start or end with `__` are for everyone.
        let dunder = params(json!({"__results__": {}, "x__": 1}));
        assert_eq!(parameters_for(&dunder, "b"), dunder);
    }

    #[test]
    fn doc_count_reads_the_framing_only() {
        let docs: DocumentArray = (0..3)
            .map(|i| crate::document::Document::from_text(format!("d{i}")))
            .collect();
        let req = new_request("/", &docs, &Map::new());
        assert_eq!(doc_count(&req), 3);
        assert_eq!(doc_count(&DataRequestProto::default()), 0);
    }

    #[test]
    fn retained_documents_are_the_bytes_that_came() {
        use crate::proto::docarray::{DocProto, ListOfAnyProto, NodeProto, node_proto::Content};
        // A tuple and a null: values a decode and encode would not give back as they were.
        let doc = |id: &str| DocProto {
            data: [
                ("id", Content::Text(id.into())),
                ("odd", Content::Tuple(ListOfAnyProto::default())),
            ]
            .into_iter()
            .map(|(k, c)| {
                (
                    k.to_string(),
                    NodeProto {
                        content: Some(c),
                        docarray_type: None,
                    },
                )
            })
            .chain([("null".to_string(), NodeProto::default())])
            .collect(),
        };
        let mut writer = DocsWriter::default();
        for id in ["a", "b", "c"] {
            writer.push(&doc(id));
        }
        let mut req = new_request_with_data("/", writer.finish(), &Map::new());
        let sent: Vec<bytes::Bytes> = EncodedDocs {
            rest: doc_list_slice(&req.data).unwrap(),
        }
        .collect::<Result<_, _>>()
        .unwrap();
        retain_docs(&mut req, |d| d.id != "b").unwrap();
        let kept: Vec<bytes::Bytes> = EncodedDocs {
            rest: doc_list_slice(&req.data).unwrap(),
        }
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(kept, vec![sent[0].clone(), sent[2].clone()]);
        assert_eq!(doc_count(&req), 2);
    }

    #[test]
    fn merging_keeps_the_first_parameters_and_every_copys_results() {
        let mut merged = params(json!({"a": 1, RESULTS_KEY: {"s/shard-0/rep-0": {"id": 0}}}));
        merge_results(
            &mut merged,
            params(json!({"a": 2, RESULTS_KEY: {"s/shard-1/rep-0": {"id": 1}}})),
        );
        assert_eq!(
            merged,
            params(
                json!({"a": 1, RESULTS_KEY: {"s/shard-0/rep-0": {"id": 0}, "s/shard-1/rep-0": {"id": 1}}})
            )
        );
        let mut none = params(json!({"a": 1}));
        merge_results(&mut none, params(json!({RESULTS_KEY: {"x": 1}})));
        assert_eq!(none, params(json!({"a": 1, RESULTS_KEY: {"x": 1}})));
    }
}
