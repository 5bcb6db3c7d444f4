//! [`Runtime`] on smol: sockets from `smol::net`, timers from `smol::Timer`, tasks on smol's
//! global executor (which `komle-cm` runs on one thread per core, see `main.rs`). This and the
//! entry points are all of the smol-specific code: the driver, the listener and the assembly
//! are `komle-service`'s and shared with tokio.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use komle_service::runtime::{BoxFuture, Runtime, ServerRuntime};
use komle_service::tls_io::{self, ConnectError, UpstreamStream};
use rustls::ClientConfig;
use smol::net::{TcpListener, TcpStream};

/// The smol runtime (global executor).
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    type Upstream = UpstreamStream<SmolRuntime>;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::at(at).await;
        })
    }

    fn connect_upstream(
        &self,
        tls: Arc<ClientConfig>,
        host: String,
        port: u16,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Self::Upstream, ConnectError>> {
        let rt = *self;
        Box::pin(async move { tls_io::connect(&rt, tls, &host, port, timeout).await })
    }

    fn server_certificate(upstream: &Self::Upstream) -> Option<Vec<u8>> {
        komle_service::server_cert_check::end_entity(upstream.get_ref().1).map(<[u8]>::to_vec)
    }
}

impl ServerRuntime for SmolRuntime {
    type Tcp = TcpStream;
    type Listener = TcpListener;
    type Task = smol::Task<()>;

    fn connect(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
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
    ) -> BoxFuture<'a, io::Result<(TcpStream, SocketAddr)>> {
        Box::pin(async move {
            let (tcp, peer) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            Ok((tcp, peer))
        })
    }

    fn spawn(&self, future: BoxFuture<'static, ()>) -> smol::Task<()> {
        smol::spawn(future)
    }

    fn is_finished(task: &smol::Task<()>) -> bool {
        task.is_finished()
    }
}
