//! Dynamic batching (Jina 3's `uses_dynamic_batching`): small requests to one endpoint are
//! gathered into one handler call, which is what makes a model efficient under many small
//! requests.
//!
//! A [`Batcher`] owns a queue per endpoint. Its task waits for a first request, then gathers
//! more until they hold `preferred_batch_size` documents or `timeout` ms have passed since the
//! first one arrived; requests with other parameters wait for a batch of their own. It calls
//! the handler once on all their documents, in arrival order, and hands each request its own
//! slice of the answer. When the batched call fails, each request of the batch is run alone,
//! so a bad request fails alone and the others are answered. Batches of one endpoint run one
//! after the other.
//!
//! It knows nothing of the wire: the server decodes a request's documents, hands them here
//! with its parameters, and encodes what comes back.

use super::{HandlerError, Parameters};
use crate::document::DocumentArray;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How one endpoint batches: Jina 3's keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBatching {
    /// The handler is called once this many documents wait (or when `timeout` passes).
    pub preferred_batch_size: usize,
    /// Milliseconds the first request of a batch waits for others (Jina's default: 10,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl DynamicBatching {
    /// Refuses settings that cannot batch.
    pub fn check(&self) -> Result<(), String> {
        if self.preferred_batch_size == 0 {
            return Err("preferred_batch_size: must be at least 1".into());
        }
        Ok(())
    }
}

/// Runs the handler on a batch: the documents and the parameters they share.
pub(super) type CallHandler = Arc<
    dyn Fn(DocumentArray, Parameters) -> BoxFuture<'static, Result<DocumentArray, HandlerError>>
        + Send
        + Sync,
>;

/// One request waiting for its batch.
struct Waiting {
    docs: DocumentArray,
    parameters: Parameters,
    answer: oneshot::Sender<Result<DocumentArray, HandlerError>>,
}

/// The queue of one endpoint, and the task that empties it.
#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Waiting>,
}

impl Batcher {
    /// Starts the batching task of one endpoint (on the current Tokio runtime).
    pub(super) fn start(settings: DynamicBatching, call: CallHandler) -> Batcher {
        // Bounded: the gateway's prefetch already bounds what is in flight; this only keeps a
        // runaway client of a standalone executor from queueing without end.
        let (queue, receiver) = mpsc::channel(settings.preferred_batch_size.max(1) * 64);
        tokio::spawn(run(settings, call, receiver));
        Batcher { queue }
    }

    /// Queues a request's documents and waits for its answer.
    pub(super) async fn submit(
        &self,
        docs: DocumentArray,
        parameters: Parameters,
    ) -> Result<DocumentArray, HandlerError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || HandlerError::new("RuntimeError", "the batching queue has stopped");
        self.queue
            .send(Waiting {
                docs,
                parameters,
                answer,
            })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn run(settings: DynamicBatching, call: CallHandler, mut queue: mpsc::Receiver<Waiting>) {
    let timeout = Duration::from_millis(settings.timeout);
    // Requests that came while a batch of other parameters was gathered.
    let mut held: VecDeque<Waiting> = VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(w) => w,
            None => match queue.recv().await {
                Some(w) => w,
                None => return,
            },
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut docs = first.docs.len();
        let mut batch = vec![first];
        let mut still_held = VecDeque::new();
        while let Some(w) = held.pop_front() {
            match docs < settings.preferred_batch_size && w.parameters == batch[0].parameters {
                true => {
                    docs += w.docs.len();
                    batch.push(w);
                }
                false => still_held.push_back(w),
            }
        }
        held = still_held;
        while docs < settings.preferred_batch_size {
            let next = tokio::select! {
                next = queue.recv() => next,
                _ = tokio::time::sleep_until(deadline) => break,
            };
            match next {
                Some(w) if w.parameters == batch[0].parameters => {
                    docs += w.docs.len();
                    batch.push(w);
                }
                Some(w) => held.push_back(w),
                None => break,
            }
        }
        answer(batch, &call).await;
    }
}

/// Calls the handler once for the whole batch and gives each request its part; if that call
/// fails, runs each request alone so that only the bad ones fail.
async fn answer(batch: Vec<Waiting>, call: &CallHandler) {
    if batch.len() == 1 {
        let w = batch.into_iter().next().expect("one");
        let _ = w.answer.send(call(w.docs, w.parameters).await);
        return;
    }
    let parameters = batch[0].parameters.clone();
    let sizes: Vec<usize> = batch.iter().map(|w| w.docs.len()).collect();
    let total: usize = sizes.iter().sum();
    let all: DocumentArray = batch.iter().flat_map(|w| w.docs.iter().cloned()).collect();
    match call(all, parameters).await {
        Ok(answered) if answered.len() == total => {
            let mut answered = answered.into_vec().into_iter();
            for (w, size) in batch.into_iter().zip(sizes) {
                let part: DocumentArray = answered.by_ref().take(size).collect();
                let _ = w.answer.send(Ok(part));
            }
        }
        Ok(answered) => {
            let e = HandlerError::new(
                "BatchError",
                format!(
                    "a batched handler must answer one document per document: it got {total} and returned {}",
                    answered.len()
                ),
            );
            for w in batch {
                let _ = w.answer.send(Err(e.clone()));
            }
        }
        Err(_) => {
            for w in batch {
                let _ = w.answer.send(call(w.docs, w.parameters).await);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use std::sync::Mutex;

    /// A handler that records the size of each call, upper-cases texts and refuses "bad".
    fn recording() -> (CallHandler, Arc<Mutex<Vec<usize>>>) {
        let calls = Arc::new(Mutex::new(vec![]));
        let seen = calls.clone();
        let call: CallHandler = Arc::new(move |mut docs: DocumentArray, _| {
            seen.lock().unwrap().push(docs.len());
            Box::pin(async move {
                if docs.iter().any(|d| d.text.as_deref() == Some("bad")) {
                    return Err(HandlerError::new("ValueError", "bad document"));
                }
                for d in docs.iter_mut() {
                    d.text = d.text.take().map(|t| t.to_uppercase());
                }
                Ok(docs)
            })
        });
        (call, calls)
    }

    fn one(text: &str) -> DocumentArray {
        vec![Document::from_text(text)].into()
    }

    #[tokio::test]
    async fn small_requests_share_calls_and_a_bad_one_fails_alone() {
        let (call, calls) = recording();
        let settings = DynamicBatching {
            preferred_batch_size: 4,
            timeout: 1000,
        };
        let batcher = Batcher::start(settings, call);
        let texts: Vec<String> = (0..8)
            .map(|i| match i {
                5 => "bad".to_string(),
                i => format!("doc {i}"),
            })
            .collect();
        let answers = futures::future::join_all(
            texts
                .iter()
                .map(|t| batcher.submit(one(t), Parameters::new())),
        )
        .await;
        for (text, answer) in texts.iter().zip(&answers) {
            match text.as_str() {
                "bad" => assert!(answer.is_err()),
                t => assert_eq!(
                    answer.as_ref().unwrap()[0].text.as_deref(),
                    Some(t.to_uppercase().as_str())
                ),
            }
        }
        // Two batches of four; the one holding "bad" is then run request by request.
        assert_eq!(*calls.lock().unwrap(), [4, 4, 1, 1, 1, 1]);
    }

    #[tokio::test]
    async fn the_timeout_sends_a_short_batch_and_parameters_batch_apart() {
        let (call, calls) = recording();
        let settings = DynamicBatching {
            preferred_batch_size: 100,
            timeout: 50,
        };
        let batcher = Batcher::start(settings, call);
        let mut other = Parameters::new();
        other.insert("k".into(), 1.into());
        let started = std::time::Instant::now();
        let (a, b, c) = tokio::join!(
            batcher.submit(one("a"), Parameters::new()),
            batcher.submit(one("b"), other.clone()),
            batcher.submit(one("c"), Parameters::new()),
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(50));
        let mut sizes = calls.lock().unwrap().clone();
        sizes.sort();
        assert_eq!(sizes, [1, 2], "a and c together, b apart");
    }
}
