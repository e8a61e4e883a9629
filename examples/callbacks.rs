//! Callback functions (reference: "Callback Functions"): print on success, beep on error, and
//! always save the documents to output.txt.

use jina::client::PostOptions;
use jina::flow::Flow;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("output.txt");
    let fp = Arc::new(Mutex::new(std::fs::File::create(&path)?));
    let f = Flow::new().add(jina::flow::Exec::new()).start().await?;
    let options = PostOptions::default()
        .on_done(|r| println!("done: {r}"))
        .on_error(|_| print!("\x07"))
        .on_always(move |r| {
            let mut fp = fp.lock().unwrap();
            for d in r.docs().unwrap().iter() {
                writeln!(fp, "{}", d.to_json()).unwrap();
            }
        });
    f.post("/", jina::Document::new(), options).await?;
    println!("output.txt: {}", std::fs::read_to_string(&path)?.trim());
    Ok(())
}
