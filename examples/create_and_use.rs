//! Create a Flow and use it (reference: "Create a Flow", "Use a Flow").
//! `Flow::new()` is a plain value; `start()` opens it (the reference's `with f:`); dropping the
//! handle closes it. Pass `--block` to keep serving until Ctrl-C (the reference's `f.block()`).

use jina::flow::{Exec, Flow};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new().add(Exec::new());
    let running = f.start().await?;
    let summary = running
        .post("/", jina::Document::from_text("hello"), Default::default())
        .await?;
    println!(
        "posted {} request with {} document to the Flow on port {}",
        summary.requests,
        summary.docs,
        running.port()
    );
    if std::env::args().any(|a| a == "--block") {
        running.block().await;
    }
    Ok(())
}
