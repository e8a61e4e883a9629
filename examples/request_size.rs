//! Size of the request (reference: "Size of the Request"): 100 documents with request_size 10
//! are ten requests; `show_progress` draws the bar and prints the summary.

use jina::client::{Inputs, PostOptions};
use jina::flow::Flow;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new().start().await?;
    let docs = || Inputs::iter((0..100).map(|_| jina::Document::new()));
    let summary = f
        .post(
            "/",
            docs(),
            PostOptions {
                request_size: 10,
                ..Default::default()
            },
        )
        .await?;
    println!("{} requests", summary.requests);
    f.post(
        "/",
        docs(),
        PostOptions {
            request_size: 10,
            show_progress: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}
