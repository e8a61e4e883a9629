//! `Tokenizer`: a streaming executor. For each document it yields one document per word (or
//! per sentence) of its text, as it goes, with an optional delay before each: what a language
//! model's endpoint looks like to its clients, tokens arriving one by one. Each yielded
//! document carries the token as `text`, the input's id as `parent_id` and its position in
//! `tags.position`. Bound to every endpoint (its handler is the default one).

use crate::document::Document;
use crate::executor::builtin::sentencizer::sentences;
use crate::executor::{
    BoxError, DEFAULT_ENDPOINT, Executor, HandlerError, Metas, Requests, StreamCall,
};
use futures::{Stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// Streams a document per word of each document's text (a generator endpoint).
pub struct Tokenizer {
    unit: Unit,
    delay: Duration,
}

/// What one yielded document holds.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Unit {
    #[default]
    Word,
    Sentence,
}

/// The tokenizer's `with:`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// `word` (the default) or `sentence`.
    #[serde(default)]
    unit: Unit,
    /// Milliseconds to wait before each document is yielded.
    #[serde(default)]
    delay_ms: u64,
}

/// Per request: `parameters.delay_ms` overrides the executor's delay.
#[derive(serde::Deserialize)]
struct Parameters {
    delay_ms: Option<u64>,
}

impl Executor for Tokenizer {
    const NAME: &'static str = "Tokenizer";
    const SUMMARY: &'static str =
        "streams a document per word (or sentence) of each text, with an optional delay";
    type Args = Args;

    fn new(args: Args, _: &Metas) -> Result<Self, BoxError> {
        Ok(Tokenizer {
            unit: args.unit,
            delay: Duration::from_millis(args.delay_ms),
        })
    }

    fn requests(r: &mut Requests<Self>) {
        r.on_stream(DEFAULT_ENDPOINT, Self::tokenize);
    }
}

impl Tokenizer {
    fn tokenize(
        self: Arc<Self>,
        call: StreamCall<Parameters>,
    ) -> impl Stream<Item = Result<Document, HandlerError>> + use<> {
        let text = call.doc.text.unwrap_or_default();
        let tokens: Vec<String> = match self.unit {
            Unit::Word => text.split_whitespace().map(str::to_string).collect(),
            Unit::Sentence => sentences(&text),
        };
        let delay = call
            .parameters
            .delay_ms
            .map_or(self.delay, Duration::from_millis);
        let parent = call.doc.id;
        futures::stream::iter(tokens.into_iter().enumerate()).then(move |(position, token)| {
            let parent = parent.clone();
            async move {
                tokio::time::sleep(delay).await;
                let mut doc = Document::from_text(token);
                doc.parent_id = Some(parent);
                doc.tags.insert("position".into(), position.into());
                Ok(doc)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_a_document_per_word_in_order_then_ends() {
        let tokenizer = Arc::new(Tokenizer {
            unit: Unit::Word,
            delay: Duration::ZERO,
        });
        let mut doc = Document::from_text("streams arrive  one word\tat a time");
        doc.id = "p".into();
        let call = StreamCall {
            doc,
            parameters: Parameters { delay_ms: None },
            endpoint: "/x".into(),
            metas: Default::default(),
        };
        let docs: Vec<Document> = tokenizer.tokenize(call).map(|d| d.unwrap()).collect().await;
        let words: Vec<&str> = docs.iter().map(|d| d.text.as_deref().unwrap()).collect();
        assert_eq!(
            words,
            ["streams", "arrive", "one", "word", "at", "a", "time"]
        );
        assert_eq!(docs[6].tags["position"], 6);
        assert!(docs.iter().all(|d| d.parent_id.as_deref() == Some("p")));
    }
}
