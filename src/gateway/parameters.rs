//! An endpoint's `parameters` model, as a Python executor declares it (`parameters:
//! MyParams`, a pydantic model) and reports it in its endpoint discovery: the HTTP face checks
//! a request's parameters against it and fills in its defaults before routing, as Python
//! Jina's HTTP face does with the model itself. A refusal is FastAPI's 422 with its `detail`
//! list; the Python Client raises.
//!
//! As Python Jina's face (whose copy of the model, rebuilt from the schema, holds no required
//! keys of its own): no parameters at all where the model requires some is refused, and so
//! is a number or boolean where the value cannot be one, whatever pydantic's coercions. A
//! key left out goes on as its default, else null, so that the executor's own pydantic refuses
//! a required one (an HTTP 500).
//! This module owns no I/O and knows no routes.

use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// One endpoint's parameters model: its properties (with their JSON-schema type and default)
/// and the keys it requires.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ParameterModel {
    properties: Map<String, Value>,
    required: Vec<String>,
}

/// One refusal, as pydantic words it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Refusal {
    /// The key at fault; `None` for the parameters as a whole.
    key: Option<String>,
    msg: &'static str,
    kind: &'static str,
}

impl ParameterModel {
    /// Every endpoint's model, from the discovered schemas (`{endpoint: {parameters: {model:
    /// <JSON schema>}}}`); endpoints without one are left out.
    pub(super) fn of_endpoints(schemas: &Map<String, Value>) -> HashMap<String, ParameterModel> {
        schemas
            .iter()
            .filter_map(|(endpoint, s)| {
                let model = s.pointer("/parameters/model")?.as_object()?;
                let properties = model.get("properties")?.as_object()?.clone();
                let required = model
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(|k| Some(k.as_str()?.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                Some((
                    endpoint.clone(),
                    ParameterModel {
                        properties,
                        required,
                    },
                ))
            })
            .collect()
    }

    /// The parameters to route: `given` with the model's defaults filled in, or why they are
    /// refused. Absent parameters stay absent when the model requires nothing.
    pub(super) fn check(
        &self,
        given: Option<Map<String, Value>>,
    ) -> Result<Option<Map<String, Value>>, Vec<Refusal>> {
        let Some(mut given) = given else {
            return match self.required.is_empty() {
                true => Ok(None),
                false => Err(vec![Refusal {
                    key: None,
                    msg: "field required",
                    kind: "value_error.missing",
                }]),
            };
        };
        let mut refusals = vec![];
        for (key, property) in &self.properties {
            match given.get(key) {
                Some(value) => {
                    if let Some(refusal) = wrong_kind(property, value) {
                        refusals.push(Refusal {
                            key: Some(key.clone()),
                            ..refusal
                        });
                    }
                }
                // As the face's copy of the model writes it: its default, else null.
                None => {
                    let default = property.get("default").cloned().unwrap_or(Value::Null);
                    given.insert(key.clone(), default);
                }
            }
        }
        match refusals.is_empty() {
            true => Ok(Some(given)),
            false => Err(refusals),
        }
    }
}

/// FastAPI's 422 body for `refusals`.
pub(super) fn detail(refusals: &[Refusal]) -> Value {
    let detail: Vec<Value> = refusals
        .iter()
        .map(|r| {
            let mut loc = vec![json!("body"), json!("parameters")];
            loc.extend(r.key.iter().map(|k| json!(k)));
            json!({"loc": loc, "msg": r.msg, "type": r.kind})
        })
        .collect();
    json!({ "detail": detail })
}

/// Whether `value` cannot be what `property` (a JSON-schema property) says, even after
/// pydantic's coercions (a numeric string is a number, 0 and 1 are booleans).
fn wrong_kind(property: &Value, value: &Value) -> Option<Refusal> {
    let numeric = |v: &Value| match v {
        Value::Number(_) => true,
        Value::String(s) => s.trim().parse::<f64>().is_ok(),
        _ => false,
    };
    let refusal = |msg, kind| {
        Some(Refusal {
            key: None,
            msg,
            kind,
        })
    };
    match property.get("type").and_then(Value::as_str)? {
        "integer" if !numeric(value) || value.as_f64().is_some_and(|f| f.fract() != 0.0) => {
            refusal("value is not a valid integer", "type_error.integer")
        }
        "number" if !numeric(value) => refusal("value is not a valid float", "type_error.float"),
        "boolean" if !matches!(value, Value::Bool(_)) && !matches!(value.as_i64(), Some(0 | 1)) => {
            refusal("value could not be parsed to a boolean", "type_error.bool")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ParameterModel {
        let schemas = json!({"/foo": {"parameters": {"model": {
            "title": "Params", "type": "object",
            "properties": {
                "text": {"title": "Text", "type": "string"},
                "top_k": {"title": "Top K", "type": "integer", "default": 3},
                "exact": {"title": "Exact", "type": "boolean", "default": false}
            },
            "required": ["text"]
        }}}, "/bar": {"parameters": {}}});
        let mut models = ParameterModel::of_endpoints(schemas.as_object().unwrap());
        assert_eq!(models.len(), 1);
        models.remove("/foo").unwrap()
    }

    fn params(v: Value) -> Option<Map<String, Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn fills_defaults_and_refuses_what_pydantic_would() {
        let m = model();
        assert_eq!(
            m.check(params(json!({"text": "hi"}))).unwrap(),
            params(json!({"text": "hi", "top_k": 3, "exact": false}))
        );
        assert_eq!(
            m.check(params(json!({"top_k": 4}))).unwrap(),
            params(json!({"text": null, "top_k": 4, "exact": false}))
        );
        // Coercible values pass as given.
        assert!(m.check(params(json!({"text": "hi", "top_k": "5"}))).is_ok());
        let refused = m.check(params(json!({"top_k": "many"}))).unwrap_err();
        assert_eq!(
            detail(&refused),
            json!({"detail": [
                {"loc": ["body", "parameters", "top_k"], "msg": "value is not a valid integer", "type": "type_error.integer"}
            ]})
        );
        assert_eq!(
            detail(&m.check(None).unwrap_err()),
            json!({"detail": [{"loc": ["body", "parameters"], "msg": "field required", "type": "value_error.missing"}]})
        );
    }
}
