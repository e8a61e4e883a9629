//! Traversal paths: which documents of a request a handler works on, in DocArray's syntax.
//!
//! `@r` is the request's documents (the roots), `@c` their chunks, `@cc` the chunks' chunks,
//! `@m` the roots' matches, and `@r,c` several paths, visited in the order given. Jina 2's
//! forms are read too: `r`, `c,r` and lists such as `['r', 'c']`.
//!
//! [`TraversalPaths::Leaves`] is the choice the built-in indexer makes (each document's
//! chunks, or the document itself when it has none); encoders that feed it use the same rule
//! by default, so what is encoded is exactly what is stored and searched.

use super::{Document, DocumentArray};
use std::fmt;

/// One step down from a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Chunks,
    Matches,
}

/// The documents a handler visits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraversalPaths {
    /// Each path is the steps from a root: none for `r`, `[Chunks]` for `c`.
    Paths(Vec<Vec<Step>>),
    /// Each root's chunks, or the root itself when it has none.
    Leaves,
}

/// A traversal path that is not DocArray's syntax.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "traversal path `{path}` is not valid: use `@r` (the documents), `@c` (their chunks), `@m` (their matches), `@cc` and so on, or several joined by commas such as `@r,c`"
)]
/// A traversal path DocArray does not know (`@r`, `@c`, `@m`, `@cc`, ...).
pub struct BadTraversalPath {
    pub path: String,
}

impl TraversalPaths {
    /// Reads `@r,c`, `r`, `c,r` and the like.
    pub fn parse(text: &str) -> Result<TraversalPaths, BadTraversalPath> {
        let bad = || BadTraversalPath {
            path: text.to_string(),
        };
        let body = text.trim().strip_prefix('@').unwrap_or(text.trim());
        let paths = body
            .split(',')
            .map(|p| Self::steps(p.trim()).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TraversalPaths::Paths(paths))
    }

    /// Reads Jina 2's list form, `['r', 'c']`.
    fn from_list<S: AsRef<str>>(items: &[S]) -> Result<TraversalPaths, BadTraversalPath> {
        let joined = items
            .iter()
            .map(|s| s.as_ref().trim().trim_start_matches('@').to_string())
            .collect::<Vec<_>>()
            .join(",");
        Self::parse(&joined)
    }

    fn steps(path: &str) -> Option<Vec<Step>> {
        if path == "r" {
            return Some(vec![]);
        }
        if path.is_empty() {
            return None;
        }
        path.chars()
            .map(|c| match c {
                'c' => Some(Step::Chunks),
                'm' => Some(Step::Matches),
                _ => None,
            })
            .collect()
    }

    /// Calls `f` on every document the paths reach, in order.
    pub fn visit_mut(&self, docs: &mut DocumentArray, f: &mut impl FnMut(&mut Document)) {
        match self {
            TraversalPaths::Leaves => {
                for doc in docs.iter_mut() {
                    if doc.chunks.is_empty() {
                        f(doc);
                    } else {
                        doc.chunks.iter_mut().for_each(&mut *f);
                    }
                }
            }
            TraversalPaths::Paths(paths) => {
                for steps in paths {
                    for doc in docs.iter_mut() {
                        descend_mut(doc, steps, f);
                    }
                }
            }
        }
    }

    /// The documents the paths reach, in order.
    pub fn select<'a>(&self, docs: &'a DocumentArray) -> Vec<&'a Document> {
        let mut out = vec![];
        match self {
            TraversalPaths::Leaves => {
                for doc in docs.iter() {
                    if doc.chunks.is_empty() {
                        out.push(doc);
                    } else {
                        out.extend(doc.chunks.iter());
                    }
                }
            }
            TraversalPaths::Paths(paths) => {
                for steps in paths {
                    for doc in docs.iter() {
                        descend(doc, steps, &mut out);
                    }
                }
            }
        }
        out
    }
}

fn below(doc: &Document, step: Step) -> &DocumentArray {
    match step {
        Step::Chunks => &doc.chunks,
        Step::Matches => &doc.matches,
    }
}

fn descend<'a>(doc: &'a Document, steps: &[Step], out: &mut Vec<&'a Document>) {
    match steps.split_first() {
        None => out.push(doc),
        Some((step, rest)) => below(doc, *step).iter().for_each(|d| descend(d, rest, out)),
    }
}

fn descend_mut(doc: &mut Document, steps: &[Step], f: &mut impl FnMut(&mut Document)) {
    match steps.split_first() {
        None => f(doc),
        Some((step, rest)) => {
            let below = match step {
                Step::Chunks => &mut doc.chunks,
                Step::Matches => &mut doc.matches,
            };
            below.iter_mut().for_each(|d| descend_mut(d, rest, f));
        }
    }
}

impl fmt::Display for TraversalPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraversalPaths::Leaves => write!(f, "chunks, or the document when it has none"),
            TraversalPaths::Paths(paths) => {
                let names: Vec<String> = paths
                    .iter()
                    .map(|steps| match steps.is_empty() {
                        true => "r".to_string(),
                        false => steps
                            .iter()
                            .map(|s| match s {
                                Step::Chunks => 'c',
                                Step::Matches => 'm',
                            })
                            .collect(),
                    })
                    .collect();
                write!(f, "@{}", names.join(","))
            }
        }
    }
}

/// `traversal_paths` in a YAML `with:` or in request parameters: a string or Jina 2's list.
impl<'de> serde::Deserialize<'de> for TraversalPaths {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            List(Vec<String>),
        }
        let parsed = match Form::deserialize(d)? {
            Form::One(s) => TraversalPaths::parse(&s),
            Form::List(l) => TraversalPaths::from_list(&l),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> DocumentArray {
        let mut root = Document::from_text("root");
        root.id = "a".into();
        for n in 0..2 {
            let mut c = Document::from_text(format!("chunk {n}"));
            c.id = format!("a/{n}");
            c.chunks.push(Document::from_text("deep"));
            root.chunks.push(c);
        }
        root.matches.push(Document::from_text("match"));
        let mut lone = Document::from_text("lone");
        lone.id = "b".into();
        DocumentArray::from(vec![root, lone])
    }

    fn texts(paths: &TraversalPaths) -> Vec<String> {
        let docs = tree();
        let read: Vec<String> = paths
            .select(&docs)
            .iter()
            .map(|d| d.text.clone().unwrap())
            .collect();
        let mut docs = tree();
        let mut written = vec![];
        paths.visit_mut(&mut docs, &mut |d| written.push(d.text.clone().unwrap()));
        assert_eq!(read, written, "select and visit_mut agree");
        read
    }

    #[test]
    fn docarray_and_jina2_forms() {
        let p = |s| TraversalPaths::parse(s).unwrap();
        assert_eq!(texts(&p("@r")), ["root", "lone"]);
        assert_eq!(texts(&p("@c")), ["chunk 0", "chunk 1"]);
        assert_eq!(texts(&p("@cc")), ["deep", "deep"]);
        assert_eq!(texts(&p("@m")), ["match"]);
        assert_eq!(texts(&p("@r,c")), ["root", "lone", "chunk 0", "chunk 1"]);
        assert_eq!(p("c, r"), p("@c,r"));
        assert_eq!(TraversalPaths::from_list(&["r", "c"]).unwrap(), p("@r,c"));
        assert_eq!(p("@r,cc").to_string(), "@r,cc");
        assert_eq!(
            texts(&TraversalPaths::Leaves),
            ["chunk 0", "chunk 1", "lone"]
        );
    }

    #[test]
    fn bad_paths_are_named() {
        for bad in ["@x", "@", "@r,,c", "root"] {
            let e = TraversalPaths::parse(bad).unwrap_err();
            assert_eq!(e.path, bad);
        }
        let e: Result<TraversalPaths, _> = serde_json::from_value(serde_json::json!(["r", "q"]));
        assert!(e.unwrap_err().to_string().contains("`r,q`"));
    }
}
