//! Create a Flow and use it (reference: "Create a Flow", "Use a Flow").
//! `Flow::new()` is a plain value; `start_blocking()` opens it (the reference's `with f:`, as
//! synchronous as Python's: the handle owns its runtime), and `close()` (or dropping the
//! handle) closes it. Pass `--block` to keep serving until Ctrl-C (the reference's
//! `f.block()`). `start().await` is the same for async code (examples/async_flow.rs).

use jina::flow::{Exec, Flow};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new().add(Exec::new());
    let running = f.start_blocking()?;
    let summary = running.post("/", jina::Document::from_text("hello"), Default::default())?;
    println!(
        "posted {} request with {} document to the Flow on port {}",
        summary.requests,
        summary.docs,
        running.port()
    );
    if std::env::args().any(|a| a == "--block") {
        running.block();
    }
    running.close()?;
    Ok(())
}
