//! Send parameters (reference: "Send Parameters"): the executor prints `world`, for a request
//! with a document and for a parameters-only request.

use jina::client::{Inputs, PostOptions};
use jina::executor::{BoxError, Call, Executor, HandlerError, Metas, NoArgs, Requests};
use jina::flow::{Exec, Flow};
use serde_json::json;

struct MyExecutor;

/// The parameters `foo` reads, as a serde type (other keys are ignored).
#[derive(serde::Deserialize)]
struct Greeting {
    hello: String,
}

impl Executor for MyExecutor {
    const NAME: &'static str = "MyExecutor";
    type Args = NoArgs;

    fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
        Ok(MyExecutor)
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::foo);
    }
}

impl MyExecutor {
    fn foo(&self, call: Call<'_, Greeting>) -> Result<(), HandlerError> {
        println!("{}", call.parameters.hello);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new()
        .add(Exec::new().uses_type::<MyExecutor>())
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
