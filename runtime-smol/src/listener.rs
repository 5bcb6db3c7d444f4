//! The listener loop shared by the SMTP and POP3 proxies: accepts clients (implicit TLS),
//! limits concurrent sessions, runs one task per connection and shuts down gracefully.
//!
//! Over the limit a client still gets a TLS handshake and then the protocol's "too many
//! sessions" reply, so its mail program shows a reason and retries later instead of reporting a
//! broken connection. Those polite refusals are bounded too (as many at a time as sessions):
//! beyond that a connection is closed at once, so a flood of connections cannot pile up tasks
//! and file descriptors waiting for handshakes (LIMITS.md). On shutdown the listener stops accepting at once; running sessions may
//! finish within a grace period, then they are cut off.
//!
//! An optional limit per client IP address ([`AddressSlots`], shared with komle-tokio) keeps one host from holding all
//! sessions; a client over it is treated exactly like one over the overall limit.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_lite::{AsyncWriteExt, future};
use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;
use smol::lock::Semaphore;
use smol::net::{TcpListener, TcpStream};

use komle_service::limits::{AddressSlots, ServerLimits};

use crate::tls_stream::{self, ClientStream};

/// A bound listener for one protocol.
pub struct Listener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ServerLimits,
    /// "SMTP" or "POP3", for log lines.
    protocol: &'static str,
    /// What a client over the session limit is told before the connection is closed.
    refusal: &'static [u8],
    /// Connection tasks still running.
    live: Arc<AtomicUsize>,
}

/// Counts a running connection task; the count drops with the guard, so a task that is
/// cancelled (dropped at shutdown) is uncounted as well as one that ends.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(counter: &Arc<AtomicUsize>) -> Live {
        counter.fetch_add(1, Ordering::SeqCst);
        Live(counter.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Correlation ids for log lines: random per process start, counting per session, so ids from
/// different runs do not collide in aggregated logs.
pub fn session_id() -> String {
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let base = *BASE.get_or_init(rand::random::<u32>);
    format!("{base:08x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Listener {
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        limits: ServerLimits,
        protocol: &'static str,
        refusal: &'static [u8],
    ) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            acceptor: TlsAcceptor::from(tls),
            limits,
            protocol,
            refusal,
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The number of client connections whose task is still running (TLS handshake, session
    /// or refusal), readable while the listener runs: 0 once every client is gone, which is
    /// how tests prove that no session task was left behind.
    pub fn live_connections(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until `shutdown` completes and runs `session(stream, peer, id)` per client after
    /// the TLS handshake; then waits up to the grace period for running sessions. Returns how
    /// many sessions had to be cut off.
    pub async fn run<F, Fut>(
        self,
        shutdown: impl Future<Output = ()>,
        session: F,
    ) -> io::Result<usize>
    where
        F: Fn(ClientStream, SocketAddr, String) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let protocol = self.protocol;
        let slots = Arc::new(Semaphore::new(self.limits.max_sessions));
        let refusal_slots = Arc::new(Semaphore::new(self.limits.max_sessions.max(1)));
        let address_slots = AddressSlots::new(self.limits.max_sessions_per_address);
        let mut tasks: Vec<smol::Task<()>> = Vec::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let local = self.listener.local_addr()?;
        let per_address = self
            .limits
            .max_sessions_per_address
            .map_or_else(String::new, |n| format!(", max {n} per client address"));
        log::info!(
            "{protocol} listening on {local} (implicit TLS, max {} sessions{per_address})",
            self.limits.max_sessions
        );
        loop {
            let accepted = future::or(async { Some(self.listener.accept().await) }, async {
                (&mut shutdown).await;
                None
            })
            .await;
            let (tcp, peer) = match accepted {
                None => break,
                Some(Ok(pair)) => pair,
                Some(Err(e)) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    log::warn!("{protocol} accept failed: {e}");
                    smol::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tasks.retain(|t| !t.is_finished());
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let handshake = self.limits.handshake_timeout;
            // The address slot first: a client over its own limit must not take (and then
            // hand back) one of the overall slots.
            let admitted = match address_slots.try_acquire(peer.ip()) {
                None => Err("too many sessions from this address"),
                Some(address) => match slots.try_acquire_arc() {
                    Some(permit) => Ok((permit, address)),
                    None => Err("too many sessions"),
                },
            };
            match admitted {
                Ok((permit, address)) => {
                    let session = session.clone();
                    let live = Live::new(&self.live);
                    tasks.push(smol::spawn(async move {
                        let id = session_id();
                        match tls_stream::accept(&acceptor, tcp, handshake).await {
                            Ok(client) => session(client, peer, id).await,
                            Err(e) => log::info!("session={id} peer={peer} TLS accept failed: {e}"),
                        }
                        drop(permit);
                        drop(address);
                        drop(live);
                    }));
                }
                Err(why) => match refusal_slots.try_acquire_arc() {
                    Some(permit) => {
                        log::warn!("{protocol} session from {peer} refused: {why}");
                        let live = Live::new(&self.live);
                        let refusal = self.refusal;
                        tasks.push(smol::spawn(async move {
                            refuse(tcp, acceptor, handshake, refusal).await;
                            drop(permit);
                            drop(live);
                        }));
                    }
                    None => {
                        log::debug!("{protocol} connection from {peer} closed: {why}");
                        drop(tcp);
                    }
                },
            }
        }
        drop(self.listener);
        tasks.retain(|t| !t.is_finished());
        log::info!(
            "{protocol} listener on {local} closed; waiting up to {:?} for {} session(s)",
            self.limits.grace,
            tasks.len()
        );
        let deadline = Instant::now() + self.limits.grace;
        let mut cut = 0;
        for task in tasks {
            let finished = future::or(
                async {
                    task.await;
                    true
                },
                async {
                    smol::Timer::at(deadline).await;
                    false
                },
            )
            .await;
            // A task that did not finish was dropped (cancelled) by `or` above.
            if !finished {
                cut += 1;
            }
        }
        if cut > 0 {
            log::warn!("{protocol} shutdown: {cut} session(s) cut off after the grace period");
        }
        Ok(cut)
    }
}

async fn refuse(tcp: TcpStream, acceptor: TlsAcceptor, handshake: Duration, refusal: &[u8]) {
    if let Ok(mut client) = tls_stream::accept(&acceptor, tcp, handshake).await {
        let _ = future::or(
            async {
                let _ = client.write_all(refusal).await;
                let _ = client.close().await;
            },
            async {
                smol::Timer::after(handshake).await;
            },
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    //! The listener's own limits (LIMITS.md): handshake timeout and bounded refusals.

    use std::io::Read;
    use std::net::TcpStream as StdTcp;

    use futures_lite::AsyncReadExt;

    use super::*;
    use crate::test_pki;

    const GREETING: &[u8] = b"hello\r\n";
    const REFUSAL: &[u8] = b"too many\r\n";

    /// A listener whose sessions greet and then wait for the client to close.
    fn start(
        pki: &test_pki::TestPki,
        max_sessions: usize,
        handshake_timeout: Duration,
    ) -> (
        SocketAddr,
        smol::channel::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let tls = komle_service::tls::server_config(&pki.server_cert(), &pki.server_key()).unwrap();
        let limits = ServerLimits {
            max_sessions,
            max_sessions_per_address: None,
            handshake_timeout,
            grace: Duration::from_millis(200),
        };
        let listener = smol::block_on(Listener::bind(
            "127.0.0.1:0".parse().unwrap(),
            tls,
            limits,
            "TEST",
            REFUSAL,
        ))
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            smol::block_on(async {
                let _ = listener
                    .run(
                        async move {
                            let _ = stop_rx.recv().await;
                        },
                        |mut client: ClientStream, _, _| async move {
                            let _ = client.write_all(GREETING).await;
                            let _ = client.flush().await;
                            let mut buf = [0u8; 64];
                            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
                        },
                    )
                    .await;
            })
        });
        (addr, stop_tx, thread)
    }

    /// What a TLS client reads first (up to a line), or "" when the connection ended.
    fn first_line(pki: &test_pki::TestPki, addr: SocketAddr) -> Vec<u8> {
        smol::block_on(async {
            let config = komle_service::tls::client_config(Some(&pki.ca())).unwrap();
            let Ok(mut c) =
                tls_stream::connect(config, "127.0.0.1", addr.port(), Duration::from_secs(5)).await
            else {
                return Vec::new();
            };
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b"\n") {
                match c.read(&mut buf).await {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            got
        })
    }

    /// True when the server closed a raw TCP connection (EOF or reset) within `within`.
    fn closed_by_server(sock: &mut StdTcp, within: Duration) -> bool {
        sock.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 16];
        match sock.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    #[test]
    fn a_client_that_never_handshakes_loses_its_slot() {
        let pki = test_pki::make("Listener CA");
        let (addr, stop, thread) = start(&pki, 1, Duration::from_millis(300));
        // A connection that never says a word holds the only session slot ...
        let mut silent = StdTcp::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(first_line(&pki, addr), REFUSAL);
        // ... until its handshake time is up: then it is closed and the slot is free again.
        assert!(closed_by_server(&mut silent, Duration::from_secs(5)));
        assert_eq!(first_line(&pki, addr), GREETING);
        let _ = stop.send_blocking(());
        thread.join().unwrap();
    }

    #[test]
    fn refusals_beyond_the_refusal_slots_are_closed_at_once() {
        let pki = test_pki::make("Listener CA");
        let (addr, stop, thread) = start(&pki, 1, Duration::from_secs(30));
        // One silent connection takes the session slot, a second one the refusal slot; both
        // would be held for the 30 s handshake time.
        let mut session = StdTcp::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut refused = StdTcp::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Every further connection is closed at once instead of waiting in a task of its own.
        for _ in 0..20 {
            let mut flood = StdTcp::connect(addr).unwrap();
            assert!(closed_by_server(&mut flood, Duration::from_secs(5)));
        }
        // The two held connections are still open.
        assert!(!closed_by_server(&mut session, Duration::from_millis(100)));
        assert!(!closed_by_server(&mut refused, Duration::from_millis(100)));
        let _ = stop.send_blocking(());
        thread.join().unwrap();
    }
}
