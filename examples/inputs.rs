//! Define data via `inputs` (reference: "Define Data via inputs"): one Document, a list, a
//! generator, a DocumentArray, nothing, and a CSV read with a field resolver.

use jina::client::{InputFormat, Inputs, inputs};
use jina::document::{Document, DocumentArray};
use jina::flow::Flow;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let d1 = Document::from_text("hello");
    let d2 = Document::from_text("world");
    let doc_gen = || (0..10).map(|j| Document::from_text(format!("hello {j}")));
    let f = Flow::new().start().await?;
    let o = Default::default;
    println!(
        "single document: {} docs",
        f.post("/", d1.clone(), o()).await?.docs
    );
    println!(
        "a list:          {} docs",
        f.post("/", vec![d1.clone(), d2.clone()], o()).await?.docs
    );
    println!(
        "a generator:     {} docs",
        f.post("/", Inputs::iter(doc_gen()), o()).await?.docs
    );
    println!(
        "a DocumentArray: {} docs",
        f.post("/", DocumentArray::from(vec![d1, d2]), o())
            .await?
            .docs
    );
    println!(
        "nothing:         {} request",
        f.post("/", Inputs::Nothing, o()).await?.requests
    );

    let csv = std::env::temp_dir().join("jina-inputs-example.csv");
    std::fs::write(
        &csv,
        "question,topic\nwhat is jina?,jina\nwhat is rust?,rust\n",
    )?;
    let resolver = [("question".to_string(), "text".to_string())].into();
    let docs = inputs::open(csv.to_str().unwrap(), InputFormat::Csv, &resolver)?;
    println!("from_csv:        {} docs", f.index(docs, o()).await?.docs);
    Ok(())
}
