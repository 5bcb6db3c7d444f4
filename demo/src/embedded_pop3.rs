//! The receiving half of the [embedded environment](crate::embedded): komle-cm's real POP3
//! proxy in front of an in-process POP3S server ([`MiniPop3`]) whose one account is the
//! world's test recipient (`single`), plus the way KOM-LE messages get into its maildrop.
//!
//! Kept apart from `embedded.rs` so the SMTP side can grow there independently; `Embedded`
//! only holds the [`Pop3Side`] this module starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::mini_pop3::MiniPop3;
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache};
use komle_core::login_name::LoginName;
use komle_core::pop3::Pop3Config;
use komle_core::secret::SecretBytes;
use komle_core::smtp::ProtectJob;

use komle_service::contracts::Opener;
use komle_service::session::Pop3Context;
use komle_smol::pop3_server::{Pop3Server, ServerLimits};

use crate::embedded::EmbeddedError;
use crate::mail_service_tls::MailServiceTls;

/// How to start the POP3 side.
#[derive(Debug, Clone)]
pub struct Pop3Options {
    /// Port of the POP3 proxy (0: any free port).
    pub port: u16,
    /// Session settings of the proxy (short timeouts in fault tests). The environment's own
    /// POP3 server is added to `session.upstream_allow`.
    pub session: Pop3Config,
    pub max_sessions: usize,
    /// `[pop3] max_sessions_per_address` (default: none).
    pub max_sessions_per_address: Option<usize>,
}

impl Default for Pop3Options {
    fn default() -> Self {
        Self {
            port: 0,
            session: Pop3Config::default(),
            max_sessions: 64,
            max_sessions_per_address: None,
        }
    }
}

/// The running POP3 proxy (its task thread); the MiniPop3 behind it is handed out separately.
pub struct Pop3Side {
    pub proxy_addr: SocketAddr,
    live: Arc<AtomicUsize>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<usize>>>,
}

impl Pop3Side {
    /// Starts a MiniPop3 for `user` with `password` (TLS from `mail`: it requires the client
    /// certificate) and the POP3 proxy (TLS from `proxy_tls`) that connects to it with mutual
    /// TLS and has the Konnektor check its certificate, as towards a KIM provider.
    pub fn start(
        options: &Pop3Options,
        user: &str,
        password: &str,
        mail: &MailServiceTls,
        proxy_tls: &LoopbackTls,
        opener: Arc<dyn Opener>,
    ) -> Result<(MiniPop3, Pop3Side), EmbeddedError> {
        let server = MiniPop3::start("127.0.0.1:0", mail.server.clone(), user, password)
            .map_err(|e| EmbeddedError(format!("POP3 mail service: {e}")))?;
        let mut session = options.session.clone();
        session.upstream_allow =
            crate::embedded::allow_also(&session.upstream_allow, &[server.addr()]);
        let ctx = Pop3Context {
            session,
            upstream_tls: mail.upstream.clone(),
            connect_timeout: Duration::from_secs(10),
            opener,
        };
        let proxy = smol::block_on(Pop3Server::bind(
            komle_smol::runtime::SmolRuntime,
            SocketAddr::from(([127, 0, 0, 1], options.port)),
            proxy_tls.server_config(),
            mail.proxy(ctx),
            ServerLimits {
                max_sessions: options.max_sessions,
                max_sessions_per_address: options.max_sessions_per_address,
                handshake_timeout: Duration::from_secs(10),
                grace: Duration::from_secs(5),
                proxy_protocol: false,
            },
        ))
        .map_err(|e| EmbeddedError(format!("POP3 listener: {e}")))?;
        let proxy_addr = proxy
            .local_addr()
            .map_err(|e| EmbeddedError(format!("POP3 listener: {e}")))?;
        let live = proxy.live_connections();
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            smol::block_on(proxy.run(async move {
                let _ = stop_rx.recv().await;
            }))
        });
        Ok((
            server,
            Pop3Side {
                proxy_addr,
                live,
                stop: Some(stop_tx),
                thread: Some(thread),
            },
        ))
    }

    /// POP3 proxy sessions running now.
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Stops the proxy (sessions get the grace period); returns how many were cut off.
    pub fn stop(&mut self) -> usize {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send_blocking(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(n))) => n,
            _ => 0,
        }
    }
}

impl Drop for Pop3Side {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The login name for `user` at the MiniPop3 on `port` (A_2032 format, no UserId: the
/// practice's SM-B decrypts).
pub fn login_name(user: &str, port: u16) -> String {
    format!("{user}#127.0.0.1:{port}#Praxis#KIM-Demo#Platz1")
}

/// A KOM-LE message from the world's sender to `to`, protected by the core's send pipeline
/// against a fault-free in-process simulator with the world's cards — exactly what komle-cm's
/// SMTP side would have delivered. The sender is always a recipient too (A_2019), so the
/// sender's SM-B in the embedded simulator decrypts it.
pub fn kom_le_message(world: &World, to: &str, mail: &[u8]) -> Result<Vec<u8>, EmbeddedError> {
    let sim = Simulator::new(world.sim_config.clone());
    let from = world.pki.sender.address.clone();
    let login = LoginName::parse(&login_name(&from, 465))
        .map_err(|e| EmbeddedError(format!("login name: {e}")))?;
    let job = ProtectJob {
        login,
        envelope_from: from,
        recipients: vec![to.to_owned()],
        message: SecretBytes::from(mail.to_vec()),
    };
    let mut cache = CertificateCache::new(CacheConfig::default());
    inprocess::protect(
        &sim,
        world,
        &mut cache,
        job,
        SystemTime::now(),
        &mut Vec::new(),
    )
    .map(|p| p.message.as_slice().to_vec())
    .map_err(|e| EmbeddedError(format!("protecting the message: {e:?}")))
}
