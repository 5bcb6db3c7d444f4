//! The embedded environment: komle-cm's real SMTP proxy with everything around it in-process
//! on 127.0.0.1 — test PKI and cards, the HTTPS Konnektor simulator, a directory made of the
//! PKI, and a small SMTPS mail service. `komle-demo`, the fault-injection tests and the
//! benchmarks start it; nothing here needs a system package.
//!
//! Towards the mail service the proxies work as towards a KIM provider
//! ([`crate::mail_service_tls`]): mutual TLS with the C.CM.TLS-CS from a key store, and the
//! mail service's certificate checked by the simulator's VerifyCertificate.
//!
//! For fault injection a test can put a [`FaultRelay`] in front of each upstream: the MTA
//! ([`EmbeddedOptions::mta_relay`], log in with [`Embedded::login_via`]), the Konnektor
//! ([`EmbeddedOptions::konnektor_relay`]: every Konnektor call goes through it) and a real LDAP
//! directory ([`EmbeddedOptions::ldap`]: the test starts slapd for the world it passes to
//! [`Embedded::start_with_world`], and a relay in front of slapd).

use komle_conformance::kas_sim::{KasSim, KasSimConfig};
use komle_service::kas_client::{KasClient, KasClientSettings};
use komle_service::kas_flow::KasFlow;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use komle_conformance::fault_relay::{Chunking, FaultRelay};
use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::mini_mta::MiniMta;
use komle_conformance::mini_pop3::MiniPop3;
use komle_conformance::sim::config::{Fault, Operation};
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::world::World;
use komle_core::directory::{CacheConfig, CertificateCache, DirectoryEntry};
use komle_core::konnektor::{KonnektorEndpoints, ServiceDirectory};
use komle_core::protect::DirectoryUnavailable;
use komle_core::smtp::SmtpConfig;
use komle_core::upstream_allow::{HostPattern, UpstreamAllowList};

use komle_service::config::{KonnektorAuth, KonnektorSettings};
use komle_service::contracts::BoxFuture;
use komle_service::konnektor_directory::KonnektorDirectory;
use komle_service::konnektor_http::KonnektorHttp;
use komle_service::ldap::{DirectoryClient, LdapSettings};
use komle_service::server_cert_check::ServerCertificateCheck;
use komle_service::services::{Directory, LdapDirectory, Pipeline};
use komle_service::session::SessionContext;
use komle_service::time_sync::Clock;
use komle_smol::smtp_server::{ServerLimits, SmtpServer};

use crate::embedded_pop3::{Pop3Options, Pop3Side};
use crate::mail_service_tls::MailServiceTls;

/// Password of the sender's account at the embedded mail service.
pub const PASSWORD: &str = "demo";

/// How to set the environment up.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Port of the SMTP proxy (0: any free port).
    pub smtp_port: u16,
    /// Faults the Konnektor simulator injects, per operation.
    pub konnektor_faults: Vec<(Operation, Fault)>,
    /// Timeout of Konnektor calls.
    pub konnektor_timeout: Duration,
    /// Session settings of the proxy. The environment's own MTA (and [`Self::mta_relay`]) is
    /// added to `session.upstream_allow`; other hosts stay refused unless listed there.
    pub session: SmtpConfig,
    /// Limit for TCP connect plus TLS handshake towards the MTA.
    pub connect_timeout: Duration,
    /// Time a client gets for its TLS handshake with the proxy.
    pub handshake_timeout: Duration,
    pub max_sessions: usize,
    /// `[smtp] max_sessions_per_address` (default: none).
    pub max_sessions_per_address: Option<usize>,
    /// Lifetime of cached recipient certificates (A_2026); zero sends every RCPT check and
    /// every message to the directory.
    pub cache_lifetime: Duration,
    /// Route every Konnektor call (and the `connector.sds` download) through a
    /// [`FaultRelay`], reachable as [`Embedded::konnektor_relay`].
    pub konnektor_relay: bool,
    /// Start a [`FaultRelay`] in front of the MTA, reachable as [`Embedded::mta_relay`], and
    /// allow the proxy to connect to it (log in with [`Embedded::login_via`] its address).
    pub mta_relay: bool,
    /// Look recipients up in this LDAP directory instead of the world's table
    /// ([`Embedded::directory`] then plays no part).
    pub ldap: Option<LdapSettings>,
    /// Benchmarks: the Konnektor simulator answers a repeated SignDocument / EncryptDocument
    /// (DecryptDocument, VerifyDocument) from a memo instead of computing it again, so a
    /// Konnektor's own cost drops out after one warm-up pass while the SOAP exchange over
    /// HTTPS stays (komle_conformance::sim::precomputed).
    pub precomputed_konnektor: bool,
    /// Also start a POP3 mail service and komle-cm's POP3 proxy in front of it.
    pub pop3: Option<Pop3Options>,
    /// Password of both accounts at the embedded mail service (default [`PASSWORD`]); the log
    /// canary test sets a recognisable one.
    pub password: String,
    /// Benchmarks only: the mail service also admits clients without a TLS client certificate
    /// (the load tools' straight-to-the-mail-service baseline). Default `false`: it requires
    /// the C.CM.TLS-CS (KOM-LE-A_2074), which the proxies present in either case.
    pub mail_service_admits_clients_without_certificate: bool,
    /// KIM 1.5: a KAS simulator behind the pipeline, every practice opted in to large
    /// messages (`komLeData: 1.5+`), SMTP SIZE raised to the KAS limit (`komle-demo --large`).
    pub kas: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            smtp_port: 0,
            konnektor_faults: Vec::new(),
            konnektor_timeout: Duration::from_secs(60),
            session: SmtpConfig::default(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_sessions: 64,
            max_sessions_per_address: None,
            cache_lifetime: Duration::from_secs(12 * 3600),
            konnektor_relay: false,
            mta_relay: false,
            ldap: None,
            precomputed_konnektor: false,
            pop3: None,
            password: PASSWORD.to_owned(),
            mail_service_admits_clients_without_certificate: false,
            kas: false,
        }
    }
}

/// Why the environment could not start.
#[derive(Debug)]
pub struct EmbeddedError(pub String);

impl std::fmt::Display for EmbeddedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> EmbeddedError + '_ {
    move |e| EmbeddedError(format!("{what}: {e}"))
}

/// `list` plus the loopback services at `addrs`: what a test environment lets its proxy
/// connect to.
pub fn allow_also(list: &UpstreamAllowList, addrs: &[SocketAddr]) -> UpstreamAllowList {
    let mut patterns = list.patterns().to_vec();
    patterns.extend(addrs.iter().map(|a| {
        a.to_string()
            .parse::<HostPattern>()
            .expect("a socket address is a valid pattern")
    }));
    UpstreamAllowList::new(patterns)
}

/// A directory over the world's PKI that can be switched off (directory outage).
pub struct WorldDirectory {
    world: Arc<World>,
    pub down: AtomicBool,
    /// Every entry says `komLeData: 1.5+,<address>` (A_19356-06, A_23512).
    large_opt_in: bool,
}

impl Directory for WorldDirectory {
    fn lookup<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DirectoryEntry>, DirectoryUnavailable>> {
        let answer = if self.down.load(Ordering::Relaxed) {
            Err(DirectoryUnavailable)
        } else {
            let mut entries = self.world.directory_entries(address);
            if self.large_opt_in {
                for e in &mut entries {
                    e.kom_le_data = vec![format!("1.5+,{address}")];
                }
            }
            Ok(entries)
        };
        Box::pin(async move { answer })
    }
}

/// A blocking TLS client of the proxy (tests and load tools), line-buffered.
pub type ProxyClient = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// The running environment; everything stops when it is dropped.
pub struct Embedded {
    pub world: Arc<World>,
    pub sim: SimServer,
    pub konnektor: KonnektorHttp,
    pub endpoints: KonnektorEndpoints,
    /// Between the proxy and the Konnektor simulator, when [`EmbeddedOptions::konnektor_relay`].
    pub konnektor_relay: Option<FaultRelay>,
    /// Between the proxy and the MTA, when [`EmbeddedOptions::mta_relay`].
    pub mta_relay: Option<FaultRelay>,
    pub directory: Arc<WorldDirectory>,
    pub mta: MiniMta,
    /// The mail service's certificate (SMTP and POP3); its CA is a trust anchor of the
    /// simulator, so VerifyCertificate calls it VALID.
    pub mta_tls: LoopbackTls,
    /// Mutual TLS and the server-certificate check towards the mail service.
    pub mail_service_tls: Arc<MailServiceTls>,
    /// TLS of the proxy; clients trust its `ca_pem`.
    pub proxy_tls: LoopbackTls,
    pub proxy_addr: SocketAddr,
    /// Client connections the proxy is serving right now (0 when idle: no task left behind).
    pub live_connections: Arc<AtomicUsize>,
    /// What every session of the proxy shares: lets another runtime (tokio) serve the same
    /// services on its own listener.
    pub session_context: SessionContext,
    /// With [`EmbeddedOptions::pop3`]: the POP3 mail service (account: the world's `single`,
    /// password [`PASSWORD`]; TLS from `mta_tls`).
    pub pop3: Option<MiniPop3>,
    /// With [`EmbeddedOptions::pop3`]: komle-cm's POP3 proxy (TLS from `proxy_tls`).
    pub pop3_addr: Option<SocketAddr>,
    pop3_side: Option<Pop3Side>,
    stop: Option<smol::channel::Sender<()>>,
    server_thread: Option<std::thread::JoinHandle<std::io::Result<usize>>>,
    _scratch: tempfile::TempDir,
    /// The KAS simulator (`EmbeddedOptions::kas`).
    pub kas: Option<KasSim>,
    /// The pipeline behind the proxies, for opening messages in process.
    pub opener: Arc<Pipeline>,
}

impl Embedded {
    /// Starts everything and returns once the proxy listens.
    pub fn start(options: &EmbeddedOptions) -> Result<Embedded, EmbeddedError> {
        let world = Arc::new(World::generate(SystemTime::now()).map_err(err("test PKI"))?);
        Self::start_with_world(world, options)
    }

    /// The same for a world the caller generated (e.g. to load its PKI into slapd first).
    pub fn start_with_world(
        world: Arc<World>,
        options: &EmbeddedOptions,
    ) -> Result<Embedded, EmbeddedError> {
        let mta_tls = LoopbackTls::generate("embedded-mta").map_err(err("MTA certificate"))?;
        let mut sim_config = world.sim_config.clone();
        // A_2075-01: the Konnektor knows the mail service's CA, as a TI Konnektor knows the
        // provider's.
        sim_config.trust_anchors.push(mta_tls.ca_der.to_vec());
        sim_config.faults = options.konnektor_faults.iter().cloned().collect();
        sim_config.precomputed_answers = options.precomputed_konnektor;
        let sim = SimServer::start(Simulator::new(sim_config), TlsOptions::default())
            .map_err(err("Konnektor simulator"))?;
        let scratch = tempfile::tempdir().map_err(err("temp dir"))?;
        let sim_ca = scratch.path().join("konnektor-ca.pem");
        std::fs::write(&sim_ca, &sim.ca_pem).map_err(err("Konnektor CA"))?;
        let konnektor_relay = if options.konnektor_relay {
            Some(
                FaultRelay::start(sim.addr, Chunking::TlsRecords)
                    .map_err(err("Konnektor relay"))?,
            )
        } else {
            None
        };
        let konnektor_base = match &konnektor_relay {
            Some(r) => format!("https://{}", r.addr()),
            None => sim.base_url(),
        };
        let konnektor = KonnektorHttp::new(&KonnektorSettings {
            sds_url: format!("{konnektor_base}/connector.sds"),
            ca: Some(sim_ca),
            auth: KonnektorAuth::None,
            timeout: options.konnektor_timeout,
            max_parallel_calls: komle_service::config::DEFAULT_KONNEKTOR_PARALLEL_CALLS,
        })
        .map_err(err("Konnektor client"))?;
        let sds = konnektor
            .get_blocking(&format!("{konnektor_base}/connector.sds"))
            .map_err(err("connector.sds"))?;
        // The simulator names its own address in the service endpoints; behind a relay they
        // must name the relay's.
        let sds = String::from_utf8_lossy(&sds).replace(&sim.base_url(), &konnektor_base);
        let endpoints = ServiceDirectory::parse(sds.as_bytes())
            .and_then(|d| d.endpoints())
            .map_err(err("connector.sds"))?;

        let clock = Arc::new(Clock::new());
        let konnektor_directory = Arc::new(KonnektorDirectory::fixed(endpoints.clone()));
        let check = ServerCertificateCheck::new(
            Arc::new(konnektor.clone()),
            konnektor_directory.clone(),
            clock.clone(),
            options.cache_lifetime,
        );
        let mail_service_tls = Arc::new(MailServiceTls::new(
            scratch.path(),
            &world,
            &mta_tls,
            check,
            options.mail_service_admits_clients_without_certificate,
        )?);
        let mta = MiniMta::start(
            "127.0.0.1:0",
            mail_service_tls.server.clone(),
            &world.pki.sender.address,
            &options.password,
        )
        .map_err(err("mail service"))?;
        let mta_relay = if options.mta_relay {
            Some(FaultRelay::start(mta.addr(), Chunking::TlsRecords).map_err(err("MTA relay"))?)
        } else {
            None
        };
        let mut allowed = vec![mta.addr()];
        allowed.extend(mta_relay.as_ref().map(FaultRelay::addr));
        let mut session = options.session.clone();
        session.upstream_allow = allow_also(&session.upstream_allow, &allowed);

        let proxy_tls = LoopbackTls::generate("komle-cm").map_err(err("proxy certificate"))?;
        let directory = Arc::new(WorldDirectory {
            world: world.clone(),
            down: AtomicBool::new(false),
            large_opt_in: options.kas,
        });
        let lookup: Arc<dyn Directory> = match &options.ldap {
            Some(settings) => Arc::new(LdapDirectory(Arc::new(
                DirectoryClient::new(settings.clone()).map_err(err("LDAP directory"))?,
            ))),
            None => directory.clone(),
        };
        let (kas, kas_flow) = if options.kas {
            let kas = KasSim::start(KasSimConfig::default()).map_err(err("KAS simulator"))?;
            let (client_chain, client_key) = kas.tls.client_identity();
            let client = KasClient::new(KasClientSettings {
                base_url: kas.base_url(),
                timeout: komle_service::kas_client::DEFAULT_KAS_TIMEOUT,
                roots: vec![kas.tls.ca_der.clone()],
                client_chain,
                client_key,
                basic: None,
            })
            .map_err(err("KAS client"))?;
            session.max_message_size = session
                .max_message_size
                .max(komle_service::config::DEFAULT_KAS_MAX_MAIL_SIZE);
            let flow = Arc::new(KasFlow::new(client, Some(kas.limits_url())));
            (Some(kas), Some(flow))
        } else {
            (None, None)
        };
        let pipeline = Arc::new(Pipeline {
            directory: lookup,
            konnektor: Arc::new(konnektor.clone()),
            konnektor_directory,
            konnektoren: Default::default(),
            kim: Default::default(),
            cache: Arc::new(Mutex::new(CertificateCache::new(CacheConfig {
                lifetime: options.cache_lifetime,
                capacity: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            }))),
            clock: clock.clone(),
            // gemSpec_CM_KOMLE 1.16's default (A_23165): a failed check replaces the content.
            delivery: komle_core::smime::DeliveryOptions::default(),
            cards: Default::default(),
            kas: kas_flow,
        });
        let opener = pipeline.clone();
        let (pop3, pop3_side) = match &options.pop3 {
            Some(o) => Pop3Side::start(
                o,
                &world.pki.single.address,
                &options.password,
                &mail_service_tls,
                &proxy_tls,
                pipeline.clone(),
            )
            .map(|(server, side)| (Some(server), Some(side)))?,
            None => (None, None),
        };
        let ctx = SessionContext {
            session,
            upstream_tls: mail_service_tls.upstream.clone(),
            connect_timeout: options.connect_timeout,
            checker: pipeline.clone(),
            protector: pipeline,
        };
        let session_context = ctx.clone();
        let server = smol::block_on(SmtpServer::bind(
            komle_smol::runtime::SmolRuntime,
            SocketAddr::from(([127, 0, 0, 1], options.smtp_port)),
            proxy_tls.server_config(),
            mail_service_tls.proxy(ctx),
            ServerLimits {
                max_sessions: options.max_sessions,
                max_sessions_per_address: options.max_sessions_per_address,
                handshake_timeout: options.handshake_timeout,
                grace: Duration::from_secs(5),
                proxy_protocol: false,
            },
        ))
        .map_err(err("SMTP listener"))?;
        let proxy_addr = server.local_addr().map_err(err("SMTP listener"))?;
        let live_connections = server.live_connections();
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let server_thread = std::thread::spawn(move || {
            smol::block_on(server.run(async move {
                let _ = stop_rx.recv().await;
            }))
        });
        Ok(Embedded {
            world,
            sim,
            konnektor,
            endpoints,
            konnektor_relay,
            mta_relay,
            directory,
            mta,
            mta_tls,
            mail_service_tls,
            proxy_tls,
            proxy_addr,
            live_connections,
            session_context,
            pop3,
            pop3_addr: pop3_side.as_ref().map(|p| p.proxy_addr),
            pop3_side,
            stop: Some(stop_tx),
            server_thread: Some(server_thread),
            _scratch: scratch,
            kas,
            opener,
        })
    }

    /// The login name for the sender's account at the embedded mail service.
    /// A blocking TLS client connected to `addr` — the SMTP or POP3 proxy, or a relay in front
    /// of one — that trusts the proxy's certificate; a read waits at most `read_timeout` (a
    /// test turns that into a failure: a hang is never an outcome).
    pub fn client(&self, addr: SocketAddr, read_timeout: Duration) -> std::io::Result<ProxyClient> {
        let sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(read_timeout))?;
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let conn = rustls::ClientConnection::new(self.proxy_tls.client_config(), name)
            .map_err(std::io::Error::other)?;
        Ok(BufReader::new(rustls::StreamOwned::new(conn, sock)))
    }

    pub fn login(&self) -> String {
        self.login_via(self.mta.addr())
    }

    /// The same login name with `mta` as the mail service's address, e.g. a [`FaultRelay`]
    /// in front of [`Embedded::mta`].
    pub fn login_via(&self, mta: SocketAddr) -> String {
        format!(
            "{}#{}:{}#Praxis#KIM-Demo#Platz1",
            self.world.pki.sender.address,
            mta.ip(),
            mta.port()
        )
    }

    /// The login name for the recipient's account at the embedded POP3 mail service.
    pub fn pop3_login(&self) -> Option<String> {
        self.pop3.as_ref().map(|p| {
            crate::embedded_pop3::login_name(&self.world.pki.single.address, p.addr().port())
        })
    }

    /// Puts a KOM-LE message from the world's sender to the POP3 account (the world's
    /// `single`) into the maildrop; returns its unique id. `mail` is the plain mail as a
    /// client would have sent it.
    pub fn put_kom_le(&self, mail: &[u8]) -> Result<String, EmbeddedError> {
        let pop3 = self
            .pop3
            .as_ref()
            .ok_or_else(|| EmbeddedError("started without POP3".into()))?;
        let message = crate::embedded_pop3::kom_le_message(
            &self.world,
            &self.world.pki.single.address,
            mail,
        )?;
        Ok(pop3.put(message))
    }

    /// POP3 proxy sessions running now (0 without POP3).
    pub fn pop3_live_sessions(&self) -> usize {
        self.pop3_side.as_ref().map_or(0, Pop3Side::live_sessions)
    }

    /// Stops the proxy (sessions get the grace period) and returns how many were cut off.
    pub fn stop(&mut self) -> usize {
        if let Some(p) = self.pop3_side.as_mut() {
            p.stop();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send_blocking(());
        }
        match self.server_thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(n))) => n,
            _ => 0,
        }
    }

    /// Blocks until the proxy ends (never, unless stopped from elsewhere).
    pub fn wait(&mut self) {
        if let Some(t) = self.server_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop();
    }
}
