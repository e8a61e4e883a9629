//! The JSON Schema of our Document, as endpoint discovery reports it per endpoint. A Python
//! gateway (DocArray v2) builds its document class for our executor from this schema, so it
//! names every field we model, in pydantic's style (`definitions` + `$ref`).

use serde_json::{Value, json};

/// The name under which the schema is reported.
pub(super) const DOCUMENT_MODEL: &str = "JinaRsDocument";

/// How many levels of chunks and matches the schema describes below the document itself.
const NESTED_LEVELS: usize = 3;

/// Our Document's JSON Schema, as pydantic writes a model's: the model's own `properties` at
/// the top (a Python gateway builds its class from them, and drops what they do not name),
/// other models under `definitions`. DocArray cannot build a model that refers to itself, so
/// chunks and matches are unrolled: the document's are `JinaRsDocument1`, theirs
/// `JinaRsDocument2`, down to [`NESTED_LEVELS`], whose own have no nested documents.
pub(super) fn document_schema() -> Value {
    let mut schema = level_schema(0);
    let definitions: serde_json::Map<String, Value> = (1..=NESTED_LEVELS)
        .map(|level| (level_name(level), level_schema(level)))
        .collect();
    schema["definitions"] = Value::Object(definitions);
    schema
}

/// The name of the model at `level` (0: the document itself).
fn level_name(level: usize) -> String {
    match level {
        0 => DOCUMENT_MODEL.to_string(),
        n => format!("{DOCUMENT_MODEL}{n}"),
    }
}

/// The model at `level`: our fields, with chunks and matches of the next level.
fn level_schema(level: usize) -> Value {
    let array = json!({"type": "array", "items": {"type": "number"}, "tensor/array shape": "not specified"});
    let string = json!({"type": "string"});
    let mut properties = json!({
        "id": {"title": "Id", "type": "string"},
        "text": {"title": "Text", "type": "string"},
        "blob": {"title": "Blob", "type": "string", "format": "binary"},
        "tensor": titled("Tensor", &array),
        "embedding": titled("Embedding", &array),
        "url": titled("Url", &string),
        "mime_type": titled("Mime Type", &string),
        "tags": {"title": "Tags", "type": "object", "default": {}},
        "scores": {"title": "Scores", "type": "object"},
        "parent_id": titled("Parent Id", &string),
        "granularity": {"title": "Granularity", "type": "integer"},
        "adjacency": {"title": "Adjacency", "type": "integer"},
        "weight": {"title": "Weight", "type": "number"},
        "modality": titled("Modality", &string),
    });
    if level < NESTED_LEVELS {
        let reference = format!("#/definitions/{}", level_name(level + 1));
        let docs = json!({"type": "array", "items": {"$ref": reference}});
        properties["chunks"] = titled("Chunks", &docs);
        properties["matches"] = titled("Matches", &docs);
    }
    json!({"title": level_name(level), "type": "object", "properties": properties})
}

fn titled(title: &str, schema: &Value) -> Value {
    let mut s = schema.clone();
    s["title"] = Value::from(title);
    s
}

/// The schema entry of one endpoint: documents in, documents out, free parameters; a
/// generator endpoint (a streaming handler) takes one document and yields documents.
pub(super) fn endpoint_schema(is_generator: bool) -> Value {
    let model = json!({"name": DOCUMENT_MODEL, "model": document_schema()});
    json!({
        "input": model,
        "output": model,
        "parameters": {"name": null, "model": null},
        "is_generator": is_generator,
        "is_singleton_doc": is_generator,
    })
}
