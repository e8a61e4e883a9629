//! [`DocumentArray`]: an ordered list of documents with lookup by id.

use super::Document;
use std::collections::HashMap;

/// Documents in order. Lookup by id is a linear scan: batches are small (a request holds
/// around a hundred documents) and a scan beats keeping an index in step with every edit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocumentArray {
    docs: Vec<Document>,
}

impl DocumentArray {
    /// An empty array.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Appends a document.
    pub fn push(&mut self, doc: Document) {
        self.docs.push(doc);
    }

    /// The documents, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Document> {
        self.docs.iter()
    }

    /// The documents, in order, to change in place.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Document> {
        self.docs.iter_mut()
    }

    /// The document with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Document> {
        self.docs.iter().find(|d| d.id == id)
    }

    /// The document with this id, if any, to change in place.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Document> {
        self.docs.iter_mut().find(|d| d.id == id)
    }

    /// The documents as a slice.
    pub fn as_slice(&self) -> &[Document] {
        &self.docs
    }

    /// The documents as a vector, to add, remove or reorder them.
    pub fn as_mut_vec(&mut self) -> &mut Vec<Document> {
        &mut self.docs
    }

    /// The documents, owned.
    pub fn into_vec(self) -> Vec<Document> {
        self.docs
    }

    /// Unites several arrays by document id, keeping the order of first appearance; copies
    /// of one document are folded together with [`Document::absorb`]. This is how the
    /// requests that meet at a join are made one.
    pub fn merge_by_id(arrays: impl IntoIterator<Item = DocumentArray>) -> DocumentArray {
        let mut out: Vec<Document> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        for array in arrays {
            for doc in array.docs {
                match position.get(&doc.id) {
                    Some(&i) => out[i].absorb(doc),
                    None => {
                        position.insert(doc.id.clone(), out.len());
                        out.push(doc);
                    }
                }
            }
        }
        DocumentArray { docs: out }
    }
}

impl From<Vec<Document>> for DocumentArray {
    fn from(docs: Vec<Document>) -> Self {
        DocumentArray { docs }
    }
}

impl FromIterator<Document> for DocumentArray {
    fn from_iter<I: IntoIterator<Item = Document>>(iter: I) -> Self {
        DocumentArray {
            docs: iter.into_iter().collect(),
        }
    }
}

impl Extend<Document> for DocumentArray {
    fn extend<I: IntoIterator<Item = Document>>(&mut self, iter: I) {
        self.docs.extend(iter)
    }
}

impl IntoIterator for DocumentArray {
    type Item = Document;
    type IntoIter = std::vec::IntoIter<Document>;
    fn into_iter(self) -> Self::IntoIter {
        self.docs.into_iter()
    }
}

impl<'a> IntoIterator for &'a DocumentArray {
    type Item = &'a Document;
    type IntoIter = std::slice::Iter<'a, Document>;
    fn into_iter(self) -> Self::IntoIter {
        self.docs.iter()
    }
}

impl std::ops::Index<usize> for DocumentArray {
    type Output = Document;
    fn index(&self, i: usize) -> &Document {
        &self.docs[i]
    }
}

impl std::ops::IndexMut<usize> for DocumentArray {
    fn index_mut(&mut self, i: usize) -> &mut Document {
        &mut self.docs[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_by_id_joins_copies_and_keeps_first_order() {
        let mut a = Document::from_text("a");
        a.id = "1".into();
        a.matches.push(Document::from_text("m1"));
        let mut b = Document::from_text("b");
        b.id = "2".into();
        let mut a2 = Document::new();
        a2.id = "1".into();
        a2.matches.push(Document::from_text("m2"));
        a2.embedding = Some(crate::document::NdArray::from_f32(&[1.0]));

        let merged = DocumentArray::merge_by_id([vec![a, b].into(), vec![a2].into()]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id, "1");
        assert_eq!(merged[0].text.as_deref(), Some("a"));
        assert_eq!(merged[0].matches.len(), 2);
        assert!(merged[0].embedding.is_some());
        assert_eq!(merged[1].id, "2");
    }
}
