//! A Flow's graph drawn as SVG, in-process: the gateway at both ends, each executor a box
//! labelled with its name, what it uses, and its copies and polling, its `uses_before` and
//! `uses_after` as tabs on its left and right edges, and an arrow for every `needs`. Columns
//! are graph depth, so parallel branches stand side by side.

use super::graph::Graph;
use super::spec::{FlowSpec, Uses};

const BOX_W: f64 = 150.0;
const BOX_H: f64 = 56.0;
const COL_GAP: f64 = 70.0;
const ROW_GAP: f64 = 30.0;
const MARGIN: f64 = 20.0;
const TAB_W: f64 = 44.0;
const TAB_H: f64 = 18.0;

/// The SVG document of `graph`.
pub(super) fn svg(spec: &FlowSpec, graph: &Graph) -> String {
    // Column of each executor: one after its deepest parent; the gateway is column 0.
    let mut column = vec![0usize; graph.nodes.len()];
    for &i in &graph.order {
        column[i] = 1 + graph.nodes[i]
            .parents
            .iter()
            .map(|&p| column[p])
            .max()
            .unwrap_or(0);
    }
    let last = column.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<Vec<usize>> = vec![vec![]; last + 1];
    for i in 0..graph.nodes.len() {
        rows[column[i]].push(i);
    }
    let tallest = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let height = MARGIN * 2.0 + tallest as f64 * BOX_H + (tallest - 1) as f64 * ROW_GAP;
    let width = MARGIN * 2.0 + (last + 1) as f64 * BOX_W + last as f64 * COL_GAP;
    let x_of = |col: usize| MARGIN + col as f64 * (BOX_W + COL_GAP);
    let y_of = |col: usize, row: usize| {
        let n = rows[col].len().max(1) as f64;
        let block = n * BOX_H + (n - 1.0) * ROW_GAP;
        (height - block) / 2.0 + row as f64 * (BOX_H + ROW_GAP)
    };
    let mut position = vec![(0.0, 0.0); graph.nodes.len()];
    for (col, members) in rows.iter().enumerate() {
        for (row, &i) in members.iter().enumerate() {
            position[i] = (x_of(col), y_of(col, row));
        }
    }
    let gateway_in = (x_of(0), (height - BOX_H) / 2.0);
    let gateway_out = (x_of(last), (height - BOX_H) / 2.0);

    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
"##
    );
    let edge = |out: &mut String, from: (f64, f64), to: (f64, f64), class: &str| {
        let (x1, y1) = (from.0 + BOX_W, from.1 + BOX_H / 2.0);
        let (x2, y2) = (to.0, to.1 + BOX_H / 2.0);
        let mid = (x1 + x2) / 2.0;
        out.push_str(&format!(
            "<path class=\"edge {class}\" d=\"M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>\n"
        ));
    };
    for (i, node) in graph.nodes.iter().enumerate() {
        if node.parents.is_empty() {
            edge(
                &mut out,
                gateway_in,
                position[i],
                &format!("from-gateway to-{}", node.name),
            );
        }
        for &p in &node.parents {
            edge(
                &mut out,
                position[p],
                position[i],
                &format!("from-{} to-{}", graph.nodes[p].name, node.name),
            );
        }
    }
    for &leaf in &graph.leaves {
        edge(
            &mut out,
            position[leaf],
            gateway_out,
            &format!("from-{} to-gateway", graph.nodes[leaf].name),
        );
    }
    for at in [gateway_in, gateway_out] {
        out.push_str(&format!(
            "<g class=\"gateway\"><ellipse cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\" fill=\"#fde8c8\" stroke=\"#c77d12\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">gateway</text></g>\n",
            at.0 + BOX_W / 2.0, at.1 + BOX_H / 2.0, BOX_W / 2.0, BOX_H / 2.0, at.0 + BOX_W / 2.0, at.1 + BOX_H / 2.0 + 5.0
        ));
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let e = &spec.executors[i];
        let (x, y) = position[i];
        let uses = label(&e.uses);
        let copies = e.shards * e.replicas;
        let detail = if e.external {
            format!("external {}", uses)
        } else if copies > 1 {
            format!("parallel {copies} · {}", e.polling.as_str())
        } else {
            uses
        };
        out.push_str(&format!(
            "<g class=\"executor\" id=\"{name}\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\" fill=\"#dbeafe\" stroke=\"#1d4ed8\" stroke-width=\"1.5\"/><text x=\"{cx}\" y=\"{ty}\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{name}</text><text x=\"{cx}\" y=\"{dy}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333\">{detail}</text></g>\n",
            name = escape(&node.name),
            cx = x + BOX_W / 2.0,
            ty = y + 24.0,
            dy = y + 43.0,
            detail = escape(&detail),
        ));
        // The head and the tail, as tabs that stand out of the box's left and right edges.
        let tabs = [
            ("uses_before", "before", &e.uses_before, x - TAB_W / 2.0),
            (
                "uses_after",
                "after",
                &e.uses_after,
                x + BOX_W - TAB_W / 2.0,
            ),
        ];
        for (class, word, uses, tab_x) in tabs {
            let Some(uses) = uses else { continue };
            out.push_str(&format!(
                "<g class=\"{class}\"><title>{class}: {uses}</title><rect x=\"{tab_x}\" y=\"{ty}\" width=\"{TAB_W}\" height=\"{TAB_H}\" rx=\"4\" fill=\"#ede9fe\" stroke=\"#6d28d9\" stroke-width=\"1.2\"/><text x=\"{cx}\" y=\"{text_y}\" text-anchor=\"middle\" font-size=\"10\">{word}</text></g>\n",
                uses = escape(&label(uses)),
                ty = y + BOX_H - TAB_H / 2.0,
                cx = tab_x + TAB_W / 2.0,
                text_y = y + BOX_H + 3.5,
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}

/// What a `uses` is called in a box: its type or file name.
fn label(uses: &Uses) -> String {
    match uses {
        Uses::Named(s) if !s.contains('\n') => s.rsplit('/').next().unwrap_or(s).to_string(),
        Uses::Named(_) => "inline YAML".into(),
        Uses::Map(m) => m
            .get("jtype")
            .and_then(|j| j.as_str())
            .unwrap_or("map")
            .to_string(),
        Uses::Native(n) => n.name.to_string(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use crate::flow::{Exec, Flow, Polling};

    #[test]
    fn draws_every_executor_and_every_needs() {
        let svg = Flow::new()
            .add(Exec::new().name("p1").needs("gateway"))
            .add(Exec::new().name("p2").needs("gateway"))
            .add(
                Exec::new()
                    .name("p3")
                    .needs("gateway")
                    .parallel(3)
                    .polling(Polling::All),
            )
            .needs(["p1", "p2", "p3"], "r1")
            .to_svg()
            .unwrap();
        for name in ["p1", "p2", "p3", "r1"] {
            assert!(svg.contains(&format!("id=\"{name}\"")), "{name}");
        }
        for edge in [
            "from-gateway to-p1",
            "from-gateway to-p3",
            "from-p1 to-r1",
            "from-p2 to-r1",
            "from-p3 to-r1",
            "from-r1 to-gateway",
        ] {
            assert!(svg.contains(edge), "{edge}");
        }
        assert_eq!(svg.matches("class=\"edge").count(), 7);
        assert!(svg.contains("parallel 3 · ALL"));
        assert!(!svg.contains("uses_after"));
    }

    #[test]
    fn draws_uses_before_and_uses_after() {
        let svg = Flow::new()
            .add(
                Exec::new()
                    .name("idx")
                    .parallel(2)
                    .uses_before("BaseExecutor")
                    .uses_after("Ranker"),
            )
            .to_svg()
            .unwrap();
        assert!(
            svg.contains("<title>uses_before: BaseExecutor</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>uses_after: Ranker</title>"), "{svg}");
    }
}
