//! Chain `.add()` (reference: "Chain .add()"): `Flow().add().add().add().add()`.
//! Each executor here is the built-in `Visit`, which leaves a mark on every document, so the
//! answer shows the order the chain ran in.

use jina::client::PostOptions;
use jina::flow::Flow;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new()
        .add("Visit")
        .add("Visit")
        .add("Visit")
        .add("Visit")
        .start()
        .await?;
    let summary = f
        .post(
            "/",
            jina::Document::from_text("hello"),
            PostOptions {
                return_results: true,
                ..Default::default()
            },
        )
        .await?;
    let response = &summary.results[0];
    let route: Vec<&str> = response
        .routes()
        .iter()
        .map(|r| r.executor.as_str())
        .collect();
    println!("route: {}", route.join(" -> "));
    let docs = response.docs()?;
    let visits: Vec<String> = docs
        .iter()
        .next()
        .unwrap()
        .matches
        .iter()
        .filter_map(|m| m.text.clone())
        .collect();
    println!("visited: {}", visits.join(", "));
    Ok(())
}
