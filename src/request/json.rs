//! The JSON form of a data request, as REST and WebSocket clients send and receive it.
//!
//! In: `{"data": [doc, ...], "parameters": {...}, "execEndpoint": "/index",
//! "targetExecutor": "regex", "requestId": "..."}` (Jina 2's `/post` body), or the same with a
//! `"header": {"request_id", "exec_endpoint", "target_executor"}` (Jina 3's form; camelCase
//! keys are read too). Out: `{"header": {"requestId", "execEndpoint", "targetExecutor",
//! "status"}, "parameters", "routes", "data"}`, field names as protobuf's JSON mapping writes them.

use super::{DocsWriter, header_mut, json_to_struct, struct_to_json};
use crate::document::{Document, json_kind};
use crate::proto::jina::{DataRequestProto, RouteProto, StatusProto};
use serde_json::{Map, Value, json};

/// Reads a request body. `endpoint` (POST /<endpoint>) wins over one the body names. Errors
/// name the field at fault.
pub fn from_json(body: &Value, endpoint: Option<&str>) -> Result<DataRequestProto, String> {
    let body = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
    let never = std::cell::Cell::new(None);
    let unlimited = Limited {
        limits: JsonLimits::NONE,
        over: &never,
    };
    let data = match body.get("data") {
        None | Some(Value::Null) => None,
        // Jina 2 also accepted {"docs": [...]} under data.
        Some(Value::Object(o))
            if o.len() == 1 && matches!(o.get("docs"), Some(Value::Array(_))) =>
        {
            Some(docs_from_values(&o["docs"], unlimited).map_err(|e| format!("data.docs: {e}"))?)
        }
        // One document, as Python Jina's face takes it.
        Some(one @ Value::Object(_)) => Some(
            docs_from_values(&Value::Array(vec![one.clone()]), unlimited)
                .map_err(|e| format!("data: {e}"))?,
        ),
        Some(v) => Some(docs_from_values(v, unlimited).map_err(|e| format!("data: {e}"))?),
    };
    envelope(body, data, endpoint)
}

/// What a JSON body may become: documents (at every depth) and bytes of wire form.
#[derive(Clone, Copy, Debug)]
pub struct JsonLimits {
    pub max_docs: Option<usize>,
    pub max_bytes: usize,
}

impl JsonLimits {
    /// No limit (a trusted caller's body).
    pub const NONE: JsonLimits = JsonLimits {
        max_docs: None,
        max_bytes: usize::MAX,
    };
}

/// Why a JSON body is not a request.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or not a request: the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A request, but more than this process takes.
    #[error(transparent)]
    OverLimit(#[from] super::OverLimit),
}

/// Reads a request body from its bytes, as [`from_json`] does, but each document goes from
/// JSON to its wire form on its own: no tree of the whole body, no list of decoded documents,
/// so memory stays a small multiple of the body however many documents it holds. The
/// documents stop being read at the first one over `limits`.
pub fn from_json_bytes(
    body: &[u8],
    endpoint: Option<&str>,
    limits: JsonLimits,
) -> Result<DataRequestProto, JsonError> {
    use serde::de::DeserializeSeed;
    // The body is optional (a parameters-free request with no documents, like `curl -X POST`).
    if body.iter().all(u8::is_ascii_whitespace) {
        return envelope(&Map::new(), None, endpoint).map_err(JsonError::Invalid);
    }
    let over = std::cell::Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed {
        limits: Limited {
            limits,
            over: &over,
        },
    }
    .deserialize(&mut de)
    .and_then(|b| de.end().map(|()| b));
    if let Some(over) = over.take() {
        return Err(JsonError::OverLimit(over));
    }
    let parsed = parsed.map_err(|e| {
        JsonError::Invalid(match e.classify() {
            serde_json::error::Category::Data => e.to_string(),
            _ => format!("the request body is not valid JSON: {e}"),
        })
    })?;
    envelope(&parsed.fields, parsed.data, endpoint).map_err(JsonError::Invalid)
}

/// The limits of one body being read, and the first one it went over.
#[derive(Clone, Copy)]
struct Limited<'a> {
    limits: JsonLimits,
    over: &'a std::cell::Cell<Option<super::OverLimit>>,
}

impl Limited<'_> {
    /// Writes `doc` unless the request then goes over a limit (recorded, and an error).
    fn push<E: serde::de::Error>(
        &self,
        writer: &mut DocsWriter,
        docs: &mut usize,
        doc: Document,
    ) -> Result<(), E> {
        *docs += doc.count_all();
        let over = match self.limits.max_docs {
            Some(limit) if *docs > limit => Some(super::OverLimit::Docs {
                found: *docs,
                limit,
            }),
            _ => None,
        };
        if over.is_none() {
            writer.push(&doc.into_proto());
        }
        let over = over.or_else(|| {
            (writer.len() > self.limits.max_bytes).then_some(super::OverLimit::Bytes {
                limit: self.limits.max_bytes,
            })
        });
        match over {
            Some(over) => {
                let message = over.to_string();
                self.over.set(Some(over));
                Err(E::custom(message))
            }
            None => Ok(()),
        }
    }
}

/// Documents given as JSON values, in their wire form.
fn docs_from_values(v: &Value, limits: Limited) -> Result<bytes::Bytes, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("documents must be a JSON list, not {}", json_kind(v)))?;
    let mut writer = DocsWriter::default();
    let mut docs = 0;
    for (i, item) in items.iter().enumerate() {
        let doc = Document::from_json(item).map_err(|e| format!("document {i}: {e}"))?;
        limits
            .push::<serde_json::Error>(&mut writer, &mut docs, doc)
            .map_err(|e| e.to_string())?;
    }
    Ok(writer.finish())
}

/// A request body as read by [`from_json_bytes`]: every field but `data` as JSON, and the
/// documents already in their wire form.
struct Body {
    fields: Map<String, Value>,
    data: Option<bytes::Bytes>,
}

struct BodySeed<'a> {
    limits: Limited<'a>,
}

impl<'de> serde::de::DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Body;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Body, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BodySeed<'_> {
    type Value = Body;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the request body as a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut body = Body {
            fields: Map::new(),
            data: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == "data" {
                body.data = map.next_value_seed(DataSeed {
                    path: "data",
                    limits: self.limits,
                })?;
            } else {
                let value = map.next_value()?;
                body.fields.insert(key, value);
            }
        }
        Ok(body)
    }
}

/// `data`: a list of documents, null, Jina 2's `{"docs": [...]}`, or one document.
struct DataSeed<'a> {
    path: &'static str,
    limits: Limited<'a>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Option<bytes::Bytes>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DataSeed<'_> {
    type Value = Option<bytes::Bytes>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: a JSON list of documents", self.path)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut writer = DocsWriter::default();
        let (mut i, mut docs) = (0, 0);
        // One document's JSON at a time: parsed, turned into its wire form, dropped.
        while let Some(item) = seq.next_element::<Value>()? {
            let doc = Document::from_json(&item).map_err(|e| {
                serde::de::Error::custom(format!("{}: document {i}: {e}", self.path))
            })?;
            self.limits.push(&mut writer, &mut docs, doc)?;
            i += 1;
        }
        Ok(Some(writer.finish()))
    }

    /// Jina 2's `{"docs": [...]}`, or else one document, as Python Jina's face takes a
    /// `data` that is an object rather than a list.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            fields.insert(key, map.next_value()?);
        }
        let value = match fields.remove("docs") {
            Some(docs) if fields.is_empty() && (docs.is_array() || docs.is_null()) => docs,
            Some(docs) => {
                fields.insert("docs".into(), docs);
                Value::Array(vec![Value::Object(fields)])
            }
            None => Value::Array(vec![Value::Object(fields)]),
        };
        let path = self.path;
        match value {
            Value::Null => Ok(None),
            value => docs_from_values(&value, self.limits)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("{path}: {e}"))),
        }
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(format!(
            "{}: documents must be a JSON list, not a string",
            self.path
        )))
    }
}

/// Everything of a request but its documents, from the body's other fields.
fn envelope(
    body: &Map<String, Value>,
    data: Option<bytes::Bytes>,
    endpoint: Option<&str>,
) -> Result<DataRequestProto, String> {
    let header = match body.get("header") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(h)) => h.clone(),
        Some(_) => return Err("'header' must be an object".into()),
    };
    let text = |keys: &[&str]| -> Result<Option<String>, String> {
        for k in keys {
            for source in [body, &header] {
                match source.get(*k) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => return Ok(Some(s.clone())),
                    Some(_) => return Err(format!("'{k}' must be a string")),
                }
            }
        }
        Ok(None)
    };
    // As Python Jina's face: the route's endpoint wins over one the body names.
    let given = text(&["execEndpoint", "exec_endpoint"])?;
    let exec_endpoint = endpoint.map(str::to_string).or(given);
    let target = text(&["targetExecutor", "target_executor"])?;
    let request_id = text(&["requestId", "request_id"])?;
    // Jina's per-request `timeout` (ms), in the header or at the top as the other header keys.
    let timeout = match header.get("timeout").or_else(|| body.get("timeout")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or("'timeout' must be a whole number of milliseconds")?,
        ),
    };
    let parameters = match body.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err("'parameters' must be an object".into()),
    };
    let mut req = DataRequestProto {
        parameters: (!parameters.is_empty()).then(|| json_to_struct(&parameters)),
        data: data.unwrap_or_else(|| DocsWriter::default().finish()),
        ..Default::default()
    };
    let h = header_mut(&mut req);
    h.request_id = request_id.unwrap_or_else(super::new_request_id);
    h.exec_endpoint = exec_endpoint;
    h.target_executor = target;
    h.timeout = timeout;
    h.status = header.get("status").and_then(status_from_json);
    if let Some(Value::Array(routes)) = body.get("routes") {
        req.routes = routes.iter().filter_map(route_from_json).collect();
    }
    Ok(req)
}

/// Writes a response as JSON bytes, as [`to_json`] does, but each document goes from its wire
/// form to JSON on its own. Documents that cannot be decoded become an error status.
pub fn to_json_bytes(req: &DataRequestProto) -> Vec<u8> {
    let mut out = Vec::with_capacity(req.data.len() + 512);
    match write_response(req, None, &mut out) {
        Ok(()) => out,
        Err(e) => {
            out.clear();
            let status = super::error_status("DecodeError", &e, "gateway");
            write_response(req, Some(status), &mut out).expect("no documents to decode");
            out
        }
    }
}

/// Writes the envelope, then `"data"` one document at a time (none when `status` replaces the
/// request's own after a decode error).
fn write_response(
    req: &DataRequestProto,
    status: Option<StatusProto>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let failed = status.is_some();
    write_envelope(req, status, out);
    if !failed {
        let docs = super::each_doc(req).map_err(|e| e.to_string())?;
        for (i, doc) in docs.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_doc(doc.map_err(|e| e.to_string())?, out);
        }
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

/// `{"header":…,"parameters":…,"routes":…,"data":[` — a response up to its first document.
fn write_envelope(req: &DataRequestProto, status: Option<StatusProto>, out: &mut Vec<u8>) {
    let Value::Object(fields) = envelope_json(req, status) else {
        unreachable!("the envelope is an object")
    };
    out.push(b'{');
    for (k, v) in &fields {
        serde_json::to_writer(&mut *out, k).expect("JSON to memory");
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("JSON to memory");
        out.push(b',');
    }
    out.extend_from_slice(b"\"data\":[");
}

fn write_doc(doc: crate::proto::docarray::DocProto, out: &mut Vec<u8>) {
    let json = Document::from_proto(doc).to_json();
    serde_json::to_writer(out, &json).expect("JSON to memory");
}

/// A response larger than this (in bytes of documents) is written as it is sent.
pub const STREAM_ABOVE: usize = 4 << 20;

/// How much JSON one piece of a streamed response holds, at least.
const PIECE: usize = 256 << 10;

/// A response as JSON in pieces, written while it is sent: the whole JSON never exists at
/// once. The documents are checked to decode first, so that a failure is still an error status
/// rather than a body cut short.
pub(crate) fn to_json_pieces(req: DataRequestProto) -> JsonPieces {
    let decodes = super::each_doc(&req).is_ok_and(|mut docs| docs.all(|d| d.is_ok()));
    if !decodes {
        return JsonPieces {
            head: Some(to_json_bytes(&req)),
            docs: None,
            first: true,
        };
    }
    let mut head = Vec::new();
    write_envelope(&req, None, &mut head);
    JsonPieces {
        head: Some(head),
        docs: super::each_doc(&req).ok(),
        first: true,
    }
}

/// The pieces of [`to_json_pieces`].
pub(crate) struct JsonPieces {
    head: Option<Vec<u8>>,
    docs: Option<super::EachDoc>,
    first: bool,
}

impl Iterator for JsonPieces {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        let docs = self.docs.as_mut()?;
        let mut out = Vec::with_capacity(PIECE + PIECE / 4);
        while out.len() < PIECE {
            match docs.next() {
                Some(Ok(doc)) => {
                    if !std::mem::take(&mut self.first) {
                        out.push(b',');
                    }
                    write_doc(doc, &mut out);
                }
                // Checked to decode before the first piece.
                Some(Err(_)) | None => {
                    out.extend_from_slice(b"]}");
                    self.docs = None;
                    break;
                }
            }
        }
        Some(out)
    }
}

/// Writes a response as a JSON value (documents decoded all at once; the gateway's faces use
/// [`to_json_bytes`]). Documents that cannot be decoded become an error status.
pub fn to_json(req: &DataRequestProto) -> Value {
    let (data, decode_error) = match super::docs(req) {
        Ok(d) => (d.to_json(), None),
        Err(e) => (Value::Array(vec![]), Some(e.to_string())),
    };
    let status = decode_error.map(|e| super::error_status("DecodeError", &e, "gateway"));
    let mut v = envelope_json(req, status);
    v["data"] = data;
    v
}

/// Everything of a response but its documents: header (with `status` in place of the
/// request's own when given), parameters and routes.
fn envelope_json(req: &DataRequestProto, status: Option<StatusProto>) -> Value {
    let header = req.header.clone().unwrap_or_default();
    let mut h = Map::new();
    h.insert("requestId".into(), header.request_id.into());
    if let Some(e) = header.exec_endpoint {
        h.insert("execEndpoint".into(), e.into());
    }
    if let Some(t) = header.target_executor.filter(|t| !t.is_empty()) {
        h.insert("targetExecutor".into(), t.into());
    }
    let status = status.or(header.status);
    h.insert("status".into(), status_json(status.as_ref()));
    json!({
        "header": h,
        "parameters": req.parameters.as_ref().map(struct_to_json).unwrap_or_default(),
        "routes": req.routes.iter().map(route_json).collect::<Vec<_>>(),
    })
}

/// A status as JSON: `{"code": "SUCCESS"|"ERROR", "description", "exception"}`.
pub fn status_json(status: Option<&StatusProto>) -> Value {
    let Some(s) = status else {
        return json!({"code": "SUCCESS"});
    };
    let mut v = json!({
        "code": if s.code == 1 { "ERROR" } else { "SUCCESS" },
        "description": s.description,
    });
    if let Some(e) = &s.exception {
        v["exception"] =
            json!({"name": e.name, "args": e.args, "executor": e.executor, "stacks": e.stacks});
    }
    v
}

/// Reads a status written by [`status_json`] (or protobuf's JSON mapping).
pub fn status_from_json(v: &Value) -> Option<StatusProto> {
    let code = match &v["code"] {
        Value::String(s) if s == "ERROR" => 1,
        Value::Number(n) => n.as_i64().unwrap_or(0) as i32,
        _ => 0,
    };
    let exception = v.get("exception").filter(|e| e.is_object()).map(|e| {
        crate::proto::jina::status_proto::ExceptionProto {
            name: e["name"].as_str().unwrap_or_default().into(),
            args: e["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            stacks: vec![],
            executor: e["executor"].as_str().unwrap_or_default().into(),
        }
    });
    Some(StatusProto {
        code,
        description: v["description"].as_str().unwrap_or_default().into(),
        exception,
    })
}

fn route_from_json(v: &Value) -> Option<RouteProto> {
    let time = |k: &str| v.get(k)?.as_str()?.parse::<prost_types::Timestamp>().ok();
    Some(RouteProto {
        executor: v.get("executor")?.as_str()?.into(),
        start_time: time("startTime"),
        end_time: time("endTime"),
        status: v.get("status").and_then(status_from_json),
    })
}

fn route_json(r: &RouteProto) -> Value {
    let mut v = json!({"executor": r.executor});
    if let Some(t) = &r.start_time {
        v["startTime"] = t.to_string().into();
    }
    if let Some(t) = &r.end_time {
        v["endTime"] = t.to_string().into();
    }
    if let Some(s) = &r.status {
        v["status"] = status_json(Some(s));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::OverLimit;

    #[test]
    fn reads_jina2_and_jina3_bodies_and_writes_them_back() {
        let j2 = json!({"data": [{"text": "a"}], "parameters": {"k": 1}, "execEndpoint": "/index", "targetExecutor": "enc.*"});
        let r = from_json(&j2, None).unwrap();
        assert_eq!(super::super::endpoint(&r), "/index");
        let out = to_json(&r);
        assert_eq!(out["data"][0]["text"], "a");
        assert_eq!(out["parameters"]["k"], 1.0);
        assert_eq!(out["header"]["targetExecutor"], "enc.*");
        assert_eq!(out["header"]["status"]["code"], "SUCCESS");

        // A response read back keeps its status and routes.
        let mut failed = r.clone();
        super::super::set_error(&mut failed, super::super::error_status("E", "bad", "ex"));
        failed.routes.push(super::super::start_route("ex"));
        let back = from_json(&to_json(&failed), None).unwrap();
        assert_eq!(back.header.unwrap().status, failed.header.unwrap().status);
        assert_eq!(back.routes[0].executor, "ex");
        assert_eq!(back.routes[0].start_time, failed.routes[0].start_time);

        let j3 = json!({"data": [], "header": {"request_id": "r1"}});
        let r = from_json(&j3, Some("/search")).unwrap();
        assert_eq!(super::super::endpoint(&r), "/search");
        assert_eq!(r.header.unwrap().request_id, "r1");
    }

    #[test]
    fn bytes_in_and_out_match_the_value_forms() {
        let body = json!({"data": [{"id": "a", "text": "x", "tags": {"k": 1}}, {"id": "b"}],
            "parameters": {"p": true}, "execEndpoint": "/index", "header": {"timeout": 250}});
        let from_bytes =
            from_json_bytes(body.to_string().as_bytes(), None, JsonLimits::NONE).unwrap();
        let from_value = from_json(&body, None).unwrap();
        assert_eq!(from_bytes.header.as_ref().unwrap().timeout, Some(250));
        assert_eq!(
            super::super::docs(&from_bytes).unwrap(),
            super::super::docs(&from_value).unwrap()
        );
        let written: Value = serde_json::from_slice(&to_json_bytes(&from_bytes)).unwrap();
        assert_eq!(written, to_json(&from_bytes));
        let pieces: Vec<u8> = to_json_pieces(from_bytes.clone()).flatten().collect();
        assert_eq!(serde_json::from_slice::<Value>(&pieces).unwrap(), written);
        // Jina 2's {"docs": [...]} under data, and no body at all.
        let j2 = from_json_bytes(
            br#"{"data": {"docs": [{"id": "z"}]}}"#,
            Some("/x"),
            JsonLimits::NONE,
        )
        .unwrap();
        assert_eq!(
            super::super::docs(&j2).unwrap().iter().next().unwrap().id,
            "z"
        );
        // One document as `data`, as Python Jina's face takes it; the route's endpoint wins.
        let body = br#"{"data": {"id": "one", "text": "hi"}, "execEndpoint": "/other"}"#;
        for req in [
            from_json_bytes(body, Some("/x"), JsonLimits::NONE).unwrap(),
            from_json(&serde_json::from_slice(body).unwrap(), Some("/x")).unwrap(),
        ] {
            let docs = super::super::docs(&req).unwrap();
            assert_eq!(docs.len(), 1);
            assert_eq!(docs[0].text.as_deref(), Some("hi"));
            assert_eq!(super::super::endpoint(&req), "/x");
        }
        let empty = from_json_bytes(b"  ", Some("/x"), JsonLimits::NONE).unwrap();
        assert_eq!(super::super::endpoint(&empty), "/x");
        assert!(super::super::docs(&empty).unwrap().is_empty());
    }

    #[test]
    fn bytes_errors_name_the_field_or_say_it_is_not_json() {
        let e = from_json_bytes(br#"{"data": [{"text": 1}]}"#, None, JsonLimits::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("data: document 0: field 'text'"), "{e}");
        let e = from_json_bytes(br#"{"data": "nope"}"#, None, JsonLimits::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("documents must be a JSON list"), "{e}");
        let e = from_json_bytes(br#"{"data": [}"#, None, JsonLimits::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("the request body is not valid JSON"), "{e}");
        let e = from_json_bytes(br#"{"parameters": 3}"#, None, JsonLimits::NONE)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "'parameters' must be an object");
    }

    #[test]
    fn documents_stop_being_read_at_the_first_over_a_limit() {
        let limits = JsonLimits {
            max_docs: Some(3),
            max_bytes: usize::MAX,
        };
        let body = br#"{"data": [{}, {"chunks": [{}, {}]}, {}]}"#;
        match from_json_bytes(body, None, limits) {
            Err(JsonError::OverLimit(OverLimit::Docs { found: 4, limit: 3 })) => {}
            other => panic!("{other:?}"),
        }
        let one = br#"{"data": {"docs": [{}, {}, {}, {}]}}"#;
        assert!(matches!(
            from_json_bytes(one, None, limits),
            Err(JsonError::OverLimit(OverLimit::Docs { .. }))
        ));
        let small = JsonLimits {
            max_docs: None,
            max_bytes: 100,
        };
        let body = format!(r#"{{"data": [{{"text": "{}"}}]}}"#, "x".repeat(200));
        assert!(matches!(
            from_json_bytes(body.as_bytes(), None, small),
            Err(JsonError::OverLimit(OverLimit::Bytes { limit: 100 }))
        ));
        assert!(from_json_bytes(br#"{"data": [{}, {}, {}]}"#, None, limits).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            from_json(&json!({"parameters": 3}), None).unwrap_err(),
            "'parameters' must be an object"
        );
        assert!(
            from_json(&json!({"data": [{"text": 1}]}), None)
                .unwrap_err()
                .starts_with("data: document 0")
        );
    }
}
