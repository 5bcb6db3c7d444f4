//! Real mail servers for end-to-end tests: Postfix (SMTPS, SASL via Dovecot, LMTP) and Dovecot
//! (POP3S), started per test from a temp dir on free 127.0.0.1 ports and stopped on drop.
//!
//! ```no_run
//! use komle_conformance::servers::{MailServers, User};
//! use std::time::Duration;
//!
//! let servers = MailServers::start(&[
//!     User::new("alice@a.example", "alice-pw"),
//!     User::new("bob@b.example", "bob-pw"),
//! ])?;
//! // Point the client at servers.smtps_addr() / servers.pop3s_addr(), trusting
//! // servers.ca_pem_path(); then:
//! let mails = servers.wait_for_messages("bob@b.example", 1, Duration::from_secs(10))?;
//! # Ok::<(), komle_conformance::servers::ServerError>(())
//! ```
//!
//! What runs (see `postfix.rs` and `dovecot.rs` for the exact configuration and why):
//! - Postfix `master` on [`MailServers::smtps_addr`]: implicit TLS, `AUTH PLAIN`/`LOGIN` checked by
//!   Dovecot, relaying only after authentication, the users' domains delivered by LMTP to Dovecot,
//!   other destinations bounced (no DNS, no outside network), messages up to 100 MiB.
//! - Dovecot on [`MailServers::pop3s_addr`]: POP3 over implicit TLS only, Maildir storage in the
//!   temp dir, users from a passwd-file with the given passwords.
//! - TLS from a fresh test CA ([`MailServers::ca_pem_path`]) for `127.0.0.1` and `localhost`.
//! - Optionally ([`Options::client_ca`], [`MailServers::start_with`]) both require a client
//!   certificate from a given CA, as the KOM-LE mail service does (KOM-LE-A_2074): Postfix
//!   answers `421 4.7.1` instead of the greeting, Dovecot refuses the login.
//!   [`ClientCertificates`] writes the client side: that CA file and komle-cm's key store
//!   holding the C.CM.TLS-CS identities (valid, expired, from a foreign CA).
//!
//! Requirements: root (Postfix and Dovecot switch users), the Debian packages `postfix`,
//! `dovecot-core`, `dovecot-pop3d`, `dovecot-lmtpd` and the `openssl` CLI.

pub mod client_certs;
pub mod dnsmasq;
pub mod dovecot;
pub mod error;
pub mod haproxy;
pub mod lmtp;
pub mod maildir;
pub mod postfix;
pub mod process;
pub mod stale;
pub mod sysuser;
pub mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use client_certs::ClientCertificates;
pub use error::{Result, ServerError};
pub use process::ServerProcess;
pub use tls::TestTls;

use dovecot::DovecotLayout;
use postfix::PostfixLayout;

/// How long each server may take to come up before the start fails with its log tail.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a start is retried when a free port was taken by someone else in between.
const START_ATTEMPTS: usize = 3;

/// A mailbox account known to both servers: SMTP AUTH and POP3 log in with the full address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Mail address, also the login name (`local@domain`).
    pub address: String,
    /// Plain-text password (test data only).
    pub password: String,
}

impl User {
    /// A user with the given address and password.
    pub fn new(address: impl Into<String>, password: impl Into<String>) -> User {
        User {
            address: address.into(),
            password: password.into(),
        }
    }
}

/// A running Postfix + Dovecot pair in its own temp dir. Dropping it kills both process groups
/// and removes the temp dir (messages included: nothing stays on disk after a test).
#[derive(Debug)]
pub struct MailServers {
    // Field order is drop order: servers first, the temp dir last.
    postfix: Option<ServerProcess>,
    dovecot: ServerProcess,
    postfix_layout: PostfixLayout,
    dovecot_layout: DovecotLayout,
    tls: TestTls,
    users: Vec<User>,
    mail_owner: (u32, u32),
    startup: Duration,
    dir: tempfile::TempDir,
}

/// How the servers treat their TLS clients; [`Options::default`] is what [`MailServers::start`]
/// uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// PEM file with the CA(s) whose client certificates SMTPS and POP3S accept; with it set,
    /// both servers require a trusted client certificate (mutual TLS as the KOM-LE mail service
    /// demands it, KOM-LE-A_2074) and refuse connections without one. `None` (the default):
    /// no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

impl Options {
    /// Both servers require client certificates issued by a CA in `ca_pem`.
    pub fn require_client_certificates(ca_pem: impl Into<PathBuf>) -> Options {
        Options {
            client_ca: Some(ca_pem.into()),
        }
    }
}

impl MailServers {
    /// Generates TLS material and configs in a new temp dir, starts Dovecot and Postfix on free
    /// 127.0.0.1 ports and returns once both accept connections. At least one user is required;
    /// their domains become Postfix's virtual mailbox domains.
    ///
    /// Errors name the failing server and carry its log tail. If a chosen port was taken by
    /// another process in between, the start is retried with new ports.
    pub fn start(users: &[User]) -> Result<MailServers> {
        Self::start_with(users, &Options::default())
    }

    /// [`MailServers::start`] with [`Options`], e.g. requiring client certificates.
    pub fn start_with(users: &[User], options: &Options) -> Result<MailServers> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(users, options) {
                Ok(s) => return Ok(s),
                Err(e) if is_port_clash(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ServerError::InvalidInput("no start attempt made".into())))
    }

    fn start_once(users: &[User], options: &Options) -> Result<MailServers> {
        let began = Instant::now();
        let users = normalise_users(users)?;
        let domains = domains_of(&users)?;
        stale::reap_stale();
        let dir = tempfile::Builder::new()
            .prefix(stale::DIR_PREFIX)
            .tempdir()
            .map_err(ServerError::io("creating temp dir"))?;
        let root = dir.path().to_path_buf();
        // Postfix and Dovecot helpers run as other users and must traverse the temp dir.
        set_mode(&root, 0o755)?;
        let instance = format!(
            "komle-{}",
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );

        let tls = TestTls::generate(&root.join("tls"), &instance)?;
        // The servers' helpers (not root) read the client CA: a copy inside the temp dir.
        let client_ca = match &options.client_ca {
            Some(ca) => {
                let copy = root.join("tls").join("client-ca.pem");
                std::fs::copy(ca, &copy).map_err(ServerError::io_path("copying", ca))?;
                set_mode(&copy, 0o644)?;
                Some(copy)
            }
            None => None,
        };
        let mail_owner = (sysuser::uid("mail")?, sysuser::primary_gid("mail")?);
        let mail_root = root.join("mail");
        std::fs::create_dir(&mail_root).map_err(ServerError::io_path("creating", &mail_root))?;
        chown(&mail_root, Some(mail_owner.0), Some(mail_owner.1))
            .map_err(ServerError::io_path("chown", &mail_root))?;
        set_mode(&mail_root, 0o700)?;

        let localhost = Ipv4Addr::LOCALHOST;
        let pop3s_port = process::free_port()?;
        let mut smtps_port = process::free_port()?;
        while smtps_port == pop3s_port {
            smtps_port = process::free_port()?;
        }
        let dovecot_layout = DovecotLayout::new(
            &root.join("dovecot"),
            &mail_root,
            SocketAddr::from((localhost, pop3s_port)),
        );
        std::fs::create_dir(&dovecot_layout.root)
            .map_err(ServerError::io_path("creating", &dovecot_layout.root))?;
        let passwd = dovecot_layout.root.join("users.passwd");
        write_private(&passwd, dovecot::passwd_file(&users)?.as_bytes())?;
        // Dovecot's auth process reads it as `default_internal_user` (dovecot), not as root.
        let internal = sysuser::uid("dovecot")?;
        chown(&passwd, Some(internal), None).map_err(ServerError::io_path("chown", &passwd))?;
        let conf = dovecot_layout.root.join("dovecot.conf");
        write_private(
            &conf,
            dovecot::config(
                &dovecot_layout,
                &tls,
                &passwd,
                &instance,
                mail_owner.0,
                mail_owner.1,
                client_ca.as_deref(),
            )
            .as_bytes(),
        )?;

        let postfix_layout = PostfixLayout::new(
            &root.join("postfix"),
            SocketAddr::from((localhost, smtps_port)),
        );
        postfix::prepare_dirs(&postfix_layout)?;
        let addresses: Vec<String> = users.iter().map(|u| u.address.clone()).collect();
        let cfg = &postfix_layout.config_dir;
        write_file(
            &cfg.join("vmailbox"),
            postfix::vmailbox_map(&addresses).as_bytes(),
        )?;
        write_file(
            &cfg.join("main.cf"),
            postfix::main_cf(
                &postfix_layout,
                &tls,
                &domains,
                &dovecot_layout.lmtp_socket,
                &dovecot_layout.auth_socket,
                client_ca.as_deref(),
            )
            .as_bytes(),
        )?;
        write_file(
            &cfg.join("master.cf"),
            postfix::master_cf(postfix_layout.smtps).as_bytes(),
        )?;

        postfix::backdate_config(&postfix_layout)?;

        // Both start in parallel (Postfix needs Dovecot's sockets only per connection). The
        // record is rewritten after each spawn so a test killed mid-start is reaped later.
        stale::record(&root, &[])?;
        let mut dovecot = dovecot::spawn(&dovecot_layout, &conf)?;
        stale::record(&root, &[dovecot.pgid()])?;
        let mut postfix = postfix::spawn(&postfix_layout)?;
        stale::record(&root, &[dovecot.pgid(), postfix.pgid()])?;
        dovecot::wait_ready(&mut dovecot, &dovecot_layout, READY_TIMEOUT)?;
        postfix::wait_ready(&mut postfix, &postfix_layout, READY_TIMEOUT)?;
        Ok(MailServers {
            postfix: Some(postfix),
            dovecot,
            postfix_layout,
            dovecot_layout,
            tls,
            users,
            mail_owner,
            startup: began.elapsed(),
            dir,
        })
    }

    /// Postfix's SMTPS (implicit TLS) address. After [`MailServers::stop_smtp`] nothing listens
    /// there any more.
    pub fn smtps_addr(&self) -> SocketAddr {
        self.postfix_layout.smtps
    }

    /// Dovecot's POP3S (implicit TLS) address.
    pub fn pop3s_addr(&self) -> SocketAddr {
        self.dovecot_layout.pop3s
    }

    /// PEM file of the test CA that issued both servers' certificate.
    pub fn ca_pem_path(&self) -> &Path {
        &self.tls.ca_pem
    }

    /// All generated TLS files (CA, server certificate and key).
    pub fn tls(&self) -> &TestTls {
        &self.tls
    }

    /// Dovecot's LMTP unix socket (what Postfix delivers to).
    pub fn lmtp_socket_path(&self) -> &Path {
        &self.dovecot_layout.lmtp_socket
    }

    /// The users as configured (addresses lower-cased).
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Root of this instance's temp dir (configs, logs, Maildirs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Wall-clock time [`MailServers::start`] took until both servers accepted connections.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The Maildir of `address` (which may not exist before the first delivery).
    pub fn maildir_path(&self, address: &str) -> Result<PathBuf> {
        maildir::maildir_of(&self.dovecot_layout.mail_root, address)
    }

    /// The raw stored bytes of every message in `address`'s Maildir (`new/` and `cur/`), oldest
    /// first. Messages delivered through Postfix/LMTP carry the `Return-Path`, `Received` (and,
    /// for single-recipient deliveries, `Delivered-To`) headers the servers prepend, and are
    /// stored with bare LF line ends (Dovecot's Maildir format; POP3 serves them as CRLF).
    pub fn maildir_messages(&self, address: &str) -> Result<Vec<Vec<u8>>> {
        maildir::read_messages(&self.maildir_path(address)?)
    }

    /// Polls the Maildir every 25 ms until it holds at least `n` messages; returns them all.
    /// WHY polling: delivery is asynchronous (queue manager → LMTP), so this is the only
    /// reliable "mail has arrived" signal without sleeping for a guessed time.
    pub fn wait_for_messages(
        &self,
        address: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        let dir = self.maildir_path(address)?;
        let deadline = Instant::now() + timeout;
        loop {
            let files = maildir::message_files(&dir)?;
            if files.len() >= n {
                // A file only appears in new/ after it is complete (Maildir rename protocol).
                return maildir::read_messages(&dir);
            }
            if Instant::now() >= deadline {
                return Err(ServerError::Timeout {
                    address: address.to_string(),
                    wanted: n,
                    found: files.len(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Puts `bytes` unchanged into `address`'s Maildir (`new/`), bypassing both servers: what
    /// POP3 then serves is exactly these bytes (with bare LF sent as CRLF). Returns the file.
    pub fn deliver_direct(&self, address: &str, bytes: &[u8]) -> Result<PathBuf> {
        maildir::deliver(&self.maildir_path(address)?, bytes, self.mail_owner)
    }

    /// Delivers `bytes` to `address` through Dovecot's LMTP socket (Dovecot adds `Return-Path`
    /// and `Delivered-To`); works while Postfix is stopped.
    pub fn deliver_lmtp(&self, address: &str, bytes: &[u8]) -> Result<()> {
        lmtp::deliver(&self.dovecot_layout.lmtp_socket, address, bytes)
    }

    /// Stops Postfix (the whole process group) so the SMTPS port refuses connections: for tests
    /// of "mail server unreachable". Dovecot keeps running. Idempotent.
    pub fn stop_smtp(&mut self) {
        if let Some(mut p) = self.postfix.take() {
            p.stop();
        }
    }

    /// Starts Postfix again after [`MailServers::stop_smtp`], on the same SMTPS address and with
    /// the same queue (for tests of "mail server back again"). Does nothing if it is running.
    pub fn restart_smtp(&mut self) -> Result<()> {
        if self.postfix.is_some() {
            return Ok(());
        }
        let mut postfix = postfix::spawn(&self.postfix_layout)?;
        stale::record(self.dir.path(), &[self.dovecot.pgid(), postfix.pgid()])?;
        postfix::wait_ready(&mut postfix, &self.postfix_layout, READY_TIMEOUT)?;
        self.postfix = Some(postfix);
        Ok(())
    }

    /// Process group of Postfix's `master` while it runs (for leak checks with `pgrep -g`).
    pub fn postfix_pgid(&self) -> Option<i32> {
        self.postfix.as_ref().map(ServerProcess::pgid)
    }

    /// Process group of Dovecot's master process.
    pub fn dovecot_pgid(&self) -> i32 {
        self.dovecot.pgid()
    }

    /// The last lines of Postfix's log (delivery status, TLS and SASL errors).
    pub fn postfix_log_tail(&self) -> String {
        error::log_tail(
            &[
                self.postfix_layout.log.clone(),
                self.postfix_layout.root.join("console.log"),
            ],
            40,
        )
    }

    /// The last lines of Dovecot's log.
    pub fn dovecot_log_tail(&self) -> String {
        self.dovecot.log_tail()
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        self.stop_smtp();
        self.dovecot.stop();
    }
}

/// A 127.0.0.1 address on which nothing listens (a port just released): for tests of "connection
/// refused" without starting anything.
pub fn closed_port() -> Result<SocketAddr> {
    Ok(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        process::free_port()?,
    )))
}

fn is_port_clash(e: &ServerError) -> bool {
    match e {
        ServerError::NotReady {
            reason, log_tail, ..
        } => {
            let text = format!("{reason}\n{log_tail}");
            text.contains("in use") || text.contains("Address already")
        }
        _ => false,
    }
}

fn normalise_users(users: &[User]) -> Result<Vec<User>> {
    if users.is_empty() {
        return Err(ServerError::InvalidInput(
            "at least one user is needed".into(),
        ));
    }
    users
        .iter()
        .map(|u| {
            let address = u.address.to_ascii_lowercase();
            maildir::split_address(&address)?;
            if address.contains([' ', '\t', ',', ':', '<', '>', '\r', '\n']) {
                return Err(ServerError::InvalidInput(format!("address {address:?}")));
            }
            Ok(User {
                address,
                password: u.password.clone(),
            })
        })
        .collect()
}

fn domains_of(users: &[User]) -> Result<Vec<String>> {
    let mut domains = Vec::new();
    for u in users {
        let (_, d) = maildir::split_address(&u.address)?;
        if !domains.iter().any(|x| x == d) {
            domains.push(d.to_string());
        }
    }
    Ok(domains)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ServerError::io_path("chmod", path))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(ServerError::io_path("writing", path))?;
    set_mode(path, 0o644)
}

/// Files with passwords: readable by their owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(ServerError::io_path("writing", path))?;
    set_mode(path, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_lowercased_and_domains_deduplicated() {
        let users = normalise_users(&[
            User::new("Alice@A.example", "x"),
            User::new("carol@a.example", "y"),
            User::new("bob@b.example", "z"),
        ])
        .expect("valid users");
        assert_eq!(users[0].address, "alice@a.example");
        assert_eq!(
            domains_of(&users).expect("domains"),
            vec!["a.example", "b.example"]
        );
    }

    #[test]
    fn unusable_users_are_rejected() {
        assert!(normalise_users(&[]).is_err());
        assert!(normalise_users(&[User::new("no-at", "x")]).is_err());
        assert!(normalise_users(&[User::new("a b@c.example", "x")]).is_err());
        assert!(normalise_users(&[User::new("a@c.example:0", "x")]).is_err());
    }
}
