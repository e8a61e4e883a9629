//! The JSON Schema of our Document, as endpoint discovery reports it per endpoint. A Python
//! gateway (DocArray v2) builds its document class for our executor from this schema, so it
//! names every field we model, in pydantic's style (`definitions` + `$ref`).

use serde_json::{Value, json};

/// The name under which the schema is reported.
pub const DOCUMENT_MODEL: &str = "JinaRsDocument";

/// Our Document's JSON Schema.
pub fn document_schema() -> Value {
    let array = json!({"type": "array", "items": {"type": "number"}, "tensor/array shape": "not specified"});
    let docs =
        json!({"type": "array", "items": {"$ref": format!("#/definitions/{DOCUMENT_MODEL}")}});
    let string = json!({"type": "string"});
    json!({
        "$ref": format!("#/definitions/{DOCUMENT_MODEL}"),
        "definitions": {
            DOCUMENT_MODEL: {
                "title": DOCUMENT_MODEL,
                "type": "object",
                "properties": {
                    "id": {"title": "Id", "type": "string"},
                    "text": {"title": "Text", "type": "string"},
                    "blob": {"title": "Blob", "type": "string", "format": "binary"},
                    "tensor": titled("Tensor", &array),
                    "embedding": titled("Embedding", &array),
                    "url": titled("Url", &string),
                    "mime_type": titled("Mime Type", &string),
                    "tags": {"title": "Tags", "type": "object", "default": {}},
                    "scores": {"title": "Scores", "type": "object"},
                    "chunks": titled("Chunks", &docs),
                    "matches": titled("Matches", &docs),
                    "parent_id": titled("Parent Id", &string),
                    "granularity": {"title": "Granularity", "type": "integer"},
                    "adjacency": {"title": "Adjacency", "type": "integer"},
                    "weight": {"title": "Weight", "type": "number"},
                    "modality": titled("Modality", &string),
                }
            }
        }
    })
}

fn titled(title: &str, schema: &Value) -> Value {
    let mut s = schema.clone();
    s["title"] = Value::from(title);
    s
}

/// The schema entry of one endpoint: documents in, documents out, free parameters.
pub fn endpoint_schema() -> Value {
    let model = json!({"name": DOCUMENT_MODEL, "model": document_schema()});
    json!({
        "input": model,
        "output": model,
        "parameters": {"name": null, "model": null},
        "is_generator": false,
        "is_singleton_doc": false,
    })
}
