//! Override `requests` (reference: "requests configuration"): `/index` is bound to `bar`, every
//! other endpoint still goes to `foo`. Prints `bar` then `foo`.

use jina::client::Inputs;
use jina::executor::{BoxError, Call, Executor, HandlerError, Metas, NoArgs, Requests};
use jina::flow::{Exec, Flow};

struct MyExecutor;

impl Executor for MyExecutor {
    const NAME: &'static str = "MyExecutor";
    type Args = NoArgs;

    fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
        Ok(MyExecutor)
    }

    fn requests(r: &mut Requests<Self>) {
        // `foo` is the bare `@requests`; `bar` is bound to nothing by the code.
        r.default(Self::foo).unbound(Self::bar);
    }
}

impl MyExecutor {
    fn foo(&self, _: Call<'_>) -> Result<(), HandlerError> {
        println!("foo");
        Ok(())
    }

    fn bar(&self, _: Call<'_>) -> Result<(), HandlerError> {
        println!("bar");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = Flow::new().add(
        Exec::new()
            .uses_type::<MyExecutor>()
            .uses_requests([("/index", "bar")]),
    );
    let f = flow.start().await?;
    f.post("/index", Inputs::Nothing, Default::default())
        .await?;
    f.post("/dummy", Inputs::Nothing, Default::default())
        .await?;
    Ok(())
}
