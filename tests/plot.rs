//! `jina flow --plot`: the graph as SVG, written without starting anything, and rendered by a
//! real browser (Debian's headless Chromium) into a PNG kept under target/test-artifacts/.

mod common;

use common::*;

#[test]
fn the_needs_example_plots_and_renders_in_chromium() {
    let files = Files::new();
    let svg = files.dir.path().join("needs.svg");
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, out) = run(&[
        "flow",
        "--uses",
        &format!("{root}/flows/needs.yml"),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("ready and listening"),
        "plotting starts nothing: {out}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    for edge in [
        "from-gateway to-p1",
        "from-gateway to-p2",
        "from-gateway to-p3",
        "from-p1 to-r1",
        "from-p2 to-r1",
        "from-p3 to-r1",
        "from-r1 to-gateway",
    ] {
        assert!(text.contains(edge), "missing edge {edge}");
    }
    assert_eq!(
        text.matches("class=\"edge").count(),
        7,
        "one arrow per needs, and the two gateway ends"
    );
    for name in ["p1", "p2", "p3", "r1"] {
        assert!(text.contains(&format!(">{name}</text>")), "label {name}");
    }
    assert_eq!(
        text.matches(">gateway</text>").count(),
        2,
        "gateway at both ends"
    );

    let artifacts = std::path::Path::new(root).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("needs-flow.png");
    let _ = std::fs::remove_file(&png);
    let shot = chromium(
        &format!("file://{}", svg.display()),
        &[&format!("--screenshot={}", png.display())],
    );
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 5_000,
        "a blank page would be tiny: {} bytes",
        bytes.len()
    );
}

#[test]
fn the_plot_draws_uses_before_and_uses_after() {
    let files = Files::new();
    let flow = files.write(
        "flow.yml",
        "executors:\n  - {name: idx, uses: VectorIndexer, shards: 2, uses_before: BaseExecutor, uses_after: Ranker}\n",
    );
    let svg = files.dir.path().join("flow.svg");
    let (code, out) = run(&[
        "flow",
        "--uses",
        flow.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("<title>uses_before: BaseExecutor</title>"),
        "{text}"
    );
    assert!(text.contains("<title>uses_after: Ranker</title>"), "{text}");
}
