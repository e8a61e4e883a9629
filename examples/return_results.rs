//! Get all responses (reference: "Get All Responses"): `return_results` collects them.
//! Mind the reference's caution: this keeps every response in memory until the end.

use jina::client::{Inputs, PostOptions};
use jina::flow::Flow;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new().start().await?;
    let docs = Inputs::iter((0..100).map(|_| jina::Document::new()));
    let all_responses = f
        .post(
            "/",
            docs,
            PostOptions {
                request_size: 10,
                return_results: true,
                ..Default::default()
            },
        )
        .await?
        .results;
    println!("{} responses:", all_responses.len());
    for r in &all_responses {
        println!("{r}");
    }
    Ok(())
}
