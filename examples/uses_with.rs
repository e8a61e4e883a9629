//! Override `with` (reference: "with configuration"): the constructor gets `param1: 10` and
//! `param3: 30` and keeps its default `param2: 2`.

use jina::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use jina::flow::{Exec, Flow};
use serde_json::json;

/// The reference's `__init__(self, param1=1, param2=2, param3=3)`.
#[derive(serde::Deserialize)]
struct Params {
    #[serde(default = "one")]
    param1: i64,
    #[serde(default = "two")]
    param2: i64,
    #[serde(default = "three")]
    param3: i64,
}

fn one() -> i64 {
    1
}
fn two() -> i64 {
    2
}
fn three() -> i64 {
    3
}

struct MyExecutor {
    params: Params,
}

impl Executor for MyExecutor {
    const NAME: &'static str = "MyExecutor";
    type Args = Params;

    fn new(params: Params, _: &Metas) -> Result<Self, BoxError> {
        Ok(MyExecutor { params })
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::foo);
    }
}

impl MyExecutor {
    fn foo(&self, _: Call<'_>) -> Result<(), HandlerError> {
        println!("param1: {}", self.params.param1);
        println!("param2: {}", self.params.param2);
        println!("param3: {}", self.params.param3);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exec = Exec::new()
        .uses_type::<MyExecutor>()
        .uses_with(json!({"param1": 10, "param3": 30}));
    let f = Flow::new().add(exec).start().await?;
    f.post("/", jina::client::Inputs::Nothing, Default::default())
        .await?;
    Ok(())
}
