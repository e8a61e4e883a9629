//! The JSON form of a data request, as REST and WebSocket clients send and receive it.
//!
//! In: `{"data": [doc, ...], "parameters": {...}, "execEndpoint": "/index",
//! "targetExecutor": "regex", "requestId": "..."}` (Jina 2's `/post` body), or the same with a
//! `"header": {"request_id", "exec_endpoint", "target_executor"}` (Jina 3's form; camelCase
//! keys are read too). Out: `{"header": {"requestId", "execEndpoint", "targetExecutor",
//! "status"}, "parameters", "routes", "data"}`, field names as protobuf's JSON mapping writes them.

use super::{header_mut, json_to_struct, set_docs, struct_to_json};
use crate::document::DocumentArray;
use crate::proto::jina::{DataRequestProto, RouteProto, StatusProto};
use serde_json::{Map, Value, json};

/// Reads a request body. `endpoint` is used when the body names none (POST /<endpoint>).
/// Errors name the field at fault.
pub fn from_json(body: &Value, endpoint: Option<&str>) -> Result<DataRequestProto, String> {
    let body = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
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
    let exec_endpoint = text(&["execEndpoint", "exec_endpoint"])?.or(endpoint.map(str::to_string));
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
    let docs = match body.get("data") {
        None | Some(Value::Null) => DocumentArray::new(),
        // Jina 2 also accepted {"docs": [...]} under data.
        Some(Value::Object(o)) if o.contains_key("docs") => {
            DocumentArray::from_json(&o["docs"]).map_err(|e| format!("data.docs: {e}"))?
        }
        Some(v) => DocumentArray::from_json(v).map_err(|e| format!("data: {e}"))?,
    };
    let mut req = DataRequestProto {
        parameters: (!parameters.is_empty()).then(|| json_to_struct(&parameters)),
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
    set_docs(&mut req, &docs);
    Ok(req)
}

/// Writes a response. Documents that cannot be decoded become an error status.
pub fn to_json(req: &DataRequestProto) -> Value {
    let (data, decode_error) = match super::docs(req) {
        Ok(d) => (d.to_json(), None),
        Err(e) => (Value::Array(vec![]), Some(e.to_string())),
    };
    let header = req.header.clone().unwrap_or_default();
    let mut h = Map::new();
    h.insert("requestId".into(), header.request_id.into());
    if let Some(e) = header.exec_endpoint {
        h.insert("execEndpoint".into(), e.into());
    }
    if let Some(t) = header.target_executor.filter(|t| !t.is_empty()) {
        h.insert("targetExecutor".into(), t.into());
    }
    let status = match decode_error {
        Some(e) => Some(super::error_status("DecodeError", &e, "gateway")),
        None => header.status,
    };
    h.insert("status".into(), status_json(status.as_ref()));
    json!({
        "header": h,
        "parameters": req.parameters.as_ref().map(struct_to_json).unwrap_or_default(),
        "routes": req.routes.iter().map(route_json).collect::<Vec<_>>(),
        "data": data,
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
fn status_from_json(v: &Value) -> Option<StatusProto> {
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
