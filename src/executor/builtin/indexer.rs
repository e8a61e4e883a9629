//! `VectorIndexer`: keeps documents with their embeddings in an embedded database (redb, in
//! the executor's workspace) and answers nearest-neighbour queries by cosine similarity.
//!
//! - `/index`: stores each document's chunks (or the document itself when it has none) that
//!   carry an embedding; an id already stored is overwritten.
//! - `/search`: fills each query's `matches` with the `top_k` stored documents
//!   (`parameters.top_k`, default `with.top_k`, 10), each scored `{"cosine": {"value": ..}}`.
//! - `/update` replaces stored ids, `/delete` removes them, `/clear` empties the index, and
//!   `/status` adds a document whose tags hold the count.
//!
//! It survives restarts: the database is the truth, and the vectors are read back into memory
//! when it opens. As a shard (the Flow passes `metas.shard_id` and `metas.shards`) it keeps
//! what it is sent in a file of its own: under Jina's polling, `/index` goes to one shard and
//! `/search` to every shard, so each shard holds part of the data and a search asks them all;
//! a `Ranker` after the shards folds their matches together.

use super::ranker::{rank, top_k};
use crate::document::{Document, DocumentArray, TraversalPaths};
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};
use crate::proto::docarray::DocProto;
use prost::Message;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");

/// Stores embeddings in its workspace (redb) and finds the nearest by cosine similarity.
pub struct VectorIndexer {
    /// Opened by `open`, before the executor serves.
    db: Option<redb::Database>,
    path: PathBuf,
    vectors: RwLock<Vectors>,
    shard: (u64, u64),
    top_k: usize,
}

/// The embeddings in memory, normalised, for brute-force cosine search.
#[derive(Default)]
struct Vectors {
    dim: usize,
    ids: Vec<String>,
    data: Vec<f32>,
    position: HashMap<String, usize>,
}

impl Vectors {
    fn upsert(&mut self, id: &str, v: &[f32]) -> Result<(), String> {
        if self.ids.is_empty() && self.dim == 0 {
            self.dim = v.len();
        }
        if v.len() != self.dim {
            return Err(format!(
                "document {id}: embedding has {} dimensions, the index has {}",
                v.len(),
                self.dim
            ));
        }
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        let normalised = v.iter().map(|x| x / norm);
        match self.position.get(id) {
            Some(&p) => {
                for (slot, x) in self.data[p * self.dim..(p + 1) * self.dim]
                    .iter_mut()
                    .zip(normalised)
                {
                    *slot = x;
                }
            }
            None => {
                self.position.insert(id.to_string(), self.ids.len());
                self.ids.push(id.to_string());
                self.data.extend(normalised);
            }
        }
        Ok(())
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(p) = self.position.remove(id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if p != last {
            let moved = self.ids[last].clone();
            let (head, tail) = self.data.split_at_mut(last * self.dim);
            head[p * self.dim..(p + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.ids[p] = moved.clone();
            self.position.insert(moved, p);
        }
        self.ids.pop();
        self.data.truncate(last * self.dim);
        true
    }

    /// The `k` nearest ids to `query` with their cosine similarity, best first.
    fn nearest(&self, query: &[f32], k: usize) -> Vec<(String, f32)> {
        let norm = query
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        let mut scored: Vec<(usize, f32)> = self
            .data
            .chunks_exact(self.dim.max(1))
            .enumerate()
            .map(|(i, v)| {
                (
                    i,
                    v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() / norm,
                )
            })
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return vec![];
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
            .into_iter()
            .map(|(i, s)| (self.ids[i].clone(), s))
            .collect()
    }
}

/// The indexer's `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default = "ten")]
    top_k: usize,
    /// The database file's name in the workspace (default: the executor's name).
    #[serde(default)]
    index_name: Option<String>,
}

fn ten() -> usize {
    10
}

fn db_error(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::new("DatabaseError", e.to_string())
}

/// Where the index of these arguments and metas lives: a file in the workspace, one per shard.
fn index_path(args: &Args, metas: &Metas) -> Result<(PathBuf, (u64, u64)), BoxError> {
    if let Some(name) = &args.index_name {
        // A file name inside the workspace: a path would write anywhere.
        if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
            return Err(format!(
                "with.index_name '{name}': must be a file name, without '/' or '..' (it is stored inside the workspace)"
            )
            .into());
        }
    }
    let number = |k: &str| metas.other.get(k).and_then(Value::as_u64);
    let shards = number("shards").unwrap_or(1).max(1);
    let shard_id = number("shard_id").unwrap_or(0);
    let name = args
        .index_name
        .clone()
        .or_else(|| {
            metas
                .name
                .as_deref()
                .map(|n| crate::executor::deployment_of(n).to_string())
        })
        .unwrap_or_else(|| "index".into());
    let workspace = PathBuf::from(metas.workspace.as_deref().unwrap_or("workspace"));
    let file = if shards > 1 {
        format!("{name}-shard{shard_id}.redb")
    } else {
        format!("{name}.redb")
    };
    Ok((workspace.join(file), (shard_id, shards)))
}

impl VectorIndexer {
    fn db(&self) -> Result<&redb::Database, HandlerError> {
        self.db
            .as_ref()
            .ok_or_else(|| HandlerError::new("RuntimeError", "the index is not open"))
    }

    /// The documents an /index or /update stores: chunks, or the document itself.
    fn items(docs: &DocumentArray) -> Vec<&Document> {
        TraversalPaths::Leaves.select(docs)
    }

    fn store(&self, docs: &DocumentArray, only_existing: bool) -> Result<(), HandlerError> {
        let mut vectors = self.vectors.write().unwrap();
        let write = self.db()?.begin_write().map_err(db_error)?;
        {
            let mut table = write.open_table(DOCS).map_err(db_error)?;
            for doc in Self::items(docs) {
                if only_existing && !vectors.position.contains_key(&doc.id) {
                    continue;
                }
                let Some(embedding) = doc.embedding.as_ref() else {
                    return Err(HandlerError::new(
                        "ValueError",
                        format!(
                            "document {} has no embedding: put an encoder before the indexer",
                            doc.id
                        ),
                    ));
                };
                let v = embedding.to_f32_vec().map_err(|e| {
                    HandlerError::new("ValueError", format!("document {}: {e}", doc.id))
                })?;
                vectors
                    .upsert(&doc.id, &v)
                    .map_err(|m| HandlerError::new("ValueError", m))?;
                table
                    .insert(doc.id.as_str(), doc.to_proto().encode_to_vec().as_slice())
                    .map_err(db_error)?;
            }
        }
        write.commit().map_err(db_error)
    }

    fn nearest(&self, docs: &mut DocumentArray, k: usize) -> Result<(), HandlerError> {
        let vectors = self.vectors.read().unwrap();
        let read = self.db()?.begin_read().map_err(db_error)?;
        let table = read.open_table(DOCS).map_err(db_error)?;
        for query in docs.iter_mut() {
            let Some(embedding) = query.embedding.as_ref() else {
                return Err(HandlerError::new(
                    "ValueError",
                    format!(
                        "query {} has no embedding: put an encoder before the indexer",
                        query.id
                    ),
                ));
            };
            let q = embedding
                .to_f32_vec()
                .map_err(|e| HandlerError::new("ValueError", format!("query {}: {e}", query.id)))?;
            if !vectors.ids.is_empty() && q.len() != vectors.dim {
                return Err(HandlerError::new(
                    "ValueError",
                    format!(
                        "query {} has {} dimensions, the index has {}",
                        query.id,
                        q.len(),
                        vectors.dim
                    ),
                ));
            }
            for (id, score) in vectors.nearest(&q, k) {
                let Some(bytes) = table.get(id.as_str()).map_err(db_error)? else {
                    continue;
                };
                let mut found =
                    Document::from_proto(DocProto::decode(bytes.value()).map_err(db_error)?);
                found.embedding = None; // keep answers light; the query has its own
                found.set_score("cosine", score as f64);
                query.matches.push(found);
            }
            rank(&mut query.matches, "cosine", k);
        }
        Ok(())
    }

    fn remove(&self, docs: &DocumentArray) -> Result<(), HandlerError> {
        let mut vectors = self.vectors.write().unwrap();
        let write = self.db()?.begin_write().map_err(db_error)?;
        {
            let mut table = write.open_table(DOCS).map_err(db_error)?;
            for doc in Self::items(docs).into_iter().chain(docs.iter()) {
                vectors.remove(&doc.id);
                table.remove(doc.id.as_str()).map_err(db_error)?;
            }
        }
        write.commit().map_err(db_error)
    }

    fn empty(&self) -> Result<(), HandlerError> {
        let mut vectors = self.vectors.write().unwrap();
        let write = self.db()?.begin_write().map_err(db_error)?;
        write.delete_table(DOCS).map_err(db_error)?;
        write.open_table(DOCS).map_err(db_error)?;
        write.commit().map_err(db_error)?;
        *vectors = Vectors::default();
        Ok(())
    }
}

impl Executor for VectorIndexer {
    const NAME: &'static str = "VectorIndexer";
    const SUMMARY: &'static str =
        "stores embeddings in redb; /index /search /update /delete /clear /status";
    const KEEPS_WORKSPACE: bool = true;
    type Args = Args;

    fn new(args: Args, metas: &Metas) -> Result<Self, BoxError> {
        let (path, shard) = index_path(&args, metas)?;
        Ok(VectorIndexer {
            db: None,
            path,
            vectors: RwLock::new(Vectors::default()),
            shard,
            top_k: args.top_k,
        })
    }

    /// Opens (or creates) the database in the workspace and reads every stored vector back.
    fn open(&mut self) -> Result<(), BoxError> {
        let path = &self.path;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("workspace {}: {e}", dir.display()))?;
        }
        let db = redb::Database::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut vectors = Vectors::default();
        let write = db.begin_write()?;
        write.open_table(DOCS)?;
        write.commit()?;
        let read = db.begin_read()?;
        let table = read.open_table(DOCS)?;
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            let doc = DocProto::decode(bytes.value())
                .map(Document::from_proto)
                .map_err(|e| format!("{}: stored document {}: {e}", path.display(), id.value()))?;
            if let Some(v) = doc.embedding.as_ref().and_then(|e| e.to_f32_vec().ok()) {
                vectors.upsert(&doc.id, &v)?;
            }
        }
        drop(table);
        drop(read);
        tracing::info!("{}: {} documents", path.display(), vectors.ids.len());
        self.vectors = RwLock::new(vectors);
        self.db = Some(db);
        Ok(())
    }

    fn requests(r: &mut Requests<Self>) {
        r.on("/index", Self::index)
            .on("/search", Self::search)
            .on("/update", Self::update)
            .on("/delete", Self::delete)
            .on("/clear", Self::clear)
            .on("/status", Self::status);
    }
}

/// The handlers.
impl VectorIndexer {
    fn index(&self, call: Call<'_>) -> Result<(), HandlerError> {
        self.store(call.docs, false)
    }

    fn update(&self, call: Call<'_>) -> Result<(), HandlerError> {
        self.store(call.docs, true)
    }

    fn search(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let k = top_k(&call.parameters, self.top_k)?;
        self.nearest(call.docs, k)
    }

    fn delete(&self, call: Call<'_>) -> Result<(), HandlerError> {
        self.remove(call.docs)
    }

    fn clear(&self, _: Call<'_>) -> Result<(), HandlerError> {
        self.empty()
    }

    /// Adds its status document to the request's (an encoder before it may have added one).
    fn status(&self, call: Call<'_>) -> Result<(), HandlerError> {
        let mut doc = Document::new();
        doc.id = format!("status-shard{}", self.shard.0);
        doc.tags.insert(
            "count".into(),
            self.vectors.read().unwrap().ids.len().into(),
        );
        doc.tags.insert("shard_id".into(), self.shard.0.into());
        doc.tags.insert("shards".into(), self.shard.1.into());
        doc.tags
            .insert("path".into(), self.path.display().to_string().into());
        call.docs.push(doc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_name_must_be_a_file_name_inside_the_workspace() {
        for bad in ["../../x", "a/b", "..", ""] {
            let args = Args {
                top_k: 10,
                index_name: Some(bad.into()),
            };
            let e = VectorIndexer::new(args, &Metas::default())
                .err()
                .expect("refused");
            assert!(e.to_string().contains("must be a file name"), "{bad}: {e}");
        }
        let args = Args {
            top_k: 10,
            index_name: Some("books".into()),
        };
        assert!(VectorIndexer::new(args, &Metas::default()).is_ok());
    }
}
