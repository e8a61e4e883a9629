//! Gathered writes: a connection whose small writes wait for the end of the runtime's current
//! turn and then go out together, in one `write`.
//!
//! Why. hyper and h2 flush each part of a gRPC call as it is ready: a request's HEADERS as soon
//! as the call starts, its DATA once the body's task has run; an answer's HEADERS and DATA, then
//! its trailers once the response stream has said it ended. Each flush is a `write` here and a
//! wake-up on the other side (a read, an epoll wait, a pass through h2), though all of them were
//! ready within microseconds of each other, in the same turn of the runtime. A 1-document
//! request through a Flow paid four writes in the gateway and two wake-ups in the executor.
//!
//! How. Writes up to [`GATHER_LIMIT`] bytes are kept. The first flush that finds some puts its
//! task at the back of the runtime's queue (it wakes itself and says Pending), so that every
//! task that is ready now runs first; the next flush writes all that was kept, with whatever
//! those tasks added. It is Nagle's idea bounded by one pass over the ready tasks instead of a
//! peer's ACK: nothing waits for the network or a timer, and when no other task is ready the
//! write is only one poll later. A large write is not copied: it goes out at once, behind what
//! was kept, in one vectored write.
//!
//! Where. Every connection we dial (the gateway's to executors, the client's to a gateway) and
//! the gateway's gRPC face. Not an executor's server: a handler may run on its thread, and an
//! answer must not wait behind the next request's handler (`ServeOptions::gather_writes`).
//!
//! It owns no protocol: it sees bytes, and must not reorder or drop any.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes up to this many bytes (with what is kept) are kept for the next flush: more than a
/// small request's frames, less than a copy that would cost more than the `write` it saves.
const GATHER_LIMIT: usize = 16 * 1024;

/// A connection (`io`) whose small writes are gathered until the runtime's turn ends (see the
/// module's comment).
pub struct Gathered<IO> {
    io: IO,
    kept: Vec<u8>,
    /// Whether the turn in which bytes were kept has ended: they go out at the next flush.
    waited: bool,
}

impl<IO> Gathered<IO> {
    pub fn new(io: IO) -> Self {
        Gathered {
            io,
            kept: Vec::new(),
            waited: false,
        }
    }
}

impl<IO: AsyncWrite + Unpin> Gathered<IO> {
    /// Keeps `bufs` when they fit with what is kept; else writes what was kept and then
    /// `bufs`, in as few writes as the socket takes. The count is of `bufs`' bytes taken.
    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.kept.len() + total <= GATHER_LIMIT {
            for buf in bufs {
                self.kept.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(total));
        }
        while !self.kept.is_empty() {
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(&self.kept));
            all.extend_from_slice(bufs);
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            if n < self.kept.len() {
                self.kept.drain(..n);
                continue;
            }
            let of_bufs = n - self.kept.len();
            self.kept.clear();
            if of_bufs > 0 {
                return Poll::Ready(Ok(of_bufs));
            }
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    /// Writes what was kept, ahead of anything else.
    fn poll_write_kept(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.kept.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.kept))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.kept.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Gathered<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Gathered<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.kept.is_empty() {
            // The first flush that finds bytes kept waits for the turn to end; other tasks'
            // writes of this turn join them meanwhile.
            if !this.waited {
                // Back of the run queue: every task ready now runs before this flush ends.
                this.waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_write_kept(cx))?;
            this.waited = false;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_kept(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Gathered<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts the writes that reach the socket.
    struct CountWrites<IO> {
        io: IO,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl<IO: AsyncWrite + Unpin> AsyncWrite for CountWrites<IO> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Pin::new(&mut self.io).poll_write(cx, buf)
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    fn counted() -> (
        Gathered<CountWrites<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let (near, far) = tokio::io::duplex(1 << 20);
        let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let io = CountWrites {
            io: near,
            writes: writes.clone(),
        };
        (Gathered::new(io), far, writes)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn what_is_written_before_the_turn_ends_joins_the_waiting_flush() {
        let (mut near, mut far, writes) = counted();
        // As h2's connection task: HEADERS written and flushed, then (woken by the body's
        // task, before the turn ended) DATA.
        std::future::poll_fn(|cx| {
            let headers = Pin::new(&mut near).poll_write(cx, b"headers;");
            assert!(matches!(headers, Poll::Ready(Ok(8))));
            assert!(Pin::new(&mut near).poll_flush(cx).is_pending());
            assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 0);
            assert!(matches!(
                Pin::new(&mut near).poll_write(cx, b"data"),
                Poll::Ready(Ok(4))
            ));
            Poll::Ready(())
        })
        .await;
        near.flush().await.unwrap();
        assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
        let mut got = vec![0u8; 12];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"headers;data");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn kept_bytes_wait_for_the_turn_and_then_go_out_in_order() {
        let (mut near, mut far, writes) = counted();
        near.write_all(b"one,").await.unwrap();
        near.write_all(b"two,").await.unwrap();
        assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 0);
        near.flush().await.unwrap();
        assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
        let big = vec![7u8; 3 * GATHER_LIMIT];
        near.write_all(b"three,").await.unwrap();
        near.write_all(&big).await.unwrap();
        near.flush().await.unwrap();
        near.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..14], b"one,two,three,");
        assert_eq!(&got[14..], &big[..]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_the_socket_holds_up_finishes_once_the_peer_reads() {
        let (near, mut far) = tokio::io::duplex(8);
        let mut near = Gathered::new(near);
        near.write_all(b"more than eight bytes").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 21];
            far.read_exact(&mut got).await.unwrap();
            got
        });
        near.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), b"more than eight bytes");
    }
}
