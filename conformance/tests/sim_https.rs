//! The simulator over real HTTPS: a rustls client POSTs SOAP to `SimServer`, covering
//! keep-alive, client certificates, Basic auth and injected faults (gematik code, stall, drop).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use komle_conformance::sim::decrypt::decrypt_document;
use komle_conformance::sim::demo::{DemoSetup, demo_setup};
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::xml;
use komle_conformance::sim::{Fault, KeyMaterial, Operation, SimConfig, Simulator};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const NOW: u64 = 1_780_272_000;
const CTX: &str = "<c:Context xmlns:c=\"http://ws.gematik.de/conn/ConnectorContext/v2.0\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><k:MandantId>m</k:MandantId>\
<k:ClientSystemId>cs</k:ClientSystemId><k:WorkplaceId>wp</k:WorkplaceId></c:Context>";
const SIG75: &str = "http://ws.gematik.de/conn/SignatureService/v7.5";

fn demo() -> &'static DemoSetup {
    static D: OnceLock<DemoSetup> = OnceLock::new();
    D.get_or_init(|| demo_setup(NOW).unwrap())
}

fn config() -> SimConfig {
    let mut c = demo().config.clone();
    c.now_unix = Some(NOW);
    c
}

fn client_config(ca_der: &[u8], identity: Option<&KeyMaterial>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
    let b = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(id) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(id.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.private_key_pkcs8_der.clone())),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(server: &SimServer, cfg: Arc<ClientConfig>, timeout: Duration) -> Tls {
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(timeout)).unwrap();
    let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Sends one request and reads one response: (status, headers lower-cased, body).
fn exchange(
    s: &mut Tls,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<(u16, String, Vec<u8>)> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = vec![0u8; 65536];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated body",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head, body))
}

fn soap(payload: &str) -> Vec<u8> {
    format!(
        "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>{payload}</S:Body></S:Envelope>"
    )
    .into_bytes()
}

fn get_job_number() -> Vec<u8> {
    soap(&format!(
        "<s:GetJobNumber xmlns:s=\"{SIG75}\">{CTX}</s:GetJobNumber>"
    ))
}

fn post(s: &mut Tls, action: &str, body: &[u8]) -> io::Result<(u16, String, Vec<u8>)> {
    exchange(
        s,
        "POST",
        "/SignatureService",
        &[
            ("Content-Type", "text/xml; charset=UTF-8"),
            ("SOAPAction", action),
        ],
        body,
    )
}

#[test]
fn connector_sds_and_soap_calls_share_one_keep_alive_connection() {
    let server = SimServer::start(Simulator::new(config()), TlsOptions::default()).unwrap();
    assert!(server.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let mut s = connect(
        &server,
        client_config(&server.ca_der, None),
        Duration::from_secs(10),
    );
    let (status, _, body) = exchange(&mut s, "GET", "/connector.sds", &[], b"").unwrap();
    assert_eq!(status, 200);
    let sds = String::from_utf8(body).unwrap();
    assert!(sds.contains(&format!(
        "Location=\"{}/SignatureService\"",
        server.base_url()
    )));
    for expected in ["SIM-000", "SIM-001"] {
        let (status, head, body) = post(
            &mut s,
            &format!("\"{SIG75}#GetJobNumber\""),
            &get_job_number(),
        )
        .unwrap();
        assert_eq!(status, 200);
        assert!(head.contains("connection: keep-alive"));
        let p = xml::soap_payload(xml::parse(&body).unwrap()).unwrap();
        assert_eq!(p.find_local("JobNumber").unwrap().text(), expected);
    }
}

#[test]
fn encrypt_and_decrypt_a_large_document_over_https() {
    let server = SimServer::start(Simulator::new(config()), TlsOptions::default()).unwrap();
    let mut s = connect(
        &server,
        client_config(&server.ca_der, None),
        Duration::from_secs(60),
    );
    let content: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let card = &demo().config.cards[0];
    let req = soap(&format!(
        "<x:EncryptDocument xmlns:x=\"http://ws.gematik.de/conn/EncryptionService/v6.1\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">\
{CTX}<x:RecipientKeys><x:Certificate>{}</x:Certificate></x:RecipientKeys><k:Document><d:Base64Data>{}\
</d:Base64Data></k:Document></x:EncryptDocument>",
        STANDARD.encode(&card.enc[0].cert_der),
        STANDARD.encode(&content)
    ));
    let started = Instant::now();
    let (status, _, body) = post(&mut s, "", &req).unwrap();
    let encrypt_ms = started.elapsed().as_millis();
    assert_eq!(status, 200);
    let p = xml::soap_payload(xml::parse(&body).unwrap()).unwrap();
    let cms = STANDARD
        .decode(p.find_local("Base64Data").unwrap().text())
        .unwrap();
    assert_eq!(decrypt_document(&card.enc, &cms).unwrap(), content);
    let req = soap(&format!(
        "<x:DecryptDocument xmlns:x=\"http://ws.gematik.de/conn/EncryptionService/v6.1\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">\
{CTX}<x:PrivateKeyOnCard><k:CardHandle>SMCB-1</k:CardHandle></x:PrivateKeyOnCard><k:Document>\
<d:Base64Data>{}</d:Base64Data></k:Document></x:DecryptDocument>",
        STANDARD.encode(&cms)
    ));
    let started = Instant::now();
    let (status, _, body) = post(&mut s, "", &req).unwrap();
    let decrypt_ms = started.elapsed().as_millis();
    assert_eq!(status, 200);
    let p = xml::soap_payload(xml::parse(&body).unwrap()).unwrap();
    assert_eq!(
        STANDARD
            .decode(p.find_local("Base64Data").unwrap().text())
            .unwrap(),
        content
    );
    eprintln!("5 MiB over HTTPS: EncryptDocument {encrypt_ms} ms, DecryptDocument {decrypt_ms} ms");
}

#[test]
fn injected_soap_fault_carries_the_gematik_code_over_https() {
    let mut c = config();
    c.faults.insert(
        Operation::GetJobNumber,
        Fault::SoapFault {
            code: 4011,
            text: "Konnektor nicht verfügbar".into(),
        },
    );
    let server = SimServer::start(Simulator::new(c), TlsOptions::default()).unwrap();
    let mut s = connect(
        &server,
        client_config(&server.ca_der, None),
        Duration::from_secs(10),
    );
    let (status, _, body) = post(&mut s, "", &get_job_number()).unwrap();
    assert_eq!(status, 500);
    let root = xml::parse(&body).unwrap();
    assert_eq!(root.find_local("Code").unwrap().text(), "4011");
    assert_eq!(root.find_local("faultcode").unwrap().text(), "soap:Server");
}

#[test]
fn injected_stall_makes_the_client_time_out_and_latency_delays_the_answer() {
    let mut c = config();
    c.faults.insert(Operation::GetJobNumber, Fault::Stall);
    c.latency
        .insert(Operation::ServiceDirectory, Duration::from_millis(300));
    let server = SimServer::start(Simulator::new(c), TlsOptions::default()).unwrap();
    let cfg = client_config(&server.ca_der, None);
    let mut s = connect(&server, cfg.clone(), Duration::from_millis(700));
    let started = Instant::now();
    let err = post(&mut s, "", &get_job_number()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(700));

    let mut s = connect(&server, cfg, Duration::from_secs(10));
    let started = Instant::now();
    let (status, _, _) = exchange(&mut s, "GET", "/connector.sds", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Dropping the server while a connection stalls must not hang.
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn injected_drop_closes_the_connection_without_an_answer() {
    let mut c = config();
    c.faults.insert(Operation::GetJobNumber, Fault::Drop);
    let server = SimServer::start(Simulator::new(c), TlsOptions::default()).unwrap();
    let mut s = connect(
        &server,
        client_config(&server.ca_der, None),
        Duration::from_secs(10),
    );
    let err = post(&mut s, "", &get_job_number()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ),
        "{err:?}"
    );
}

#[test]
fn client_certificate_is_required_when_configured() {
    let d = demo();
    let tls = TlsOptions {
        client_ca_der: vec![d.ca.cert_der.clone()],
        ..TlsOptions::default()
    };
    let server = SimServer::start(Simulator::new(config()), tls).unwrap();
    let mut anon = connect(
        &server,
        client_config(&server.ca_der, None),
        Duration::from_secs(10),
    );
    assert!(post(&mut anon, "", &get_job_number()).is_err());
    let identity = &d.config.cards[0].enc[0];
    let mut s = connect(
        &server,
        client_config(&server.ca_der, Some(identity)),
        Duration::from_secs(10),
    );
    let (status, _, _) = post(&mut s, "", &get_job_number()).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn basic_auth_is_enforced_when_configured() {
    let tls = TlsOptions {
        basic_auth: Some(("cm".into(), "geheim".into())),
        ..TlsOptions::default()
    };
    let server = SimServer::start(Simulator::new(config()), tls).unwrap();
    let mut s = connect(
        &server,
        client_config(&server.ca_der, None),
        Duration::from_secs(10),
    );
    let (status, head, _) = post(&mut s, "", &get_job_number()).unwrap();
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic"));
    let wrong = format!("Basic {}", STANDARD.encode("cm:falsch"));
    let (status, _, _) = exchange(
        &mut s,
        "POST",
        "/",
        &[("Authorization", &wrong)],
        &get_job_number(),
    )
    .unwrap();
    assert_eq!(status, 401);
    let right = format!("Basic {}", STANDARD.encode("cm:geheim"));
    let (status, _, _) = exchange(
        &mut s,
        "POST",
        "/",
        &[("Authorization", &right)],
        &get_job_number(),
    )
    .unwrap();
    assert_eq!(status, 200);
}
