//! Override `metas` (reference: "metas configuration"): prints `different_workspace`.

use jina::executor::{BoxError, Call, Executor, HandlerError, Metas, NoArgs, Requests};
use jina::flow::{Exec, Flow};
use serde_json::json;

struct MyExecutor;

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
    fn foo(&self, call: Call<'_>) -> Result<(), HandlerError> {
        println!("{}", call.metas.workspace.as_deref().unwrap_or("(none)"));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = Flow::new().add(
        Exec::new()
            .uses_type::<MyExecutor>()
            .uses_metas(json!({"workspace": "different_workspace"})),
    );
    let f = flow.start().await?;
    f.post("/", jina::client::Inputs::Nothing, Default::default())
        .await?;
    Ok(())
}
