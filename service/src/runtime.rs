//! The small interfaces between the one session driver and an async runtime, in the shape of
//! quinn's `Runtime` trait: [`Runtime`] is what the driver needs (clock, timers, the upstream
//! connection), [`ServerRuntime`] what the listener and the assembly need on top (sockets,
//! tasks). `komle-smol` and `komle-tokio` implement both; the transcript runner in
//! `komle-conformance` implements [`Runtime`] in memory with a virtual clock.
//!
//! Streams are `futures-io` streams so TLS (futures-rustls) and the driver are written once;
//! tokio's sockets are adapted with `tokio-util`'s compat layer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use rustls::ClientConfig;

use crate::tls_io::ConnectError;

pub use crate::contracts::BoxFuture;

/// What the one session [driver](crate::driver) needs: a clock, timers and an upstream
/// connection with implicit TLS. Implemented by [`ServerRuntime`]s (smol, tokio) through
/// [`tls_io`](crate::tls_io), and by the transcript runner in memory with a virtual clock.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connection to the MTA or POP3 server, TLS done.
    type Upstream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The current time; a virtual clock in transcript replay.
    fn now(&self) -> Instant;

    /// Completes at `at` (at once when it has passed).
    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()>;

    /// TCP to `host:port` plus the TLS handshake with `tls` (server certificate checked,
    /// A_2011), all within `timeout`.
    fn connect_upstream(
        &self,
        tls: Arc<ClientConfig>,
        host: String,
        port: u16,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Self::Upstream, ConnectError>>;

    /// The server's end-entity certificate (DER) of an established upstream connection, for
    /// the Konnektor's VerifyCertificate (A_2075-01); `None` where there is none (in memory).
    fn server_certificate(upstream: &Self::Upstream) -> Option<Vec<u8>>;
}

/// What the listener and the assembly need beyond the driver's [`Runtime`]: sockets and tasks.
///
/// Every method is cheap to call; the futures returned own what they need (`'static`) so a
/// caller can hold them across `await`s of other futures.
pub trait ServerRuntime: Runtime {
    /// A connected TCP stream (no delay set), as `futures-io` traits.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// A spawned task. Dropping it cancels the task: a session task cut off at shutdown must
    /// not live on holding message content (A_2005).
    type Task: Future<Output = ()> + Unpin + Send + 'static;

    /// Opens TCP to `host:port` (a name, IPv4 or bare IPv6 literal).
    fn connect(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>>;

    /// Binds a listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Listener>>;

    /// The address a listener is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// Accepts the next client.
    fn accept<'a>(
        &self,
        listener: &'a Self::Listener,
    ) -> BoxFuture<'a, io::Result<(Self::Tcp, SocketAddr)>>;

    /// Runs `future` as a task of its own (on any worker thread of the runtime).
    fn spawn(&self, future: BoxFuture<'static, ()>) -> Self::Task;

    /// Whether a spawned task has completed (so the listener can forget it).
    fn is_finished(task: &Self::Task) -> bool;
}

/// `future`, or `None` once `at` has come: a bound on a write or a handshake.
pub async fn within<R: Runtime, T>(
    runtime: &R,
    at: Instant,
    future: impl Future<Output = T>,
) -> Option<T> {
    let sleep = runtime.sleep_until(at);
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep.await;
        None
    })
    .await
}
