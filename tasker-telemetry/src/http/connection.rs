//! What [`MetricsServer`](super::MetricsServer) puts between a TCP connection and hyper.
//!
//! hyper's HTTP/1 parser takes a bare LF as a line end, as RFC 9112 §2.2 allows a recipient to.
//! The server is stricter, as the RFC also allows: a request whose head has a line ending in LF
//! alone is answered `400 Bad Request`. A proxy in front that reads such a head differently
//! cannot then smuggle a second request past it. [`StrictLineEnds`] turns every bare LF in a
//! request head into a NUL byte, which no part of a head may hold, so that hyper's parser
//! rejects the head and answers 400 itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose request heads have their bare LFs replaced (see the module docs).
///
/// The wrapper cannot tell a body from the next head, so every byte read is taken as part of a
/// head: the server answers only `GET` and `HEAD`, which carry no body. A body sent anyway
/// (with a `405` to come) may have its LFs replaced; nothing reads it.
pub(super) struct StrictLineEnds<S> {
    inner: S,
    /// Whether the last byte read was a CR.
    after_cr: bool,
}

impl<S> StrictLineEnds<S> {
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            after_cr: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StrictLineEnds<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if polled.is_ready() {
            let mut after_cr = this.after_cr;
            for byte in &mut buf.filled_mut()[before..] {
                if *byte == b'\n' && !after_cr {
                    *byte = 0;
                }
                after_cr = *byte == b'\r';
            }
            this.after_cr = after_cr;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StrictLineEnds<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::StrictLineEnds;

    /// `first` then `second` through the wrapper, as two reads.
    fn through(first: &[u8], second: &[u8]) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut out = Vec::new();
            let mut strict = StrictLineEnds::new(first.chain(second));
            strict.read_to_end(&mut out).await.unwrap();
            out
        })
    }

    #[test]
    fn bare_lfs_become_nul_and_crlfs_stay_also_across_reads() {
        assert_eq!(
            through(b"GET / HTTP/1.1\r", b"\nHost: a\n\r\n"),
            b"GET / HTTP/1.1\r\nHost: a\0\r\n"
        );
        assert_eq!(through(b"\n\n", b"\r\n"), b"\0\0\r\n");
    }
}
