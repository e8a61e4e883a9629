//! The graph of a Flow: who needs whom. Built and checked as a whole before anything starts,
//! and every problem is reported, not just the first: unknown names, duplicates, cycles,
//! executors the gateway never reaches, and options that cannot work together.

use super::spec::{FlowSpec, GATEWAY};
use std::collections::HashMap;

/// One executor in the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    pub name: String,
    /// Indices of the executors it needs; empty: it needs the gateway.
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
}

/// A checked, acyclic Flow graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    /// A topological order: every node after its parents.
    pub order: Vec<usize>,
    /// Nodes with no children: their results go back to the client.
    pub leaves: Vec<usize>,
}

/// A problem found in the graph: the executor's index, the key at fault, and what is wrong.
pub(super) type Problem = (usize, &'static str, String);

impl Graph {
    /// Builds the graph of `spec`, or returns every problem found.
    pub fn build(spec: &FlowSpec) -> Result<Graph, Vec<Problem>> {
        let mut problems: Vec<Problem> = vec![];
        let names: Vec<String> = (0..spec.executors.len()).map(|i| spec.name_of(i)).collect();
        let index = index_names(&names, &mut problems);
        let (nodes, orphaned) = link(spec, &names, &index, &mut problems);
        // Kahn's algorithm: whatever is left over sits on or behind a cycle.
        let mut pending: Vec<usize> = nodes.iter().map(|n| n.parents.len()).collect();
        let mut order: Vec<usize> = (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
        let mut k = 0;
        while k < order.len() {
            for &c in &nodes[order[k]].children {
                pending[c] -= 1;
                if pending[c] == 0 {
                    order.push(c);
                }
            }
            k += 1;
        }
        let on_cycles = report_cycles(&nodes, &pending, &mut problems);
        report_unreachable(&nodes, &orphaned, &pending, &on_cycles, &mut problems);
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.0);
            return Err(problems);
        }
        let leaves = order
            .iter()
            .copied()
            .filter(|&i| nodes[i].children.is_empty())
            .collect();
        Ok(Graph {
            nodes,
            order,
            leaves,
        })
    }
}

/// Each executor's index by name; a reserved or repeated name is a problem.
fn index_names<'a>(names: &'a [String], problems: &mut Vec<Problem>) -> HashMap<&'a str, usize> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if name == GATEWAY {
            problems.push((
                i,
                "name",
                format!("'{GATEWAY}' is reserved for the gateway"),
            ));
        } else if let Some(&first) = index.get(name.as_str()) {
            problems.push((
                i,
                "name",
                format!("duplicate executor name '{name}' (also executors[{first}])"),
            ));
        } else {
            index.insert(name, i);
        }
    }
    index
}

/// The nodes with their parents and children from each entry's `needs` (the previous
/// executor when it says none), and which say `needs: []` (nobody feeds them).
fn link(
    spec: &FlowSpec,
    names: &[String],
    index: &HashMap<&str, usize>,
    problems: &mut Vec<Problem>,
) -> (Vec<GraphNode>, Vec<bool>) {
    let mut nodes: Vec<GraphNode> = names
        .iter()
        .map(|n| GraphNode {
            name: n.clone(),
            parents: vec![],
            children: vec![],
        })
        .collect();
    let mut orphaned = vec![false; nodes.len()];
    for (i, e) in spec.executors.iter().enumerate() {
        let needs: Vec<String> = match &e.needs {
            Some(n) => n.clone(),
            None if i == 0 => vec![GATEWAY.into()],
            None => vec![names[i - 1].clone()],
        };
        orphaned[i] = needs.is_empty();
        for need in needs {
            if need == GATEWAY {
                continue;
            }
            match index.get(need.as_str()) {
                Some(&p) if !nodes[i].parents.contains(&p) => nodes[i].parents.push(p),
                Some(_) => {}
                None => problems.push((i, "needs", format!("unknown executor '{need}'"))),
            }
        }
        if e.external && e.port_in.is_none() {
            problems.push((i, "port_in", "an external executor needs its port".into()));
        }
    }
    for i in 0..nodes.len() {
        for p in nodes[i].parents.clone() {
            nodes[p].children.push(i);
        }
    }
    (nodes, orphaned)
}

/// Each cycle among the nodes Kahn's algorithm left `pending`, once; which nodes are on one.
fn report_cycles(nodes: &[GraphNode], pending: &[usize], problems: &mut Vec<Problem>) -> Vec<bool> {
    let mut reported = vec![false; nodes.len()];
    for start in 0..nodes.len() {
        if pending[start] > 0
            && !reported[start]
            && let Some(cycle) = find_cycle(nodes, start)
        {
            for &c in &cycle {
                reported[c] = true;
            }
            let path: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .map(|&c| nodes[c].name.as_str())
                .collect();
            problems.push((cycle[0], "needs", format!("cycle: {}", path.join(" -> "))));
        }
    }
    reported
}

/// Each node the gateway cannot reach (from the nodes with no parents that do not say
/// `needs: []`, then down), unless a cycle already explains it.
fn report_unreachable(
    nodes: &[GraphNode],
    orphaned: &[bool],
    pending: &[usize],
    on_cycles: &[bool],
    problems: &mut Vec<Problem>,
) {
    let mut reached = vec![false; nodes.len()];
    let mut stack: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].parents.is_empty() && !orphaned[i])
        .collect();
    while let Some(i) = stack.pop() {
        if !reached[i] {
            reached[i] = true;
            stack.extend(nodes[i].children.iter().copied());
        }
    }
    for i in 0..nodes.len() {
        if !reached[i] && !on_cycles[i] && pending[i] == 0 {
            problems.push((
                i,
                "needs",
                format!("'{}' is not reachable from the gateway", nodes[i].name),
            ));
        }
    }
}

/// A cycle reachable by walking parents from `start`, as node indices.
fn find_cycle(nodes: &[GraphNode], start: usize) -> Option<Vec<usize>> {
    let mut path = vec![start];
    let mut on_path = vec![false; nodes.len()];
    on_path[start] = true;
    let mut seen = vec![false; nodes.len()];
    fn walk(
        nodes: &[GraphNode],
        path: &mut Vec<usize>,
        on_path: &mut [bool],
        seen: &mut [bool],
    ) -> Option<Vec<usize>> {
        let at = *path.last().unwrap();
        for &p in &nodes[at].parents {
            if on_path[p] {
                let from = path.iter().position(|&x| x == p).unwrap();
                let mut cycle: Vec<usize> = path[from..].to_vec();
                cycle.reverse(); // parents point upstream; show the flow direction
                return Some(cycle);
            }
            if !seen[p] {
                seen[p] = true;
                on_path[p] = true;
                path.push(p);
                if let Some(c) = walk(nodes, path, on_path, seen) {
                    return Some(c);
                }
                path.pop();
                on_path[p] = false;
            }
        }
        None
    }
    walk(nodes, &mut path, &mut on_path, &mut seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::spec::ExecutorSpec;

    fn exec(name: &str, needs: Option<&[&str]>) -> ExecutorSpec {
        ExecutorSpec {
            name: Some(name.into()),
            needs: needs.map(|n| n.iter().map(|s| s.to_string()).collect()),
            ..ExecutorSpec::new()
        }
    }

    fn spec(executors: Vec<ExecutorSpec>) -> FlowSpec {
        FlowSpec {
            executors,
            ..Default::default()
        }
    }

    #[test]
    fn chain_and_fan_in() {
        let g = Graph::build(&spec(vec![
            exec("p1", Some(&["gateway"])),
            exec("p2", Some(&["gateway"])),
            exec("p3", Some(&["gateway"])),
            exec("r1", Some(&["p1", "p2", "p3"])),
        ]))
        .unwrap();
        assert_eq!(g.nodes[3].parents, vec![0, 1, 2]);
        assert_eq!(g.leaves, vec![3]);
        let chain = Graph::build(&spec(vec![exec("a", None), exec("b", None)])).unwrap();
        assert_eq!(chain.nodes[1].parents, vec![0]);
        assert_eq!(chain.order, vec![0, 1]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let problems = Graph::build(&spec(vec![
            exec("a", Some(&["c"])),
            exec("b", Some(&["nope"])),
            exec("c", Some(&["a"])),
            exec("b", None),
            exec("lonely", Some(&[])),
        ]))
        .unwrap_err();
        let text: Vec<String> = problems
            .iter()
            .map(|(i, k, m)| format!("{i}.{k}: {m}"))
            .collect();
        assert!(
            text.contains(&"0.needs: cycle: c -> a -> c".to_string())
                || text.contains(&"0.needs: cycle: a -> c -> a".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"1.needs: unknown executor 'nope'".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"3.name: duplicate executor name 'b' (also executors[1])".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"4.needs: 'lonely' is not reachable from the gateway".to_string()),
            "{text:?}"
        );
    }
}
