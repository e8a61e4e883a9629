//! The JSON form of a document: what REST and WebSocket clients send and receive, and one
//! line of NDJSON. Field names are the wire names (`url`, not `uri`; `uri` is accepted on
//! input), ndarrays are nested lists, `blob` is base64. Unknown keys are kept in `extra`.

use super::{Document, DocumentArray, NdArray, wire};
use base64::Engine;
use serde_json::{Map, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Document {
    /// The JSON object of this document; absent fields are left out.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        let mut text = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        };
        text("text", &self.text);
        text("url", &self.uri);
        text("mime_type", &self.mime_type);
        text("parent_id", &self.parent_id);
        text("modality", &self.modality);
        if let Some(b) = &self.blob {
            m.insert("blob".into(), Value::String(B64.encode(b)));
        }
        for (k, a) in [("tensor", &self.tensor), ("embedding", &self.embedding)] {
            if let Some(v) = a.as_ref().and_then(|a| a.to_json().ok()) {
                m.insert(k.into(), v);
            }
        }
        if let Some(v) = self.granularity {
            m.insert("granularity".into(), v.into());
        }
        if let Some(v) = self.adjacency {
            m.insert("adjacency".into(), v.into());
        }
        if let Some(v) = self.weight {
            m.insert("weight".into(), v.into());
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), Value::Object(self.tags.clone()));
        }
        if !self.scores.is_empty() {
            m.insert("scores".into(), Value::Object(self.scores.clone()));
        }
        if !self.chunks.is_empty() {
            m.insert("chunks".into(), self.chunks.to_json());
        }
        if !self.matches.is_empty() {
            m.insert("matches".into(), self.matches.to_json());
        }
        for (k, node) in &self.extra {
            if let Some(v) = wire::node_to_json(node) {
                m.entry(k.clone()).or_insert(v);
            }
        }
        Value::Object(m)
    }

    /// A document from its JSON object. A field of the wrong kind is an error naming it.
    pub fn from_json(value: &Value) -> Result<Document, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("a document must be a JSON object, not {}", json_kind(value)))?;
        // A fresh id only when none is given (an explicit "" stays "").
        let id = match obj.get("id") {
            Some(v) if !v.is_null() => String::new(),
            _ => super::new_id(),
        };
        let mut doc = Document::with_id(id);
        for (k, v) in obj {
            if v.is_null() {
                continue;
            }
            let field = |msg: &str| format!("field '{k}': {msg}, found {}", json_kind(v));
            let text = || {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| field("expected a string"))
            };
            let int = || {
                v.as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| field("expected an integer"))
            };
            match k.as_str() {
                "id" => {
                    doc.id = match v {
                        Value::Number(n) => n.to_string(),
                        _ => text()?,
                    }
                }
                "text" => doc.text = Some(text()?),
                "url" | "uri" => doc.uri = Some(text()?),
                "mime_type" => doc.mime_type = Some(text()?),
                "parent_id" => doc.parent_id = Some(text()?),
                "modality" => doc.modality = Some(text()?),
                "blob" => {
                    let s = text()?;
                    doc.blob = Some(
                        B64.decode(s.as_bytes())
                            .map_err(|_| field("expected base64"))?
                            .into(),
                    )
                }
                "tensor" | "embedding" => {
                    let a = NdArray::from_json(v).map_err(|e| format!("field '{k}': {e}"))?;
                    if k == "tensor" {
                        doc.tensor = Some(a)
                    } else {
                        doc.embedding = Some(a)
                    }
                }
                "granularity" => doc.granularity = Some(int()?),
                "adjacency" => doc.adjacency = Some(int()?),
                "weight" => {
                    doc.weight = Some(v.as_f64().ok_or_else(|| field("expected a number"))?)
                }
                "tags" | "scores" => {
                    let m = v
                        .as_object()
                        .ok_or_else(|| field("expected an object"))?
                        .clone();
                    if k == "tags" {
                        doc.tags = m
                    } else {
                        doc.scores = m
                    }
                }
                "chunks" | "matches" => {
                    let a = DocumentArray::from_json(v).map_err(|e| format!("in '{k}': {e}"))?;
                    if k == "chunks" {
                        doc.chunks = a
                    } else {
                        doc.matches = a
                    }
                }
                _ => {
                    doc.extra.insert(k.clone(), wire::json_to_node(v));
                }
            }
        }
        Ok(doc)
    }
}

impl DocumentArray {
    /// The document as Jina's JSON shows it (what the REST face answers).
    pub fn to_json(&self) -> Value {
        Value::Array(self.iter().map(Document::to_json).collect())
    }

    /// Documents from a JSON list; an error names the position of the bad document.
    pub fn from_json(value: &Value) -> Result<DocumentArray, String> {
        let items = value
            .as_array()
            .ok_or_else(|| format!("documents must be a JSON list, not {}", json_kind(value)))?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| Document::from_json(v).map_err(|e| format!("document {i}: {e}")))
            .collect()
    }
}

/// What kind of JSON value `v` is, for messages (`a string`, `a list`, ...).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_keeps_fields_and_unknown_keys() {
        let v = json!({
            "id": "d1", "text": "hi", "uri": "u", "blob": "AAE=", "embedding": [0.5, 1.5],
            "tags": {"k": [1, "x"]}, "matches": [{"id": "m", "scores": {"cosine": {"value": 0.5}}}],
            "custom_field": {"nested": 3}
        });
        let d = Document::from_json(&v).unwrap();
        assert_eq!(d.uri.as_deref(), Some("u"));
        assert_eq!(d.blob.as_deref(), Some(&b"\x00\x01"[..]));
        assert_eq!(d.matches[0].score("cosine"), Some(0.5));
        let back = d.to_json();
        assert_eq!(back["custom_field"], json!({"nested": 3}));
        assert_eq!(back["url"], json!("u"));
        assert_eq!(Document::from_json(&back).unwrap(), d);
    }

    #[test]
    fn wrong_kinds_name_the_field() {
        let e = Document::from_json(&json!({"text": 5})).unwrap_err();
        assert!(e.contains("'text'"), "{e}");
        let e = DocumentArray::from_json(&json!([{}, {"tags": 1}])).unwrap_err();
        assert!(e.starts_with("document 1"), "{e}");
    }
}
