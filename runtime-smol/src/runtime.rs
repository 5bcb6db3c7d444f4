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

/// The smol runtime: tasks on [`executor`], one worker thread per core.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

/// The executor every [`SmolRuntime`] task runs on: started on first use with one worker
/// thread per core (`SMOL_THREADS` overrides the count). smol's global executor would run on
/// one thread unless `SMOL_THREADS` were set before its first use, and then 100 concurrent
/// sessions share one core (BENCHMARKS.md, komle-load); the daemon, the demo and the tests all
/// get every core this way, without touching the environment.
pub fn executor() -> &'static smol::Executor<'static> {
    static EXECUTOR: std::sync::OnceLock<smol::Executor<'static>> = std::sync::OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let threads = std::env::var("SMOL_THREADS")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        for i in 0..threads {
            // A worker that cannot start leaves the others (and `block_on` callers) working.
            let _ = std::thread::Builder::new()
                .name(format!("komle-smol-{i}"))
                .spawn(|| smol::block_on(executor().run(smol::future::pending::<()>())));
        }
        smol::Executor::new()
    })
}

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
        executor().spawn(future)
    }

    fn is_finished(task: &smol::Task<()>) -> bool {
        task.is_finished()
    }
}
