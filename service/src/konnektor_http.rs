//! HTTPS transport to the Konnektor (SOAP 1.1 calls and the `connector.sds` download).
//!
//! The SOAP messages themselves are built and parsed in `komle-core`; this module only moves
//! bytes. ureq is blocking, so calls run on the `blocking` thread pool and never stall the
//! executor, smol's or tokio's; at most `[konnektor] max_parallel_calls` at once
//! ([`crate::call_limit`]), the rest wait as tasks. One `ureq::Agent` is kept for the daemon's
//! lifetime and keeps as many connections alive as calls may run, so TLS connections to the
//! Konnektor are reused.
//!
//! Towards the Konnektor TLS is always on; the client authenticates with a certificate (mutual
//! TLS, the default) or HTTP Basic (NOTES, gemSpec_CM_KOMLE §3.8). SOAP 1.1 reports faults with
//! HTTP 500 and a fault envelope, so [`KonnektorHttp::post_soap`] returns the body of a 500 as
//! a normal response for the core to parse; other non-2xx statuses are errors.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::sync::Arc;

use base64::Engine;
use komle_core::secret::Password;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::call_limit::CallLimit;
use crate::config::{KonnektorAuth, KonnektorSettings};
use crate::tls::TlsError;

/// Largest response body accepted: a DecryptDocument answer carries a whole message (25 MB
/// net, A_2004) in base64 inside XML.
pub const MAX_RESPONSE_BYTES: u64 = 128 * 1024 * 1024;

/// Why a Konnektor call failed at the transport level.
#[derive(Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No complete answer within the configured Konnektor timeout.
    Timeout,
    /// Nobody listens (or the host is unknown / unreachable).
    ConnectionRefused(String),
    /// The connection broke before a complete answer arrived.
    ConnectionDropped(String),
    /// TLS failed (untrusted Konnektor certificate, client certificate refused, ...).
    Tls(String),
    /// An HTTP status other than 2xx and the SOAP fault status 500.
    Status { status: u16, body: Vec<u8> },
    /// The URL cannot be used.
    BadUrl(String),
    /// Anything else ureq reports.
    Other(String),
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body of an error page may echo request content: print only its size.
        match self {
            TransportError::Status { status, body } => f
                .debug_struct("Status")
                .field("status", status)
                .field("body_len", &body.len())
                .finish(),
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Timeout => f.write_str("Konnektor: timeout"),
            TransportError::ConnectionRefused(e) => write!(f, "Konnektor: cannot connect: {e}"),
            TransportError::ConnectionDropped(e) => write!(f, "Konnektor: connection dropped: {e}"),
            TransportError::Tls(e) => write!(f, "Konnektor: TLS: {e}"),
            TransportError::Status { status, body } => {
                write!(f, "Konnektor: HTTP {status} ({} bytes)", body.len())
            }
            TransportError::BadUrl(e) => write!(f, "Konnektor: bad URL: {e}"),
            TransportError::Other(e) => write!(f, "Konnektor: {e}"),
        }
    }
}

impl std::error::Error for TransportError {}

impl TransportError {
    /// The kind core's pipelines see: the 451 text and the A_23165 note name it, without the
    /// library's error text (which stays in the log line).
    pub fn kind(&self) -> komle_core::konnektor::TransportError {
        use komle_core::konnektor::TransportError as Kind;
        match self {
            TransportError::Timeout => Kind::Timeout,
            TransportError::ConnectionRefused(_) => Kind::Unreachable,
            TransportError::ConnectionDropped(_) => Kind::ConnectionLost,
            TransportError::Tls(_) => Kind::Tls,
            TransportError::Status { status, .. } => Kind::HttpStatus(*status),
            TransportError::BadUrl(_) | TransportError::Other(_) => Kind::Other,
        }
    }
}

fn map_io(e: &std::io::Error) -> TransportError {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => TransportError::Timeout,
        ErrorKind::ConnectionRefused
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable => TransportError::ConnectionRefused(e.to_string()),
        ErrorKind::InvalidData if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            TransportError::Tls(e.to_string())
        }
        _ => TransportError::ConnectionDropped(e.to_string()),
    }
}

fn map_error(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::Io(io) => map_io(&io),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            TransportError::ConnectionRefused(e.to_string())
        }
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) | ureq::Error::Pem(_) => {
            TransportError::Tls(e.to_string())
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::RequireHttpsOnly(_) => {
            TransportError::BadUrl(e.to_string())
        }
        ureq::Error::Protocol(_) => TransportError::ConnectionDropped(e.to_string()),
        other => TransportError::Other(other.to_string()),
    }
}

/// The Konnektor HTTP client. Cheap to clone (the agent and its connection pool are shared).
#[derive(Clone)]
pub struct KonnektorHttp {
    agent: ureq::Agent,
    /// `Basic …` header value when Basic auth is configured.
    authorization: Option<Arc<Password>>,
    /// Shared by the clones: the bound on calls in flight.
    calls: CallLimit,
}

impl fmt::Debug for KonnektorHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KonnektorHttp")
            .field("basic_auth", &self.authorization.is_some())
            .field("max_parallel_calls", &self.calls.limit())
            .finish()
    }
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{}: cannot open: {e}", path.display())))
}

fn certificates(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, TlsError> {
    let certs: Vec<Certificate<'static>> = crate::tls::load_certificates(path)?
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    Ok(certs)
}

impl KonnektorHttp {
    /// Builds the agent from `[konnektor]`: trust anchor (the configured CA, else webpki roots),
    /// client certificate or Basic credentials, and the timeout for each whole call.
    pub fn new(settings: &KonnektorSettings) -> Result<Self, TlsError> {
        let roots = match &settings.ca {
            Some(ca) => RootCerts::Specific(Arc::new(certificates(ca)?)),
            None => RootCerts::WebPki,
        };
        let mut authorization = None;
        let mut client_cert = None;
        match &settings.auth {
            KonnektorAuth::ClientCertificate { certificate, key } => {
                let chain = certificates(certificate)?;
                let key_pem = read_pem(key)?;
                let key = PrivateKey::from_pem(&key_pem).map_err(|e| {
                    TlsError(format!("{}: no usable private key: {e}", key.display()))
                })?;
                client_cert = Some(ClientCert::new_with_certs(&chain, key));
            }
            KonnektorAuth::Basic { user, password } => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                authorization = Some(Arc::new(Password::new(format!("Basic {token}"))));
            }
            KonnektorAuth::None => {}
        }
        let tls = TlsConfig::builder()
            .root_certs(roots)
            .client_cert(client_cert)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .user_agent("komle-cm")
            .max_idle_connections_per_host(settings.max_parallel_calls.max(1))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            authorization,
            calls: CallLimit::new(settings.max_parallel_calls),
        })
    }

    fn finish(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        soap: bool,
    ) -> Result<Vec<u8>, TransportError> {
        let mut response = response.map_err(map_error)?;
        let status = response.status().as_u16();
        // Sized from Content-Length (within the limit) so a 35 MB answer is read into one
        // buffer instead of doubling its way there (which briefly holds 1.5x its size twice).
        let expected = response
            .body()
            .content_length()
            .map_or(0, |n| n.min(MAX_RESPONSE_BYTES));
        let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .reader()
            .read_to_end(&mut body)
            .map_err(|e| map_error(ureq::Error::from(e)))?;
        if soap && status == 500 {
            // Errors by gematik code for /metrics (only the code is read).
            crate::stats::dependencies().konnektor_fault(&body);
        }
        if (200..300).contains(&status) || (soap && status == 500) {
            Ok(body)
        } else {
            Err(TransportError::Status { status, body })
        }
    }

    /// Blocking SOAP 1.1 POST. Returns the body of 2xx and 500 (SOAP fault) answers.
    pub fn post_soap_blocking(
        &self,
        url: &str,
        soap_action: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{soap_action}\""));
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.expose());
        }
        // The request carries the message (base64): wiped and freed once sent, before the
        // answer, which is as large, is read (A_2005, peak memory).
        let body = komle_core::secret::SecretBytes::from(body);
        let started = std::time::Instant::now();
        let response = request.send(body.as_slice());
        drop(body);
        let result = self.finish(response, true);
        crate::stats::dependencies().konnektor_call(started.elapsed(), result.is_ok());
        result
    }

    /// Blocking GET (e.g. `connector.sds`). Returns the body of 2xx answers.
    pub fn get_blocking(&self, url: &str) -> Result<Vec<u8>, TransportError> {
        let mut request = self.agent.get(url);
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.expose());
        }
        let started = std::time::Instant::now();
        let result = self.finish(request.call(), false);
        crate::stats::dependencies().konnektor_call(started.elapsed(), result.is_ok());
        result
    }

    /// [`Self::post_soap_blocking`] off the executor, within the call limit.
    pub async fn post_soap(
        &self,
        url: &str,
        soap_action: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let this = self.clone();
        let (url, action) = (url.to_owned(), soap_action.to_owned());
        self.calls
            .run(move || this.post_soap_blocking(&url, &action, body))
            .await
    }

    /// [`Self::get_blocking`] off the executor, within the call limit.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, TransportError> {
        let this = self.clone();
        let url = url.to_owned();
        self.calls.run(move || this.get_blocking(&url)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{self, TestPki};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// What the test server saw.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    enum Reply {
        Respond(u16, Vec<u8>),
        Sleep(Duration),
        Drop,
    }

    struct Server {
        port: u16,
        accepted: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    fn server(pki: &TestPki, require_client_cert: bool, handler: fn(&Seen) -> Reply) -> Server {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = crate::tls::load_certificates(&pki.server_cert()).unwrap();
        let key = crate::tls::load_private_key(&pki.server_key()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let config = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in crate::tls::load_certificates(&pki.ca()).unwrap() {
                roots.add(c).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        }
        .with_single_cert(certs, key)
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (acc, s) = (accepted.clone(), seen.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                acc.fetch_add(1, Ordering::SeqCst);
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    serve_connection(&mut tls, &s, handler);
                });
            }
        });
        Server {
            port,
            accepted,
            seen,
        }
    }

    fn serve_connection<S: Read + Write>(
        stream: &mut S,
        seen: &Mutex<Vec<Seen>>,
        handler: fn(&Seen) -> Reply,
    ) {
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    headers.push((n.trim().to_owned(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let request = Seen {
                method,
                path,
                headers,
                body,
            };
            let reply = handler(&request);
            seen.lock().unwrap().push(request);
            match reply {
                Reply::Respond(status, body) => {
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let s = reader.get_mut();
                    if s.write_all(head.as_bytes()).is_err() || s.write_all(&body).is_err() {
                        return;
                    }
                    let _ = s.flush();
                }
                Reply::Sleep(d) => {
                    std::thread::sleep(d);
                    return;
                }
                Reply::Drop => return,
            }
        }
    }

    fn settings(pki: &TestPki, auth: KonnektorAuth, timeout: Duration) -> KonnektorSettings {
        KonnektorSettings {
            sds_url: "https://127.0.0.1/connector.sds".into(),
            ca: Some(pki.ca()),
            auth,
            timeout,
            max_parallel_calls: crate::config::DEFAULT_KONNEKTOR_PARALLEL_CALLS,
        }
    }

    fn mtls(pki: &TestPki) -> KonnektorAuth {
        KonnektorAuth::ClientCertificate {
            certificate: pki.client_cert(),
            key: pki.client_key(),
        }
    }

    const T: Duration = Duration::from_secs(10);

    fn echo(seen: &Seen) -> Reply {
        Reply::Respond(200, [b"echo:".as_slice(), &seen.body].concat())
    }

    #[test]
    fn soap_post_with_client_certificate_and_connection_reuse() {
        let pki = test_pki::make("Konnektor CA");
        let srv = server(&pki, true, echo);
        let http = KonnektorHttp::new(&settings(&pki, mtls(&pki), T)).unwrap();
        let url = format!("https://127.0.0.1:{}/ws/SignatureService", srv.port);
        smol::block_on(async {
            for i in 0..3 {
                let body = format!("<Envelope>{i}</Envelope>").into_bytes();
                let answer = http
                    .post_soap(
                        &url,
                        "http://ws.gematik.de/conn/SignatureService/v7.5#SignDocument",
                        body.clone(),
                    )
                    .await
                    .unwrap();
                assert_eq!(answer, [b"echo:".as_slice(), &body].concat());
            }
        });
        assert_eq!(
            srv.accepted.load(Ordering::SeqCst),
            1,
            "one TLS connection reused"
        );
        let seen = srv.seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/ws/SignatureService");
        assert_eq!(
            seen[0].header("SOAPAction"),
            Some("\"http://ws.gematik.de/conn/SignatureService/v7.5#SignDocument\"")
        );
        assert_eq!(
            seen[0].header("Content-Type"),
            Some("text/xml; charset=utf-8")
        );
        assert_eq!(seen[0].header("Authorization"), None);
    }

    #[test]
    fn client_certificate_required_but_missing_fails() {
        let pki = test_pki::make("Konnektor CA");
        let srv = server(&pki, true, echo);
        let http = KonnektorHttp::new(&settings(&pki, KonnektorAuth::None, T)).unwrap();
        let url = format!("https://127.0.0.1:{}/ws", srv.port);
        let e = http
            .post_soap_blocking(&url, "a", b"x".to_vec())
            .unwrap_err();
        assert!(
            matches!(
                e,
                TransportError::Tls(_) | TransportError::ConnectionDropped(_)
            ),
            "{e:?}"
        );
        assert!(
            srv.seen.lock().unwrap().is_empty(),
            "no request may get through"
        );
    }

    #[test]
    fn untrusted_konnektor_certificate_is_a_tls_error() {
        let pki = test_pki::make("Konnektor CA");
        let other = test_pki::make("Other CA");
        let srv = server(&pki, false, echo);
        let http = KonnektorHttp::new(&settings(&other, KonnektorAuth::None, T)).unwrap();
        let e = http
            .get_blocking(&format!("https://127.0.0.1:{}/connector.sds", srv.port))
            .unwrap_err();
        assert!(matches!(e, TransportError::Tls(_)), "{e:?}");
    }

    #[test]
    fn basic_auth_header_is_sent() {
        let pki = test_pki::make("Konnektor CA");
        let srv = server(&pki, false, |seen| match seen.header("Authorization") {
            Some("Basic Y206Z2VoZWlt") => Reply::Respond(200, b"<sds/>".to_vec()),
            _ => Reply::Respond(401, b"who?".to_vec()),
        });
        let auth = KonnektorAuth::Basic {
            user: "cm".into(),
            password: Password::new("geheim"),
        };
        let http = KonnektorHttp::new(&settings(&pki, auth, T)).unwrap();
        assert!(
            !format!("{http:?}").contains("Y206"),
            "credentials never printed"
        );
        let url = format!("https://127.0.0.1:{}/connector.sds", srv.port);
        assert_eq!(smol::block_on(http.get(&url)).unwrap(), b"<sds/>");
        let without = KonnektorHttp::new(&settings(&pki, KonnektorAuth::None, T)).unwrap();
        assert_eq!(
            without.get_blocking(&url).unwrap_err(),
            TransportError::Status {
                status: 401,
                body: b"who?".to_vec()
            }
        );
    }

    #[test]
    fn soap_fault_with_http_500_is_returned_as_body() {
        let pki = test_pki::make("Konnektor CA");
        let srv = server(&pki, false, |_| Reply::Respond(500, b"<Fault/>".to_vec()));
        let http = KonnektorHttp::new(&settings(&pki, KonnektorAuth::None, T)).unwrap();
        let url = format!("https://127.0.0.1:{}/ws", srv.port);
        assert_eq!(
            http.post_soap_blocking(&url, "a", b"x".to_vec()).unwrap(),
            b"<Fault/>"
        );
        // A GET has no SOAP fault semantics: 500 is an error there.
        assert!(matches!(
            http.get_blocking(&url),
            Err(TransportError::Status { status: 500, .. })
        ));
    }

    #[test]
    fn slow_konnektor_times_out() {
        let pki = test_pki::make("Konnektor CA");
        let srv = server(&pki, false, |_| Reply::Sleep(Duration::from_secs(3)));
        let http = KonnektorHttp::new(&settings(
            &pki,
            KonnektorAuth::None,
            Duration::from_millis(300),
        ))
        .unwrap();
        let url = format!("https://127.0.0.1:{}/ws", srv.port);
        let started = std::time::Instant::now();
        let e = http
            .post_soap_blocking(&url, "a", b"x".to_vec())
            .unwrap_err();
        assert_eq!(e, TransportError::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn dropped_connection_is_reported() {
        let pki = test_pki::make("Konnektor CA");
        let srv = server(&pki, false, |_| Reply::Drop);
        let http = KonnektorHttp::new(&settings(&pki, KonnektorAuth::None, T)).unwrap();
        let url = format!("https://127.0.0.1:{}/ws", srv.port);
        let e = http
            .post_soap_blocking(&url, "a", b"x".to_vec())
            .unwrap_err();
        assert!(matches!(e, TransportError::ConnectionDropped(_)), "{e:?}");
    }

    #[test]
    fn refused_connection_is_reported() {
        let pki = test_pki::make("Konnektor CA");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = KonnektorHttp::new(&settings(&pki, KonnektorAuth::None, T)).unwrap();
        let e = http
            .get_blocking(&format!("https://127.0.0.1:{port}/connector.sds"))
            .unwrap_err();
        assert!(matches!(e, TransportError::ConnectionRefused(_)), "{e:?}");
    }

    #[test]
    fn plain_http_is_refused() {
        let pki = test_pki::make("Konnektor CA");
        let http = KonnektorHttp::new(&settings(&pki, KonnektorAuth::None, T)).unwrap();
        assert!(
            http.get_blocking("http://127.0.0.1:1/connector.sds")
                .is_err()
        );
    }

    #[test]
    fn missing_client_key_file_is_a_clear_error() {
        let pki = test_pki::make("Konnektor CA");
        let auth = KonnektorAuth::ClientCertificate {
            certificate: pki.client_cert(),
            key: PathBuf::from("/nonexistent/key.pem"),
        };
        let e = KonnektorHttp::new(&settings(&pki, auth, T)).unwrap_err();
        assert!(e.0.contains("/nonexistent/key.pem: cannot open"), "{e}");
    }
}
