//! [`Runtime`] on tokio: tokio's sockets seen through `tokio-util`'s compat layer as
//! `futures-io` streams (so TLS and the driver are the shared ones), tokio's timers, and tasks
//! spawned on the runtime the caller runs. This and the entry points are all of the
//! tokio-specific code.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use komle_service::runtime::{BoxFuture, Runtime, ServerRuntime};
use komle_service::tls_io::{self, ConnectError, UpstreamStream};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// The tokio runtime whose handle was current when this value was made.
#[derive(Clone, Debug)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime of the calling task or `block_on`. Panics outside a tokio runtime, like
    /// `tokio::spawn`.
    pub fn current() -> TokioRuntime {
        TokioRuntime {
            handle: Handle::current(),
        }
    }

    /// A given runtime.
    pub fn from_handle(handle: Handle) -> TokioRuntime {
        TokioRuntime { handle }
    }
}

/// A spawned task that is aborted when dropped (tokio detaches on drop; a session cut off at
/// shutdown must not live on with message content, A_2005).
pub struct AbortOnDrop(JoinHandle<()>);

impl Future for AbortOnDrop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A panicked or aborted task is finished as well.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runtime for TokioRuntime {
    type Upstream = UpstreamStream<TokioRuntime>;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()> {
        let _guard = self.handle.enter();
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at)))
    }

    fn connect_upstream(
        &self,
        tls: Arc<ClientConfig>,
        host: String,
        port: u16,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Self::Upstream, ConnectError>> {
        let rt = self.clone();
        Box::pin(async move { tls_io::connect(&rt, tls, &host, port, timeout).await })
    }

    fn server_certificate(upstream: &Self::Upstream) -> Option<Vec<u8>> {
        komle_service::server_cert_check::end_entity(upstream.get_ref().1).map(<[u8]>::to_vec)
    }
}

impl ServerRuntime for TokioRuntime {
    type Tcp = Compat<TcpStream>;
    type Listener = TcpListener;
    type Task = AbortOnDrop;

    fn connect(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp.compat())
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpListener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(
        &self,
        listener: &'a TcpListener,
    ) -> BoxFuture<'a, io::Result<(Self::Tcp, SocketAddr)>> {
        Box::pin(async move {
            let (tcp, peer) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            Ok((tcp.compat(), peer))
        })
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) -> AbortOnDrop {
        AbortOnDrop(self.handle.spawn(future))
    }

    fn is_finished(task: &AbortOnDrop) -> bool {
        task.0.is_finished()
    }
}
