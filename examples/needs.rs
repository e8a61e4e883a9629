//! Intra parallelism via `needs` (reference: "Intra Parallelism via needs"): p1, p2 and p3
//! work in parallel on every request; r1 waits for all three. `.needs_all()` builds the same
//! graph. Also writes the graph as SVG.

use jina::client::PostOptions;
use jina::flow::{Exec, Flow};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new()
        .add(Exec::new().name("p1").uses("Visit").needs("gateway"))
        .add(Exec::new().name("p2").uses("Visit").needs("gateway"))
        .add(Exec::new().name("p3").uses("Visit").needs("gateway"))
        .needs(["p1", "p2", "p3"], "r1");
    let same = Flow::new()
        .add(Exec::new().name("p1").uses("Visit").needs("gateway"))
        .add(Exec::new().name("p2").uses("Visit").needs("gateway"))
        .add(Exec::new().name("p3").uses("Visit").needs("gateway"))
        .needs_all("r1");
    println!(
        "needs_all builds the same graph: {}",
        f.check()?.graph == same.check()?.graph
    );
    let svg = std::env::temp_dir().join("needs.svg");
    let f = f.plot(&svg)?;
    println!("graph drawn to {}", svg.display());

    let running = f.start().await?;
    let summary = running
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
    let docs = response.docs()?;
    let mut visits: Vec<String> = docs
        .iter()
        .next()
        .unwrap()
        .matches
        .iter()
        .filter_map(|m| m.text.clone())
        .collect();
    visits.sort();
    println!(
        "p1, p2 and p3 each saw the document, then r1 got them merged: {}",
        visits.join(", ")
    );
    Ok(())
}
