//! A test bed for end-to-end tests of the real `komle-cm` binary, shared by the SMTP and POP3
//! suites: per test, from temp dirs on 127.0.0.1,
//!
//! - Postfix (SMTPS, SASL via Dovecot) and Dovecot (POP3S, Maildir) with one account per
//!   practice of the test world ([`password`] gives its password), both requiring a client
//!   certificate from the test TI CA (mutual TLS, KOM-LE-A_2074, A_2182-01),
//! - OpenLDAP `slapd` loaded with the world's PKI (the VZD),
//! - the Konnektor simulator over HTTPS holding the world's cards (faults and latency from
//!   [`Options::sim`]) and trusting the mail servers' CA, so its VerifyCertificate calls their
//!   certificate VALID (KOM-LE-A_2075-01; [`Options::mail_servers_at_konnektor`] says otherwise),
//! - komle-cm's key store with the C.CM.TLS-CS identities, imported from the provider's
//!   PKCS#12 as an operator does ([`ClientCertificates`]; [`Options::client_identity`] picks
//!   the one `[upstream] client_identity` names),
//! - `komle-cm` itself, started from a generated TOML file: WHY the binary and not
//!   `Daemon::start` in-process: the test then covers what an operator runs, including the
//!   configuration file and `services::build` (Konnektor discovery, LDAP).
//!
//! Everything stops on Drop (komle-cm first, the temp dirs last). Clients live in
//! [`clients`]; the world is generated once per test binary ([`world`]).

#![allow(dead_code)] // each test binary uses a different subset

pub mod clients;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use komle_conformance::inprocess;
use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::servers::client_certs::VALID_ALIAS;
use komle_conformance::servers::{ClientCertificates, MailServers, User, process::free_port};
use komle_conformance::sim::config::Operation;
use komle_conformance::sim::config::SimConfig;
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::slapd::Slapd;
use komle_conformance::world::{World, revoke_mail_servers, trust_mail_servers};
use komle_core::login_name::LoginName;
use komle_core::pop3::{OpenFailure, OpenJob};
use komle_core::secret::SecretBytes;

/// Mandant, client system and workplace every login name of the test bed uses.
pub const CONTEXT: &str = "Mandant#ClientSystem#Workplace";

/// How long komle-cm may take from spawn to accepting connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The test world (PKI, cards, directory), generated once per test binary: the certificates
/// are valid for a year around the first call, far longer than any test run.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::generate(SystemTime::now()).expect("test world"))
}

/// What may differ between test beds.
#[derive(Clone)]
pub struct Options {
    /// The Konnektor simulator's configuration (default: the world's, without faults).
    pub sim: SimConfig,
    /// `[konnektor] timeout` (default: the product default, 1 min).
    pub konnektor_timeout: Option<Duration>,
    /// `[timeouts] mta_response` (default: the product default, 5 min).
    pub mta_response_timeout: Option<Duration>,
    /// `[cache] certificate_ttl` (default: the product default, 12 h).
    pub certificate_ttl: Option<Duration>,
    /// Also configure `[pop3] listen` (for the POP3 suites). Readiness is judged by the SMTP
    /// listener only: a build without the POP3 proxy merely warns about the section.
    pub pop3: bool,
    /// `[log] level` of komle-cm (its log goes to a file in the temp dir, see [`TestBed::log`]).
    pub log_level: &'static str,
    /// The key store alias `[upstream] client_identity` names (default: the valid
    /// C.CM.TLS-CS); `None` configures no client certificate, which the mail servers refuse.
    pub client_identity: Option<&'static str>,
    /// What the Konnektor's VerifyCertificate says about the mail servers' certificate.
    pub mail_servers_at_konnektor: ServerCertAtKonnektor,
    /// Further TOML appended to komle-cm's configuration (e.g. `[kas]`, see `e2e/kas.rs`).
    pub extra_config: String,
    /// Lines added to `[upstream]` (e.g. `verify_server_certificate = false`).
    pub upstream_extra: String,
}

/// How the simulated Konnektor judges the mail servers' TLS certificate (KOM-LE-A_2075-01).
/// komle-cm's `[upstream] ca` trusts the servers' CA in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCertAtKonnektor {
    /// The servers' CA is a trust anchor: VALID.
    Valid,
    /// The CA is trusted but the certificate is on the revocation list: INVALID.
    Revoked,
    /// The CA is unknown to the Konnektor: INVALID.
    UnknownCa,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sim: world().sim_config.clone(),
            konnektor_timeout: None,
            mta_response_timeout: None,
            certificate_ttl: None,
            pop3: false,
            log_level: "info",
            client_identity: Some(VALID_ALIAS),
            mail_servers_at_konnektor: ServerCertAtKonnektor::Valid,
            extra_config: String::new(),
            upstream_extra: String::new(),
        }
    }
}

/// Everything running for one test. Field order is drop order: komle-cm stops first.
pub struct TestBed {
    cm: Option<Child>,
    smtp_addr: SocketAddr,
    pop3_addr: Option<SocketAddr>,
    cm_ca: PathBuf,
    pub servers: MailServers,
    pub slapd: Slapd,
    pub sim: SimServer,
    /// The key store and client certificate files (in `dir`).
    pub client_certs: ClientCertificates,
    dir: tempfile::TempDir,
}

impl TestBed {
    /// A test bed with default options.
    pub fn start() -> TestBed {
        TestBed::start_with(Options::default())
    }

    /// Starts the servers and komle-cm; panics with the failing part's log when anything does
    /// not come up (a test bed that did not start is a failed test, not a skipped one).
    pub fn start_with(options: Options) -> TestBed {
        let world = world();
        let users: Vec<User> = practices()
            .into_iter()
            .map(|a| User::new(a.clone(), password(&a)))
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let cm_tls_set = world.cm_tls().expect("C.CM.TLS-CS test certificates");
        let client_certs = ClientCertificates::write(dir.path(), cm_tls_set)
            .unwrap_or_else(|e| panic!("key store: {e}"));
        let servers = MailServers::start_with(&users, &client_certs.server_options())
            .unwrap_or_else(|e| panic!("mail servers: {e}"));
        let slapd =
            Slapd::start_with_pki(&world.pki, false).unwrap_or_else(|e| panic!("slapd: {e:?}"));
        let sim_config = sim_config_for(&options, &servers);
        let sim = SimServer::start(Simulator::new(sim_config), TlsOptions::default())
            .unwrap_or_else(|e| panic!("Konnektor simulator: {e:?}"));
        let listener_tls = LoopbackTls::generate("komle-cm").expect("komle-cm TLS material");
        let files = Files::write(dir.path(), &listener_tls, &sim, &servers);

        let (cm, smtp_addr, pop3_addr) = spawn_cm(&options, &files, &sim, &slapd, &client_certs);
        TestBed {
            cm: Some(cm),
            smtp_addr,
            pop3_addr,
            cm_ca: files.cm_ca,
            servers,
            slapd,
            sim,
            client_certs,
            dir,
        }
    }

    /// How often komle-cm called `operation` at the Konnektor simulator so far.
    pub fn konnektor_calls(&self, operation: Operation) -> usize {
        self.sim
            .simulator()
            .call_log()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// komle-cm's SMTP listener (implicit TLS; trust [`TestBed::cm_ca_path`]).
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    /// komle-cm's POP3 listener, when started with [`Options::pop3`].
    pub fn pop3_addr(&self) -> Option<SocketAddr> {
        self.pop3_addr
    }

    /// PEM file of the CA that issued komle-cm's listener certificate.
    pub fn cm_ca_path(&self) -> &Path {
        &self.cm_ca
    }

    /// The login name for `address` via Postfix's SMTPS port.
    pub fn login(&self, address: &str) -> String {
        login_via(address, self.servers.smtps_addr())
    }

    /// The login name for `address` via Dovecot's POP3S port.
    pub fn pop3_login(&self, address: &str) -> String {
        login_via(address, self.servers.pop3s_addr())
    }

    /// komle-cm's process id while it runs.
    pub fn cm_pid(&self) -> Option<u32> {
        self.cm.as_ref().map(Child::id)
    }

    /// True while the komle-cm process has not exited.
    pub fn cm_running(&mut self) -> bool {
        matches!(self.cm.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// komle-cm's peak resident set size in KiB (`VmHWM` of `/proc/<pid>/status`).
    pub fn cm_peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.cm_pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// komle-cm's log so far (for assertion messages; it holds no message content).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("komle-cm.log")).unwrap_or_default()
    }

    /// The stored messages in `address`'s Maildir that contain `marker` (e.g. the Message-ID,
    /// which the KOM-LE outer message copies); none before the first delivery.
    pub fn delivered(&self, address: &str, marker: &str) -> Vec<Vec<u8>> {
        let exists = self
            .servers
            .maildir_path(address)
            .map(|p| p.exists())
            .unwrap_or(false);
        if !exists {
            return Vec::new();
        }
        self.servers
            .maildir_messages(address)
            .unwrap_or_else(|e| panic!("reading the Maildir of {address}: {e}"))
            .into_iter()
            .filter(|m| contains(m, marker.as_bytes()))
            .collect()
    }

    /// Waits until `address` holds `n` messages with `marker`; returns them (panics on timeout
    /// with the Postfix log).
    pub fn wait_delivered(
        &self,
        address: &str,
        marker: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.delivered(address, marker);
            if found.len() >= n {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "{address}: {} of {n} messages with {marker} after {timeout:?}\n{}",
                    found.len(),
                    self.servers.postfix_log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Asserts that nothing with `marker` reaches `address` within `settle` (delivery is
    /// asynchronous, so "not delivered" needs a wait).
    pub fn assert_not_delivered(&self, address: &str, marker: &str, settle: Duration) {
        let deadline = Instant::now() + settle;
        while Instant::now() < deadline {
            let found = self.delivered(address, marker);
            assert!(
                found.is_empty(),
                "{address} received {} message(s) with {marker}",
                found.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops komle-cm (idempotent; also done on Drop).
    pub fn stop_cm(&mut self) {
        if let Some(mut c) = self.cm.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        self.stop_cm();
    }
}

/// Removes every encryption certificate of the directory entry `uid` in the running slapd
/// (`ldapmodify` as the directory's admin): a certificate that disappears while a session runs.
pub fn remove_certificates(slapd: &Slapd, uid: &str) {
    ldap_modify(slapd, uid, "delete: userCertificate;binary\n");
}

/// Applies one LDIF modification (`change`, e.g. `replace: komLeData\nkomLeData: 1.5+\n`) to
/// the directory entry `uid` in the running slapd, as the directory's admin.
pub fn ldap_modify(slapd: &Slapd, uid: &str, change: &str) {
    use komle_conformance::slapd::{ADMIN_DN, ADMIN_PASSWORD};
    use std::io::Write;
    let change = format!(
        "dn: uid={uid},{}\nchangetype: modify\n{change}-\n",
        slapd.base_dn()
    );
    let mut child = Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            slapd.url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldapmodify");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(change.as_bytes())
            .expect("ldapmodify input");
    }
    let out = child.wait_with_output().expect("ldapmodify");
    assert!(
        out.status.success(),
        "ldapmodify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `address#127.0.0.1:<port>#Mandant#ClientSystem#Workplace`.
pub fn login_via(address: &str, server: SocketAddr) -> String {
    format!("{address}#{server}#{CONTEXT}")
}

/// The addresses with a mailbox: every practice of the world except the one whose address
/// holds LDAP metacharacters (not a valid mailbox name for Postfix's maps).
pub fn practices() -> Vec<String> {
    let w = world();
    [
        &w.pki.sender,
        &w.pki.single,
        &w.pki.old_and_new_card,
        &w.pki.expired,
        &w.pki.ecc_and_rsa,
        &w.pki.conflicting,
        &w.pki.revoked,
        &w.pki.no_certificate,
    ]
    .iter()
    .map(|p| p.address.clone())
    .collect()
}

/// The mailbox password of `address` (test data).
pub fn password(address: &str) -> String {
    format!("pw-{}", address.split('@').next().unwrap_or(address))
}

/// Opens a stored KOM-LE message as the POP3 side would for `recipient`: decrypted and
/// verified by a simulator with the world's (fault-free) cards. Returns the opened mail.
pub fn open_as(recipient: &str, stored: &[u8]) -> Result<String, OpenFailure> {
    let sim = Simulator::new(world().sim_config.clone());
    let login = LoginName::parse(&login_via(
        recipient,
        SocketAddr::from(([127, 0, 0, 1], 995)),
    ))
    .expect("valid login name");
    let job = OpenJob {
        login,
        message: SecretBytes::from(to_crlf(stored)),
    };
    inprocess::open(&sim, job, SystemTime::now(), &mut Vec::new())
        .map(|m| String::from_utf8_lossy(m.message.as_slice()).into_owned())
}

/// True when `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Bare-LF bytes as CRLF (Dovecot's Maildir stores LF; SMTP and POP3 speak CRLF).
pub fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The header section of a stored message (up to the first blank line, LF or CRLF).
pub fn header_of(stored: &[u8]) -> String {
    let text = String::from_utf8_lossy(stored);
    let end = text
        .find("\r\n\r\n")
        .or_else(|| text.find("\n\n"))
        .unwrap_or(text.len());
    text[..end].to_owned()
}

/// Spawns komle-cm and waits until it accepts connections. komle-cm binds the ports itself, so
/// a port taken between [`free_port`] and the bind makes it exit: then it is retried.
fn spawn_cm(
    options: &Options,
    files: &Files,
    sim: &SimServer,
    slapd: &Slapd,
    client_certs: &ClientCertificates,
) -> (Child, SocketAddr, Option<SocketAddr>) {
    let mut last = String::new();
    for _ in 0..3 {
        let smtp_addr = SocketAddr::from(([127, 0, 0, 1], free_port().expect("free port")));
        let pop3_addr = options
            .pop3
            .then(|| SocketAddr::from(([127, 0, 0, 1], free_port().expect("free port"))));
        let config = config_text(
            options,
            files,
            smtp_addr,
            pop3_addr,
            sim,
            slapd,
            client_certs,
        );
        std::fs::write(&files.config, config).expect("write komle-cm.toml");
        let log = std::fs::File::create(&files.log).expect("komle-cm log file");
        let mut child = Command::new(crate::CM_BINARY)
            .arg("--config")
            .arg(&files.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .expect("spawn komle-cm");
        match wait_ready(&mut child, smtp_addr) {
            Ok(()) => return (child, smtp_addr, pop3_addr),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let mut log = String::new();
                if let Ok(mut f) = std::fs::File::open(&files.log) {
                    let _ = f.read_to_string(&mut log);
                }
                last = format!("{why}\n--- komle-cm log ---\n{log}");
                if !log.contains("cannot bind") {
                    break;
                }
            }
        }
    }
    panic!("komle-cm did not start: {last}")
}

/// Polls the SMTP port until it accepts a connection, or the process exits.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("komle-cm exited with {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "komle-cm not listening on {addr} after {READY_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Files komle-cm reads, in the test bed's temp dir.
struct Files {
    config: PathBuf,
    log: PathBuf,
    cm_cert: PathBuf,
    cm_key: PathBuf,
    cm_ca: PathBuf,
    konnektor_ca: PathBuf,
    mta_ca: PathBuf,
    /// `[upstream] smtp` and `pop3`: exactly Postfix's SMTPS and Dovecot's POP3S addresses.
    smtp_upstream: SocketAddr,
    pop3_upstream: SocketAddr,
}

impl Files {
    fn write(dir: &Path, cm_tls: &LoopbackTls, sim: &SimServer, servers: &MailServers) -> Files {
        let f = Files {
            config: dir.join("komle-cm.toml"),
            log: dir.join("komle-cm.log"),
            cm_cert: dir.join("komle-cm.pem"),
            cm_key: dir.join("komle-cm.key"),
            cm_ca: dir.join("komle-cm-ca.pem"),
            konnektor_ca: dir.join("konnektor-ca.pem"),
            mta_ca: dir.join("mta-ca.pem"),
            smtp_upstream: servers.smtps_addr(),
            pop3_upstream: servers.pop3s_addr(),
        };
        let write = |p: &Path, s: &[u8]| {
            std::fs::write(p, s).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        write(&f.cm_cert, cm_tls.server_cert_pem.as_bytes());
        write(&f.cm_key, cm_tls.server_key_pem.as_bytes());
        write(&f.cm_ca, cm_tls.ca_pem.as_bytes());
        write(&f.konnektor_ca, sim.ca_pem.as_bytes());
        let mta_ca = std::fs::read(servers.ca_pem_path()).expect("mail servers' CA");
        write(&f.mta_ca, &mta_ca);
        f
    }
}

fn config_text(
    options: &Options,
    files: &Files,
    smtp: SocketAddr,
    pop3: Option<SocketAddr>,
    sim: &SimServer,
    slapd: &Slapd,
    client_certs: &ClientCertificates,
) -> String {
    let mut t = format!(
        "[smtp]\nlisten = \"{smtp}\"\nhostname = \"komle-cm.test\"\n\n\
         [tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\n\
         [upstream]\nca = \"{}\"\nsmtp = [\"{}\"]\npop3 = [\"{}\"]\n{}\n\
         [konnektor]\nsds_url = \"{}/connector.sds\"\nca = \"{}\"\n",
        files.cm_cert.display(),
        files.cm_key.display(),
        files.mta_ca.display(),
        files.smtp_upstream,
        files.pop3_upstream,
        options
            .client_identity
            .map_or_else(String::new, |a| format!("client_identity = \"{a}\"\n"))
            + &options.upstream_extra,
        sim.base_url(),
        files.konnektor_ca.display(),
    );
    if let Some(timeout) = options.konnektor_timeout {
        t.push_str(&format!("timeout = \"{}ms\"\n", timeout.as_millis()));
    }
    t.push_str(&format!(
        "\n[directory]\nurl = \"{}\"\nbase = \"{}\"\ntimeout = \"10s\"\n\n",
        slapd.url(),
        slapd.base_dn()
    ));
    if let Some(pop3) = pop3 {
        t.push_str(&format!("[pop3]\nlisten = \"{pop3}\"\n\n"));
    }
    if let Some(timeout) = options.mta_response_timeout {
        t.push_str(&format!(
            "[timeouts]\nmta_response = \"{}ms\"\n\n",
            timeout.as_millis()
        ));
    }
    if let Some(ttl) = options.certificate_ttl {
        t.push_str(&format!(
            "[cache]\ncertificate_ttl = \"{}ms\"\n\n",
            ttl.as_millis()
        ));
    }
    // The key store is configured in every bed, with or without a client identity: komle-cm
    // reads it either way, as it does in the field.
    t.push_str(&client_certs.keys_section());
    t.push_str(&format!("\n[log]\nlevel = \"{}\"\n", options.log_level));
    t.push_str(&options.extra_config);
    t
}

/// The simulator's configuration: [`Options::sim`] plus the mail servers' CA as a trust anchor
/// (or not, or their certificate revoked, per [`Options::mail_servers_at_konnektor`]).
fn sim_config_for(options: &Options, servers: &MailServers) -> SimConfig {
    let mut config = options.sim.clone();
    let result = match options.mail_servers_at_konnektor {
        ServerCertAtKonnektor::Valid => trust_mail_servers(&mut config, servers),
        ServerCertAtKonnektor::Revoked => trust_mail_servers(&mut config, servers)
            .and_then(|()| revoke_mail_servers(&mut config, servers)),
        ServerCertAtKonnektor::UnknownCa => Ok(()),
    };
    result.unwrap_or_else(|e| panic!("mail servers' certificate for the simulator: {e}"));
    config
}
