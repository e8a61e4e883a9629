//! Memory admission at the wire: each gRPC message of a request takes room in its process's
//! [`ByteBudget`] as soon as its 5-byte prefix says how long it is, *before* its bytes are read.
//!
//! tonic reads a whole message into memory before any handler runs, so a handler's own check
//! comes after the cost: ten 64 MB messages on ten streams would be 640 MB before one of them
//! could be refused. Wrapped in [`AdmitMessages`], a request's body hands tonic a message's
//! bytes only once the budget has room for them; until then HTTP/2's flow control holds the
//! sender back (a stream's window, a few MB, is all that waits). The room taken travels with
//! the message: the handler takes it from the request's [`Admitted`] and holds it until its
//! answer is sent.
//!
//! It owns only that: which messages a budget covers and what is refused is the handlers'.

use crate::request::ByteBudget;
use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::sync::OwnedSemaphorePermit;

/// The room taken for a request's messages, in their order, for the handler to take.
#[derive(Clone, Default)]
pub struct Admitted(Arc<Mutex<VecDeque<OwnedSemaphorePermit>>>);

impl Admitted {
    /// The rooms of the request whose extensions are `extensions`, if it came through
    /// [`AdmitMessages`].
    pub fn of(extensions: &http::Extensions) -> Option<Admitted> {
        extensions.get::<Admitted>().cloned()
    }

    /// The room of the next message, in the order they came.
    pub fn next(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().unwrap().pop_front()
    }
}

/// A tower layer for a generated gRPC server: every message of every request takes twice its
/// length from `budget` (as received, and as sent on or answered) before it is read. A
/// message over `limit` is let through at once, for tonic to refuse.
#[derive(Clone)]
pub struct AdmitMessages {
    budget: ByteBudget,
    limit: usize,
}

impl AdmitMessages {
    pub fn new(budget: &ByteBudget, limit: usize) -> AdmitMessages {
        AdmitMessages {
            budget: budget.clone(),
            limit,
        }
    }
}

impl<S> tower::Layer<S> for AdmitMessages {
    type Service = AdmittedService<S>;

    fn layer(&self, inner: S) -> AdmittedService<S> {
        AdmittedService {
            inner,
            admit: self.clone(),
        }
    }
}

/// A gRPC server behind [`AdmitMessages`].
#[derive(Clone)]
pub struct AdmittedService<S> {
    inner: S,
    admit: AdmitMessages,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AdmittedService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for AdmittedService<S>
where
    S: tower::Service<http::Request<AdmittedBody<B>>>,
    B: http_body::Body<Data = Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        let admitted = Admitted::default();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(admitted.clone());
        let body = AdmittedBody {
            inner: body,
            admit: self.admit.clone(),
            admitted,
            state: State::Prefix(BytesMut::new()),
            pending: Bytes::new(),
        };
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

enum State {
    /// Collecting a message's 5-byte prefix (its compression flag and length).
    Prefix(BytesMut),
    /// Waiting for room for the message whose prefix this is.
    Waiting(Bytes, BoxFuture<'static, OwnedSemaphorePermit>),
    /// Handing on the prefix and then `left` bytes of the admitted message.
    Passing { prefix: Option<Bytes>, left: usize },
}

/// A request body whose messages are handed on only once admitted.
pub struct AdmittedBody<B> {
    inner: B,
    admit: AdmitMessages,
    admitted: Admitted,
    state: State,
    /// Bytes read from the wire and not handed on yet.
    pending: Bytes,
}

const PREFIX: usize = 5;

impl<B> http_body::Body for AdmittedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Waiting(prefix, room) => {
                    let permit = ready!(room.as_mut().poll(cx));
                    this.admitted.0.lock().unwrap().push_back(permit);
                    let left = message_length(prefix);
                    this.state = State::Passing {
                        prefix: Some(prefix.clone()),
                        left,
                    };
                    continue;
                }
                State::Passing { prefix, left } => {
                    if let Some(prefix) = prefix.take() {
                        return Poll::Ready(Some(Ok(http_body::Frame::data(prefix))));
                    }
                    if *left == 0 {
                        this.state = State::Prefix(BytesMut::new());
                        continue;
                    }
                    if !this.pending.is_empty() {
                        let n = (*left).min(this.pending.len());
                        *left -= n;
                        let chunk = this.pending.split_to(n);
                        return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
                    }
                }
                State::Prefix(collected) => {
                    if !this.pending.is_empty() {
                        let n = (PREFIX - collected.len()).min(this.pending.len());
                        collected.extend_from_slice(&this.pending.split_to(n));
                        if collected.len() == PREFIX {
                            let prefix = std::mem::take(collected).freeze();
                            let len = message_length(&prefix);
                            this.state = if len > this.admit.limit {
                                // Over the limit: tonic refuses it from its prefix.
                                State::Passing {
                                    prefix: Some(prefix),
                                    left: len,
                                }
                            } else {
                                let budget = this.admit.budget.clone();
                                let bytes = len.saturating_mul(2);
                                let room = Box::pin(async move { budget.admit_bytes(bytes).await });
                                State::Waiting(prefix, room)
                            };
                        }
                        continue;
                    }
                }
            }
            // Nothing to hand on: read more from the wire.
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    // Trailers: the body is over.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None if this.pending.is_empty() => {
                    // The end of the stream: a partial prefix left is tonic's to refuse.
                    return match &mut this.state {
                        State::Prefix(collected) if !collected.is_empty() => {
                            let rest = std::mem::take(collected).freeze();
                            Poll::Ready(Some(Ok(http_body::Frame::data(rest))))
                        }
                        _ => Poll::Ready(None),
                    };
                }
                None => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }
}

/// The length a message's prefix gives (bytes 1 to 4, big-endian).
fn message_length(prefix: &[u8]) -> usize {
    let mut len = &prefix[1..PREFIX];
    len.get_u32() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    type Frames = futures::stream::Iter<
        std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
    >;

    /// A body of these frames.
    fn body(frames: Vec<Vec<u8>>) -> http_body_util::StreamBody<Frames> {
        let frames: Vec<_> = frames
            .into_iter()
            .map(|f| Ok(http_body::Frame::data(Bytes::from(f))))
            .collect();
        http_body_util::StreamBody::new(futures::stream::iter(frames))
    }

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    fn wrap<B>(inner: B, budget: &ByteBudget) -> AdmittedBody<B> {
        AdmittedBody {
            inner,
            admit: AdmitMessages::new(budget, 1 << 20),
            admitted: Admitted::default(),
            state: State::Prefix(BytesMut::new()),
            pending: Bytes::new(),
        }
    }

    #[tokio::test]
    async fn messages_pass_whole_in_order_each_with_its_room_however_the_frames_cut_them() {
        let budget = ByteBudget::new(1 << 20);
        let wire: Vec<u8> = [message(3000), message(10), message(0)].concat();
        // Cut into frames of 7 bytes: prefixes split across frames.
        let frames = wire.chunks(7).map(<[u8]>::to_vec).collect();
        let wrapped = wrap(body(frames), &budget);
        let admitted = wrapped.admitted.clone();
        let out = wrapped.collect().await.unwrap().to_bytes();
        assert!(out == wire, "{} bytes out of {}", out.len(), wire.len());
        assert_eq!(admitted.0.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_message_waits_for_room_before_its_bytes_are_read() {
        let budget = ByteBudget::new(4096);
        let held = budget.admit_bytes(4096).await;
        let mut wrapped = wrap(body(vec![message(1024)]), &budget);
        let first =
            tokio::time::timeout(std::time::Duration::from_millis(50), wrapped.frame()).await;
        assert!(
            first.is_err(),
            "nothing is handed on while the budget is spent"
        );
        drop(held);
        let first = wrapped.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), PREFIX);
    }
}
