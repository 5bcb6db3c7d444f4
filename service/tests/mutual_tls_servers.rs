//! Mutual TLS with real mail servers (KOM-LE-A_2074, A_2182-01): Postfix (SMTPS) and Dovecot
//! (POP3S) configured to require client certificates from the test TI PKI accept the
//! Clientmodul's C.CM.TLS-CS identity taken from its key store (A_2065, A_18783), and refuse a
//! client without a certificate, with an expired one, and with one from a CA they do not trust:
//! Postfix with `421 4.7.1` in place of the greeting, Dovecot (which greets before any login)
//! by refusing the login.
//!
//! Needs root and the Debian packages the servers harness needs (see
//! `komle_conformance::servers`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use komle_conformance::pki::{TestPki, pkcs12};
use komle_conformance::servers::{MailServers, Options, User};
use komle_core::secret::Password;
use komle_service::config::{KeySettings, UpstreamSettings};
use komle_service::key_store::KeyStore;
use komle_service::tls;
use rustls::ClientConfig;

const USER: &str = "praxis@komle.test";
const USER_PW: &str = "praxis-pw";
const TRANSPORT_PW: &str = "vom-Anbieter";
const STORE_PW: &str = "store-pw";
const T: Duration = Duration::from_secs(10);

/// The key store as a practice has it after `komle-cm keys import`: the provider's PKCS#12
/// for the valid C.CM.TLS-CS as "kim", plus the expired and the wrong-CA one for the tests.
fn key_store(dir: &Path, pki: &TestPki, now: SystemTime) -> KeySettings {
    let set = pki.cm_tls(now).unwrap();
    let keys = KeySettings {
        store: dir.join("keys.p12"),
        password_file: Some(dir.join("store-password")),
    };
    std::fs::write(dir.join("store-password"), format!("{STORE_PW}\n")).unwrap();
    std::fs::set_permissions(
        dir.join("store-password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let mut store = KeyStore::open_or_create(&keys.store, Password::new(STORE_PW)).unwrap();
    for (alias, leaf, issuer) in [
        ("kim", &set.valid, &set.ca),
        ("expired", &set.expired, &set.ca),
        ("wrong-ca", &set.wrong_ca, &set.wrong_ca_root),
    ] {
        let file = dir.join(format!("{alias}.p12"));
        std::fs::write(&file, pkcs12(leaf, &[issuer], alias, TRANSPORT_PW).unwrap()).unwrap();
        store
            .import_pkcs12(alias, &file, &Password::new(TRANSPORT_PW), false)
            .unwrap();
    }
    store.save().unwrap();
    keys
}

/// The upstream client configuration the daemon builds for `client_identity`.
fn upstream(
    servers: &MailServers,
    keys: &KeySettings,
    identity: Option<&str>,
) -> Arc<ClientConfig> {
    let settings = UpstreamSettings {
        ca: Some(servers.ca_pem_path().to_path_buf()),
        client_identity: identity.map(str::to_owned),
        ..UpstreamSettings::default()
    };
    tls::upstream_client_config(&settings, Some(keys)).unwrap()
}

/// A TLS session right after TCP connect (A_2074: implicit TLS, no plaintext).
struct Session {
    reader: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl Session {
    fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Session {
        let tcp = TcpStream::connect_timeout(&addr, T).unwrap();
        tcp.set_read_timeout(Some(T)).unwrap();
        let conn =
            rustls::ClientConnection::new(config, tls::server_name("127.0.0.1").unwrap()).unwrap();
        Session {
            reader: BufReader::new(rustls::StreamOwned::new(conn, tcp)),
        }
    }

    /// The next line, or what ended the session instead (a TLS alert, EOF).
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn send(&mut self, command: &str) -> Result<String, String> {
        let s = self.reader.get_mut();
        s.write_all(format!("{command}\r\n").as_bytes())
            .and_then(|()| s.flush())
            .map_err(|e| e.to_string())?;
        self.line()
    }
}

/// Postfix completes the TLS handshake, then answers a missing or untrusted client certificate
/// with `421 4.7.1` instead of the greeting and serves no command.
fn assert_smtp_refused(what: &str, addr: SocketAddr, config: Arc<ClientConfig>, reason: &str) {
    let mut s = Session::connect(addr, config);
    let first = s.line();
    assert_eq!(
        first,
        Ok(format!("421 4.7.1 localhost Error: {reason}")),
        "SMTPS, {what}"
    );
    // Whatever still comes is no service: no 250 to EHLO, then the connection is gone.
    let mut replies = Vec::new();
    for cmd in ["EHLO clientmodul.test", "MAIL FROM:<praxis@komle.test>"] {
        replies.push(s.send(cmd));
    }
    assert!(
        replies
            .iter()
            .all(|r| !r.as_ref().is_ok_and(|l| l.starts_with("250"))),
        "SMTPS, {what}: {replies:?}"
    );
    assert!(
        replies.last().unwrap().is_err(),
        "SMTPS, {what}: {replies:?}"
    );
}

/// Dovecot greets before any login, but refuses the login of a client without a valid
/// certificate (`auth_ssl_require_client_cert`), and serves no mailbox command.
fn assert_pop3_refused(what: &str, addr: SocketAddr, config: Arc<ClientConfig>) {
    let mut s = Session::connect(addr, config);
    let greeting = s.line();
    assert!(
        greeting.as_ref().is_ok_and(|l| l.starts_with("+OK")),
        "POP3S, {what}: {greeting:?}"
    );
    s.send(&format!("USER {USER}")).unwrap();
    assert_eq!(
        s.send(&format!("PASS {USER_PW}")),
        Ok("-ERR [AUTH] Client didn't present valid SSL certificate".to_owned()),
        "POP3S, {what}"
    );
    let stat = s.send("STAT");
    assert!(
        !stat.as_ref().is_ok_and(|l| l.starts_with("+OK")),
        "POP3S, {what}: STAT {stat:?}"
    );
}

#[test]
fn a_2074_a_2182_servers_requiring_client_certificates_accept_only_the_stored_c_cm_tls_cs() {
    let now = SystemTime::now();
    let pki = TestPki::generate(now).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ti-ca.pem");
    std::fs::write(&ca, pki.ca.cert_pem()).unwrap();
    let keys = key_store(dir.path(), &pki, now);
    let servers = MailServers::start_with(
        &[User::new(USER, USER_PW)],
        &Options::require_client_certificates(&ca),
    )
    .unwrap_or_else(|e| panic!("mail servers did not start: {e}"));

    // With the identity from the key store: greetings, and a session that works.
    let kim = upstream(&servers, &keys, Some("kim"));
    let mut smtp = Session::connect(servers.smtps_addr(), kim.clone());
    let greeting = smtp.line().unwrap_or_else(|e| {
        panic!("SMTPS: {e}\n{}", servers.postfix_log_tail());
    });
    assert!(greeting.starts_with("220 "), "{greeting}");
    let ehlo = smtp.send("EHLO clientmodul.test").unwrap();
    assert!(ehlo.starts_with("250"), "{ehlo}");
    let mut pop3 = Session::connect(servers.pop3s_addr(), kim);
    let greeting = pop3.line().unwrap_or_else(|e| {
        panic!("POP3S: {e}\n{}", servers.dovecot_log_tail());
    });
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(
        pop3.send(&format!("USER {USER}"))
            .unwrap()
            .starts_with("+OK")
    );
    let pass = pop3.send(&format!("PASS {USER_PW}")).unwrap();
    assert!(
        pass.starts_with("+OK"),
        "{pass}\n{}",
        servers.dovecot_log_tail()
    );
    assert!(pop3.send("QUIT").unwrap().starts_with("+OK"));

    // Without a client certificate (today's client_config), expired, wrong CA: refused.
    for (what, identity, reason) in [
        (
            "no client certificate",
            None,
            "No client certificate presented",
        ),
        (
            "expired certificate",
            Some("expired"),
            "Client certificate not trusted",
        ),
        (
            "certificate from a wrong CA",
            Some("wrong-ca"),
            "Client certificate not trusted",
        ),
    ] {
        let config = upstream(&servers, &keys, identity);
        assert_smtp_refused(what, servers.smtps_addr(), config.clone(), reason);
        assert_pop3_refused(what, servers.pop3s_addr(), config);
    }
    // The client-certificate settings are ones both servers understand.
    let postfix = servers.postfix_log_tail();
    assert!(!postfix.contains("warning:"), "{postfix}");
    let dovecot = servers.dovecot_log_tail();
    assert!(!dovecot.contains("Warning:"), "{dovecot}");
}
