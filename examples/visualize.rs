//! Visualize a Flow (reference: "Visualize a Flow"): `Flow().add().plot('f.svg')`.
//! The SVG is drawn in-process; nothing starts.

use jina::flow::{Exec, Flow};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("f.svg");
    let _f = Flow::new().add(Exec::new()).plot(&path)?;
    let svg = std::fs::read_to_string(&path)?;
    println!(
        "wrote {} ({} bytes): gateway -> executor0 -> gateway",
        path.display(),
        svg.len()
    );
    Ok(())
}
