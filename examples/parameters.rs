//! Send parameters (reference: "Send Parameters"): the executor prints `world`, for a request
//! with a document and for a parameters-only request.

use jina::client::{Inputs, PostOptions};
use jina::document::DocumentArray;
use jina::executor::{Executor, HandlerError, HandlerSpec, Request};
use jina::flow::{Exec, Flow};
use serde_json::json;

struct MyExecutor;

impl Executor for MyExecutor {
    fn handlers(&self) -> Vec<HandlerSpec> {
        vec![HandlerSpec::default("foo")]
    }

    fn call(&self, _: &str, req: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        println!("{}", req.parameters["hello"].as_str().unwrap_or("?"));
        Ok(None)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new()
        .add(Exec::new().uses_value("MyExecutor", MyExecutor))
        .start()
        .await?;
    let with_hello = || PostOptions {
        parameters: json!({"hello": "world"}).as_object().unwrap().clone(),
        ..Default::default()
    };
    f.post("/", jina::Document::new(), with_hello()).await?;
    f.post("/", Inputs::Nothing, with_hello()).await?;
    Ok(())
}
