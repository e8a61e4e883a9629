//! Override `with` (reference: "with configuration"): the constructor gets `param1: 10` and
//! `param3: 30` and keeps its default `param2: 2`.

use jina::document::DocumentArray;
use jina::executor::{Executor, HandlerError, HandlerSpec, Request};
use jina::flow::{Exec, Flow};
use serde_json::json;

struct MyExecutor {
    param1: i64,
    param2: i64,
    param3: i64,
}

impl Executor for MyExecutor {
    fn handlers(&self) -> Vec<HandlerSpec> {
        vec![HandlerSpec::default("foo")]
    }

    fn call(&self, _: &str, _: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        println!("param1: {}", self.param1);
        println!("param2: {}", self.param2);
        println!("param3: {}", self.param3);
        Ok(None)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The constructor plays `__init__(self, param1=1, param2=2, param3=3)`.
    let exec = Exec::new()
        .uses_type("MyExecutor", |with, _metas| {
            let arg =
                |k: &str, default: i64| with.get(k).and_then(|v| v.as_i64()).unwrap_or(default);
            Ok(MyExecutor {
                param1: arg("param1", 1),
                param2: arg("param2", 2),
                param3: arg("param3", 3),
            })
        })
        .uses_with(json!({"param1": 10, "param3": 30}));
    let f = Flow::new().add(exec).start().await?;
    f.post("/", jina::client::Inputs::Nothing, Default::default())
        .await?;
    Ok(())
}
