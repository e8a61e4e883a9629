//! The wire form: [`Document`] to and from DocArray v2's `DocProto`.
//!
//! Each field travels under the name Python Jina's legacy document uses where it has one
//! (`uri` as `url`), with the node kind and `type` annotation Python writes. A field we do not
//! model, or a known field whose node kind we do not expect, is kept in `extra` untouched. An
//! empty node is a null and reads as absent; empty fields are not written.

use super::{Document, DocumentArray, NdArray};
use crate::proto::docarray::{
    DenseNdArrayProto, DictOfAnyProto, DocListProto, DocProto, ListOfAnyProto, NdArrayProto,
    NodeProto,
    node_proto::{Content, DocarrayType},
};
use serde_json::{Map, Value};

impl Document {
    /// Reads a document from the wire. Never fails: what we cannot read is kept in `extra`.
    pub fn from_proto(proto: DocProto) -> Document {
        let mut doc = Document::with_id(String::new());
        for (name, mut node) in proto.data {
            // Taken, not cloned (a 100 KB text is moved into its field); a field we do not
            // model gets its content back below and is kept as it came.
            let Some(content) = node.content.take() else {
                continue; // a null: the field is absent
            };
            let unread = match (name.as_str(), content) {
                ("id", Content::Text(s)) => set(&mut doc.id, s),
                ("text", Content::Text(s)) => set_some(&mut doc.text, s),
                ("url", Content::Text(s)) => set_some(&mut doc.uri, s),
                ("mime_type", Content::Text(s)) => set_some(&mut doc.mime_type, s),
                ("parent_id", Content::Text(s)) => set_some(&mut doc.parent_id, s),
                ("modality", Content::Text(s)) => set_some(&mut doc.modality, s),
                ("blob", Content::Blob(b)) => set_some(&mut doc.blob, b),
                ("granularity", Content::Integer(i)) => set_some(&mut doc.granularity, i),
                ("adjacency", Content::Integer(i)) => set_some(&mut doc.adjacency, i),
                ("weight", Content::Float(f)) => set_some(&mut doc.weight, f),
                ("weight", Content::Integer(i)) => set_some(&mut doc.weight, i as f64),
                ("tensor", Content::Ndarray(a)) => set_some(&mut doc.tensor, ndarray_from_proto(a)),
                ("embedding", Content::Ndarray(a)) => {
                    set_some(&mut doc.embedding, ndarray_from_proto(a))
                }
                ("chunks", Content::DocArray(l)) => {
                    set(&mut doc.chunks, DocumentArray::from_proto(l))
                }
                ("matches", Content::DocArray(l)) => {
                    set(&mut doc.matches, DocumentArray::from_proto(l))
                }
                ("tags", Content::Dict(d)) => match dict_to_json(&d) {
                    Some(m) => set(&mut doc.tags, m),
                    None => Some(Content::Dict(d)),
                },
                ("scores", Content::Dict(d)) => match dict_to_json(&d) {
                    Some(m) => set(&mut doc.scores, m),
                    None => Some(Content::Dict(d)),
                },
                (_, content) => Some(content),
            };
            if let Some(content) = unread {
                node.content = Some(content);
                doc.extra.insert(name, node);
            }
        }
        if doc.id.is_empty() {
            doc.id = super::new_id();
        }
        doc
    }

    /// Writes a document for the wire.
    pub fn to_proto(&self) -> DocProto {
        self.clone().into_proto()
    }

    /// Writes a document for the wire, moving its fields: a 100 KB text is not copied.
    pub fn into_proto(self) -> DocProto {
        let mut data = std::collections::HashMap::with_capacity(self.extra.len() + 8);
        data.extend(self.extra);
        let mut put = |name: &str, content: Content, ty: Option<&str>| {
            data.insert(
                name.to_string(),
                NodeProto {
                    content: Some(content),
                    docarray_type: ty.map(|t| DocarrayType::Type(t.to_string())),
                },
            );
        };
        put("id", Content::Text(self.id), Some("id"));
        if let Some(v) = self.text {
            put("text", Content::Text(v), None);
        }
        if let Some(v) = self.uri {
            put("url", Content::Text(v), None);
        }
        if let Some(v) = self.mime_type {
            put("mime_type", Content::Text(v), None);
        }
        if let Some(v) = self.parent_id {
            put("parent_id", Content::Text(v), None);
        }
        if let Some(v) = self.modality {
            put("modality", Content::Text(v), None);
        }
        if let Some(v) = self.blob {
            put("blob", Content::Blob(v), None);
        }
        if let Some(v) = self.granularity {
            put("granularity", Content::Integer(v), None);
        }
        if let Some(v) = self.adjacency {
            put("adjacency", Content::Integer(v), None);
        }
        if let Some(v) = self.weight {
            put("weight", Content::Float(v), None);
        }
        if let Some(v) = self.tensor {
            put(
                "tensor",
                Content::Ndarray(ndarray_to_proto(v)),
                Some("ndarray"),
            );
        }
        if let Some(v) = self.embedding {
            put(
                "embedding",
                Content::Ndarray(ndarray_to_proto(v)),
                Some("ndarray_embedding"),
            );
        }
        if !self.chunks.is_empty() {
            put("chunks", Content::DocArray(self.chunks.into_proto()), None);
        }
        if !self.matches.is_empty() {
            put(
                "matches",
                Content::DocArray(self.matches.into_proto()),
                None,
            );
        }
        if !self.tags.is_empty() {
            put("tags", Content::Dict(json_to_dict(&self.tags)), None);
        }
        if !self.scores.is_empty() {
            put("scores", Content::Dict(json_to_dict(&self.scores)), None);
        }
        DocProto { data }
    }
}

impl DocumentArray {
    /// The documents of their wire form (DocArray v2 `DocListProto`).
    pub fn from_proto(proto: DocListProto) -> DocumentArray {
        proto.docs.into_iter().map(Document::from_proto).collect()
    }

    /// Their wire form, copied (see [`DocumentArray::into_proto`], which moves).
    pub fn to_proto(&self) -> DocListProto {
        DocListProto {
            docs: self.iter().map(Document::to_proto).collect(),
        }
    }

    /// Their wire form, each document moved into it rather than copied.
    pub fn into_proto(self) -> DocListProto {
        DocListProto {
            docs: self.into_iter().map(Document::into_proto).collect(),
        }
    }
}

/// Stores a value; returns `None`: no content is left unread.
fn set<T>(slot: &mut T, value: T) -> Option<Content> {
    *slot = value;
    None
}

fn set_some<T>(slot: &mut Option<T>, value: T) -> Option<Content> {
    *slot = Some(value);
    None
}

fn ndarray_from_proto(a: NdArrayProto) -> NdArray {
    let dense = a.dense.unwrap_or_default();
    NdArray {
        buffer: dense.buffer,
        shape: dense.shape,
        dtype: dense.dtype,
        parameters: a.parameters,
    }
}

fn ndarray_to_proto(a: NdArray) -> NdArrayProto {
    NdArrayProto {
        dense: Some(DenseNdArrayProto {
            buffer: a.buffer,
            shape: a.shape,
            dtype: a.dtype,
        }),
        parameters: a.parameters,
    }
}

/// A dict node as JSON, or None when it holds something JSON cannot say (bytes, arrays,
/// documents): then the caller keeps the raw node instead.
fn dict_to_json(d: &DictOfAnyProto) -> Option<Map<String, Value>> {
    d.data
        .iter()
        .map(|(k, v)| Some((k.clone(), node_to_json(v)?)))
        .collect()
}

pub(super) fn node_to_json(node: &NodeProto) -> Option<Value> {
    Some(match &node.content {
        None => Value::Null,
        Some(Content::Text(s)) => Value::String(s.clone()),
        Some(Content::Integer(i)) => Value::from(*i),
        Some(Content::Float(f)) => serde_json::Number::from_f64(*f).map(Value::Number)?,
        Some(Content::Boolean(b)) => Value::Bool(*b),
        Some(Content::List(l) | Content::Tuple(l) | Content::Set(l)) => {
            Value::Array(l.data.iter().map(node_to_json).collect::<Option<_>>()?)
        }
        Some(Content::Dict(d)) => Value::Object(dict_to_json(d)?),
        // A custom schema's nested document, list of documents or array, as its own JSON.
        Some(Content::Doc(d)) => Document::from_proto(d.clone()).to_json(),
        Some(Content::DocArray(l)) => DocumentArray::from_proto(l.clone()).to_json(),
        Some(Content::Ndarray(a)) => ndarray_from_proto(a.clone()).to_json().ok()?,
        Some(Content::Blob(_)) => return None,
    })
}

fn json_to_dict(m: &Map<String, Value>) -> DictOfAnyProto {
    DictOfAnyProto {
        data: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_node(v)))
            .collect(),
    }
}

pub(super) fn json_to_node(v: &Value) -> NodeProto {
    let content = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Content::Boolean(*b)),
        Value::Number(n) => Some(match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Content::Integer(i),
            None => Content::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(Content::Text(s.clone())),
        Value::Array(items) => Some(Content::List(ListOfAnyProto {
            data: items.iter().map(json_to_node).collect(),
        })),
        Value::Object(m) => Some(Content::Dict(json_to_dict(m))),
    };
    NodeProto {
        content,
        docarray_type: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_document() -> Document {
        let mut d = Document::from_text("hello");
        d.blob = Some(bytes::Bytes::from_static(b"\x00\x01"));
        d.tensor = Some(NdArray::from_i64(&[1, 2, 3, 4]).reshaped(vec![2, 2]));
        d.embedding = Some(NdArray::from_f32(&[0.5, 0.25]));
        d.uri = Some("file://a.txt".into());
        d.mime_type = Some("text/plain".into());
        d.tags = json!({"a": 1, "b": "x", "c": [1, 2.5], "d": {"e": true}, "f": null})
            .as_object()
            .unwrap()
            .clone();
        d.chunks.push(Document::from_text("chunk"));
        let mut m = Document::from_text("match");
        m.set_score("cosine", 0.75);
        d.matches.push(m);
        d.parent_id = Some("p".into());
        d.granularity = Some(1);
        d.adjacency = Some(2);
        d.weight = Some(0.5);
        d.modality = Some("text".into());
        d.extra.insert(
            "custom".into(),
            NodeProto {
                content: Some(Content::Blob(bytes::Bytes::from_static(b"raw"))),
                docarray_type: Some(DocarrayType::Type("bytes".into())),
            },
        );
        d
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let d = full_document();
        assert_eq!(Document::from_proto(d.to_proto()), d);
    }

    #[test]
    fn wire_names_and_types_follow_python() {
        let p = full_document().to_proto();
        assert_eq!(
            p.data["id"].docarray_type,
            Some(DocarrayType::Type("id".into()))
        );
        assert!(p.data.contains_key("url"));
        assert_eq!(
            p.data["embedding"].docarray_type,
            Some(DocarrayType::Type("ndarray_embedding".into()))
        );
    }

    #[test]
    fn empty_nodes_read_as_absent_and_odd_kinds_are_kept() {
        let mut data = std::collections::HashMap::new();
        data.insert(
            "id".to_string(),
            NodeProto {
                content: Some(Content::Text("x".into())),
                docarray_type: None,
            },
        );
        data.insert("embedding".to_string(), NodeProto::default());
        data.insert("chunks".to_string(), NodeProto::default());
        data.insert(
            "text".to_string(),
            NodeProto {
                content: Some(Content::Integer(5)),
                docarray_type: None,
            },
        );
        let d = Document::from_proto(DocProto { data });
        assert_eq!(d.id, "x");
        assert!(d.embedding.is_none() && d.chunks.is_empty() && d.text.is_none());
        assert!(d.extra.contains_key("text"));
        assert_eq!(d.to_proto().data["text"].content, Some(Content::Integer(5)));
    }

    #[test]
    fn a_document_without_id_gets_one() {
        let d = Document::from_proto(DocProto::default());
        assert_eq!(d.id.len(), 32);
    }
}
