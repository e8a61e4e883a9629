//! Override `requests` (reference: "requests configuration"): `/index` is bound to `bar`, every
//! other endpoint still goes to `foo`. Prints `bar` then `foo`.

use jina::client::Inputs;
use jina::document::DocumentArray;
use jina::executor::{Executor, HandlerError, HandlerSpec, Request};
use jina::flow::{Exec, Flow};

struct MyExecutor;

impl Executor for MyExecutor {
    fn handlers(&self) -> Vec<HandlerSpec> {
        // `foo` is the bare `@requests`; `bar` is bound to nothing by the code.
        vec![HandlerSpec::default("foo"), HandlerSpec::unbound("bar")]
    }

    fn call(&self, handler: &str, _: Request<'_>) -> Result<Option<DocumentArray>, HandlerError> {
        println!("{handler}");
        Ok(None)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = Flow::new().add(
        Exec::new()
            .uses_value("MyExecutor", MyExecutor)
            .uses_requests([("/index", "bar")]),
    );
    let f = flow.start().await?;
    f.post("/index", Inputs::Nothing, Default::default())
        .await?;
    f.post("/dummy", Inputs::Nothing, Default::default())
        .await?;
    Ok(())
}
