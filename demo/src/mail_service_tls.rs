//! TLS between the proxies and the embedded mail service, as towards a KIM provider: mutual TLS
//! with the module's C.CM.TLS-CS from its key store (KOM-LE-A_2074, A_2182-01), and the mail
//! server's certificate checked by the Konnektor's VerifyCertificate after each handshake
//! (A_2075-01, verdicts cached per A_22348).
//!
//! WHY the demo does it too: the demo, the fault loops and the load tools build their own
//! pipeline instead of going through `services::build`, so without this they would show and
//! stress a connect path the daemon no longer has. The mail service (MiniMta, MiniPop3)
//! requires the client certificate, the simulator trusts the mail service's CA, and the
//! proxies get the same [`ServerCertificateCheck`] the daemon assembles.
//!
//! One exception: the load tools measure the mail service alone as a baseline, with a client
//! that has no C.CM.TLS-CS. For them (`komle-demo --precomputed-konnektor`, benchmarks only)
//! the mail service still asks for and verifies a client certificate but admits a client
//! without one; the proxies present theirs either way.

use std::path::Path;
use std::sync::Arc;

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::servers::ClientCertificates;
use komle_conformance::servers::client_certs::VALID_ALIAS;
use komle_conformance::world::World;
use komle_service::driver::ServerCertificateVerifier;
use komle_service::proxy_server::Proxy;
use komle_service::server_cert_check::ServerCertificateCheck;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::embedded::EmbeddedError;

/// The TLS set-up of both sides of the mail-service connection.
pub struct MailServiceTls {
    /// What the mail service presents; it requires a client certificate from the test TI CA.
    pub server: Arc<ServerConfig>,
    /// What the proxies use towards it: trusts the mail service's CA, presents the key
    /// store's C.CM.TLS-CS.
    pub upstream: Arc<ClientConfig>,
    /// The Konnektor's check of the mail service's certificate, shared by both proxies.
    pub check: Arc<ServerCertificateCheck>,
}

impl MailServiceTls {
    /// Writes the key store (the provider's PKCS#12 imported as an admin does) and the CA
    /// files into `dir` and builds both configurations. `mail` is the mail service's
    /// certificate; the simulator must already trust `mail.ca_der` for `check` to say VALID.
    /// `admit_without_certificate`: see the module docs (benchmark baselines only).
    pub fn new(
        dir: &Path,
        world: &World,
        mail: &LoopbackTls,
        check: ServerCertificateCheck,
        admit_without_certificate: bool,
    ) -> Result<MailServiceTls, EmbeddedError> {
        let fail = |what: &'static str| move |e: String| EmbeddedError(format!("{what}: {e}"));
        let set = world
            .cm_tls()
            .map_err(|e| EmbeddedError(format!("C.CM.TLS-CS: {e}")))?;
        let certs =
            ClientCertificates::write(dir, set).map_err(|e| fail("key store")(e.to_string()))?;
        let mail_ca = dir.join("mail-service-ca.pem");
        std::fs::write(&mail_ca, &mail.ca_pem)
            .map_err(|e| fail("mail service CA")(e.to_string()))?;
        let upstream = certs
            .rustls_client_config(&mail_ca, VALID_ALIAS)
            .map_err(|e| fail("upstream TLS")(e.to_string()))?;
        let server =
            asking_for_client_certificates(dir, mail, &set.ca.cert_der, admit_without_certificate)
                .map_err(fail("mail service TLS"))?;
        Ok(MailServiceTls {
            server,
            upstream,
            check: Arc::new(check),
        })
    }

    /// `proxy` with the server-certificate check, as the daemon's assembly wires it.
    pub fn proxy(&self, proxy: impl Into<Proxy>) -> Proxy {
        let check: Arc<dyn ServerCertificateVerifier> = self.check.clone();
        proxy.into().with_server_check(Some(check))
    }
}

/// `mail`'s server certificate, accepting only clients with a certificate from `client_ca`
/// (and, with `admit_without`, clients that present none).
fn asking_for_client_certificates(
    dir: &Path,
    mail: &LoopbackTls,
    client_ca: &[u8],
    admit_without: bool,
) -> Result<Arc<ServerConfig>, String> {
    // The certificate and key as PEM files, read back with the daemon's own loaders.
    let (cert, key) = (dir.join("mail-service.pem"), dir.join("mail-service.key"));
    std::fs::write(&cert, &mail.server_cert_pem).map_err(|e| e.to_string())?;
    std::fs::write(&key, &mail.server_key_pem).map_err(|e| e.to_string())?;
    let chain = komle_service::tls::load_certificates(&cert).map_err(|e| e.to_string())?;
    let key = komle_service::tls::load_private_key(&key).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca.to_vec()))
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    if admit_without {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder.build().map_err(|e| e.to_string())?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use komle_conformance::sim::config::Operation;
    use komle_core::sasl::plain;
    use komle_core::secret::Password;

    use crate::embedded::{Embedded, EmbeddedOptions, PASSWORD};

    const T: Duration = Duration::from_secs(30);

    /// The final line of the next SMTP reply ("" at EOF or on a TLS error).
    fn reply(io: &mut impl BufRead) -> String {
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).unwrap_or(0) == 0 {
                return String::new();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    /// Logs in through the SMTP proxy; the reply to AUTH.
    fn login(env: &Embedded) -> String {
        let mut io = env.client(env.proxy_addr, T).unwrap();
        assert!(reply(&mut io).starts_with("220 "));
        let auth = plain::encode_response(&env.login(), &Password::new(PASSWORD));
        let mut answers = Vec::new();
        for line in [
            "EHLO demo-test".to_owned(),
            format!("AUTH PLAIN {auth}"),
            "QUIT".into(),
        ] {
            io.get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .unwrap();
            answers.push(reply(&mut io));
        }
        answers.swap_remove(1)
    }

    #[test]
    fn a_2074_a_2075_01_embedded_mail_service_requires_the_client_certificate_and_is_checked_once()
    {
        let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
        let verify_calls = || {
            env.sim
                .simulator()
                .call_log()
                .iter()
                .filter(|c| c.operation == Operation::VerifyCertificate)
                .count()
        };

        // Through the proxy: mutual TLS, the Konnektor asked once, then the cached verdict.
        assert!(login(&env).starts_with("235 "));
        assert!(login(&env).starts_with("235 "));
        assert_eq!(verify_calls(), 1, "{:?}", env.sim.simulator().call_log());

        // A client without the C.CM.TLS-CS gets no greeting from the mail service.
        let sock = TcpStream::connect(env.mta.addr()).unwrap();
        sock.set_read_timeout(Some(T)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(env.mta_tls.client_config(), name).unwrap();
        let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
        assert_eq!(reply(&mut io), "", "served without a client certificate");
    }
}
