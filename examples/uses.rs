//! What an executor runs, via `uses` (reference: "Define What Executor to Use via uses"):
//! a built-in name, a YAML file, inline YAML, a map, and a Rust type of your own.

use jina::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use jina::flow::{Exec, Flow};
use serde_json::json;

/// The reference's `MyExecutor`, in Rust: one handler bound to every endpoint.
struct MyExecutor {
    bar: i64,
}

#[derive(serde::Deserialize)]
struct Args {
    bar: i64,
}

impl Executor for MyExecutor {
    const NAME: &'static str = "MyExecutor";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        Ok(MyExecutor { bar: args.bar })
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::foo);
    }
}

impl MyExecutor {
    fn foo(&self, call: Call<'_>) -> Result<(), HandlerError> {
        for d in call.docs.iter_mut() {
            d.tags.insert("bar".into(), self.bar.into());
        }
        Ok(())
    }
}

async fn tag_of(flow: Flow, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let f = flow.start().await?;
    let options = jina::client::PostOptions {
        return_results: true,
        ..Default::default()
    };
    let summary = f
        .post("/random_work", jina::Document::new(), options)
        .await?;
    let docs = summary.results[0].docs()?;
    let doc = docs.iter().next().unwrap();
    println!(
        "{what:<14} -> matches: {}, tags: {}",
        doc.matches.len(),
        serde_json::Value::Object(doc.tags.clone())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("jina-uses-example");
    std::fs::create_dir_all(&dir)?;
    let yml = dir.join("myexec.yml");
    std::fs::write(
        &yml,
        "jtype: Visit\nmetas:\n  name: awesomeness\n  description: my first awesome executor\nrequests:\n  /random_work: visit\n",
    )?;

    tag_of(Flow::new().add("Visit"), "built-in name").await?;
    tag_of(
        Flow::new().add(Exec::new().uses(yml.to_str().unwrap())),
        "YAML file",
    )
    .await?;
    tag_of(
        Flow::new().add(
            Exec::new().uses(
                "jtype: Visit\nmetas:\n  name: awesomeness\nrequests:\n  /random_work: visit\n",
            ),
        ),
        "inline YAML",
    )
    .await?;
    tag_of(
        Flow::new().add(Exec::new().uses_map(json!({"jtype": "Sleep", "with": {"ms": 1}}))),
        "map",
    )
    .await?;
    tag_of(
        Flow::new().add(
            Exec::new()
                .uses_type::<MyExecutor>()
                .uses_with(json!({"bar": 123})),
        ),
        "Rust type",
    )
    .await?;
    Ok(())
}
