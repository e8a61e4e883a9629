//! Override `metas` (reference: "metas configuration"): prints `different_workspace`.

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
        println!("{}", req.metas.workspace.as_deref().unwrap_or("(none)"));
        Ok(None)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = Flow::new().add(
        Exec::new()
            .uses_value("MyExecutor", MyExecutor)
            .uses_metas(json!({"workspace": "different_workspace"})),
    );
    let f = flow.start().await?;
    f.post("/", jina::client::Inputs::Nothing, Default::default())
        .await?;
    Ok(())
}
