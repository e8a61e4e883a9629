//! Documents: the unit of data that flows through executors.
//!
//! This module owns [`Document`], [`DocumentArray`] and [`NdArray`], and their two outside
//! forms: the wire form (`wire`, DocArray v2's `DocProto`) and the JSON form (`json`, what REST
//! and WebSocket clients send). It knows nothing of requests, executors or the network.
//!
//! A Document has the fields of the reference (Jina 2's Document). On the wire a document is
//! a schema-free map, so a peer may send fields we do not model: those are kept in
//! [`Document::extra`] exactly as they came and written back unchanged, so nothing a Python
//! peer sends is lost on its way through us.

mod array;
mod json;
mod ndarray;
pub mod query;
mod traversal;
mod wire;

pub use array::DocumentArray;
pub use json::json_kind;
pub use ndarray::{DType, NdArray, NdArrayError};
pub use query::Query;
pub use traversal::{BadTraversalPath, Step, TraversalPaths};

use crate::proto::docarray::NodeProto;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One document, with the reference's fields. Optional fields are `None` when absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// A uuid4 in hex (32 characters) unless the sender chose one.
    pub id: String,
    pub text: Option<String>,
    pub blob: Option<Bytes>,
    pub tensor: Option<NdArray>,
    pub embedding: Option<NdArray>,
    /// Travels as `url`, the name Python Jina's legacy document uses.
    pub uri: Option<String>,
    pub mime_type: Option<String>,
    /// Free-form metadata. JSON values, as Jina 2's `tags` (a protobuf Struct) were.
    pub tags: Map<String, Value>,
    pub chunks: DocumentArray,
    pub matches: DocumentArray,
    /// Named scores, e.g. `{"cosine": {"value": 0.93}}` as the reference writes them.
    pub scores: Map<String, Value>,
    pub parent_id: Option<String>,
    pub granularity: Option<i32>,
    pub adjacency: Option<i32>,
    pub weight: Option<f64>,
    pub modality: Option<String>,
    /// Fields we do not model, by wire name, kept as they came and sent on unchanged.
    pub extra: BTreeMap<String, NodeProto>,
}

impl Default for Document {
    /// An empty document with a fresh id.
    fn default() -> Self {
        Document::with_id(new_id())
    }
}

impl Document {
    /// An empty document with this id. Readers of the wire and of JSON start from it, not
    /// from `default()`: a fresh id costs a `getrandom` call, wasted when the sender named one.
    pub fn with_id(id: String) -> Document {
        Document {
            id,
            text: None,
            blob: None,
            tensor: None,
            embedding: None,
            uri: None,
            mime_type: None,
            tags: Map::new(),
            chunks: DocumentArray::default(),
            matches: DocumentArray::default(),
            scores: Map::new(),
            parent_id: None,
            granularity: None,
            adjacency: None,
            weight: None,
            modality: None,
            extra: BTreeMap::new(),
        }
    }
}

/// A fresh document id: a uuid4 as 32 hex characters, as Python Jina makes them.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Document {
    /// This document and every one nested in it (chunks and matches, at every depth).
    pub fn count_all(&self) -> usize {
        let nested = |docs: &DocumentArray| docs.iter().map(Document::count_all).sum::<usize>();
        1 + nested(&self.chunks) + nested(&self.matches)
    }

    /// A document with a fresh id and nothing else.
    pub fn new() -> Self {
        Self::default()
    }

    /// A text document with a fresh id.
    pub fn from_text(text: impl Into<String>) -> Self {
        Document {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// The numeric value of a named score, whether written as `{"value": x}` (the reference's
    /// NamedScore) or as a bare number.
    pub fn score(&self, name: &str) -> Option<f64> {
        match self.scores.get(name)? {
            Value::Number(n) => n.as_f64(),
            Value::Object(o) => o.get("value")?.as_f64(),
            _ => None,
        }
    }

    /// Sets a named score as the reference writes it: `{"value": x}`.
    pub fn set_score(&mut self, name: &str, value: f64) {
        let mut named = Map::new();
        named.insert("value".into(), Value::from(value));
        self.scores.insert(name.into(), Value::Object(named));
    }

    /// Leaves out the embedding and tensor of this document, its chunks and its matches.
    pub fn drop_vectors(&mut self) {
        self.embedding = None;
        self.tensor = None;
        for d in self.chunks.iter_mut().chain(self.matches.iter_mut()) {
            d.drop_vectors();
        }
    }

    /// Folds `other` (a later copy of the same document, from another shard or branch of a
    /// Flow) into this one as Python Jina reduces copies: the other's fields win where it has
    /// them, its tags as a whole (as Python Jina keeps them); scores and unknown fields are
    /// united, the other's winning a clash; chunks and matches are reduced by id, a chunk both
    /// have folded the same way, new ones appended.
    pub fn absorb(&mut self, other: Document) {
        reduce_by_id(&mut self.chunks, other.chunks);
        reduce_by_id(&mut self.matches, other.matches);
        overwrite(&mut self.text, other.text);
        overwrite(&mut self.blob, other.blob);
        overwrite(&mut self.tensor, other.tensor);
        overwrite(&mut self.embedding, other.embedding);
        overwrite(&mut self.uri, other.uri);
        overwrite(&mut self.mime_type, other.mime_type);
        overwrite(&mut self.parent_id, other.parent_id);
        overwrite(&mut self.granularity, other.granularity);
        overwrite(&mut self.adjacency, other.adjacency);
        overwrite(&mut self.weight, other.weight);
        overwrite(&mut self.modality, other.modality);
        if !other.tags.is_empty() {
            self.tags = other.tags;
        }
        self.scores.extend(other.scores);
        self.extra.extend(other.extra);
    }
}

fn reduce_by_id(list: &mut DocumentArray, more: DocumentArray) {
    if more.is_empty() {
        return;
    }
    let list = list.as_mut_vec();
    let mut position: std::collections::HashMap<String, usize> = list
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    for doc in more.into_vec() {
        match position.get(&doc.id) {
            Some(&i) => list[i].absorb(doc),
            None => {
                position.insert(doc.id.clone(), list.len());
                list.push(doc);
            }
        }
    }
}

fn overwrite<T>(slot: &mut Option<T>, other: Option<T>) {
    if other.is_some() {
        *slot = other;
    }
}
