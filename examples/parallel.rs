//! Inter parallelism via `parallel` (reference: "Inter Parallelism via parallel"): three copies
//! of p1 under each polling mode. `Visit` marks every document with the copy that saw it, so we
//! can count who did the work.

use jina::client::PostOptions;
use jina::flow::{Exec, Flow, Polling};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for polling in [Polling::Any, Polling::All, Polling::AllAsync] {
        let f = Flow::new()
            .add(
                Exec::new()
                    .name("p1")
                    .uses("Visit")
                    .parallel(3)
                    .polling(polling),
            )
            .add(Exec::new().name("p2"))
            .start()
            .await?;
        let docs: Vec<_> = (0..6)
            .map(|i| jina::Document::from_text(format!("doc {i}")))
            .collect();
        let summary = f
            .post(
                "/",
                docs,
                PostOptions {
                    request_size: 1,
                    return_results: true,
                    ..Default::default()
                },
            )
            .await?;
        let mut copies_per_doc = vec![];
        let mut copies_used = std::collections::BTreeSet::new();
        for r in &summary.results {
            for d in r.docs()?.iter() {
                copies_per_doc.push(d.matches.len());
                copies_used.extend(d.matches.iter().filter_map(|m| m.text.clone()));
            }
        }
        println!(
            "polling {:<9}: copies that worked on each document {:?}; copies used over 6 requests: {}",
            polling.as_str(),
            copies_per_doc,
            copies_used.len()
        );
    }
    Ok(())
}
