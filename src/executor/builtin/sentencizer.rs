//! `Sentencizer`: splits each document's text into sentences, one chunk per sentence, with
//! `parent_id` and `granularity` set. Chunk ids are `<parent id>/<n>`, so indexing the same
//! document twice overwrites instead of duplicating. Bound to `/index` and `/update` (a query
//! is searched whole).

use crate::document::Document;
use crate::executor::{BoxError, Call, Executor, HandlerError, Metas, Requests};

/// Splits each document's text into sentence chunks.
pub struct Sentencizer {
    min_chars: usize,
}

/// The sentencizer's `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Shorter sentences (after trimming) are dropped.
    #[serde(default = "two")]
    min_chars: usize,
}

fn two() -> usize {
    2
}

/// Titles that end in a full stop without ending the sentence.
const ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Dr", "St", "Messrs", "Col", "Capt", "Gen", "Rev", "Jr", "Sr", "Prof", "vs",
    "etc",
];

/// Whether the `.` at `dot` ends an abbreviation (a title, or a single initial).
fn is_abbreviation(chars: &[char], dot: usize) -> bool {
    let start = chars[..dot]
        .iter()
        .rposition(|c| !c.is_alphabetic())
        .map_or(0, |p| p + 1);
    let word: String = chars[start..dot].iter().collect();
    ABBREVIATIONS.contains(&word.as_str())
        || (word.chars().count() == 1 && word.chars().all(char::is_uppercase))
}

/// Sentences of `text`: split after `.`, `!` or `?` (and any closing quotes or brackets) that
/// are followed by white space, except after titles such as `Mr.`; line breaks inside a
/// sentence become spaces.
pub(super) fn sentences(text: &str) -> Vec<String> {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = flat.chars().collect();
    let mut out = vec![];
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '.' | '!' | '?') && !(chars[i] == '.' && is_abbreviation(&chars, i)) {
            let mut end = i + 1;
            while end < chars.len()
                && matches!(
                    chars[end],
                    '"' | '\'' | ')' | ']' | '”' | '’' | '.' | '!' | '?'
                )
            {
                end += 1;
            }
            if end == chars.len() || chars[end] == ' ' {
                out.push(
                    chars[start..end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string(),
                );
                start = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    let rest: String = chars[start..].iter().collect::<String>().trim().to_string();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

impl Executor for Sentencizer {
    const NAME: &'static str = "Sentencizer";
    const SUMMARY: &'static str = "splits text into sentence chunks (on /index and /update)";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        Ok(Sentencizer {
            min_chars: args.min_chars,
        })
    }

    fn requests(r: &mut Requests<Self>) {
        r.on(["/index", "/update"], Self::segment);
    }
}

impl Sentencizer {
    fn segment(&self, call: Call<'_>) -> Result<(), HandlerError> {
        for doc in call.docs.iter_mut() {
            let Some(text) = doc.text.as_deref() else {
                continue;
            };
            let level = doc.granularity.unwrap_or(0) + 1;
            let parent = doc.id.clone();
            let chunks: Vec<Document> = sentences(text)
                .into_iter()
                .filter(|s| s.chars().count() >= self.min_chars)
                .enumerate()
                .map(|(n, s)| {
                    let mut chunk = Document::from_text(s);
                    chunk.id = format!("{parent}/{n}");
                    chunk.parent_id = Some(parent.clone());
                    chunk.granularity = Some(level);
                    chunk
                })
                .collect();
            doc.chunks = chunks.into();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::sentences;

    #[test]
    fn splits_after_end_marks_and_quotes() {
        let s = sentences(
            "\"My dear Mr. Bennet,\" said his lady. \"Have you heard?\" Mr.\nBennet replied that he had not. Yes!",
        );
        assert_eq!(
            s,
            [
                "\"My dear Mr. Bennet,\" said his lady.",
                "\"Have you heard?\"",
                "Mr. Bennet replied that he had not.",
                "Yes!"
            ]
        );
    }
}
