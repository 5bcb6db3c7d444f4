//! TLS set-up for the listeners (server side towards mail clients) and for the connections to
//! the mail service's MTA and POP3 server (client side).
//!
//! Towards the mail service the Clientmodul always uses implicit TLS with the server
//! certificate checked (A_2011; NOTES: "server certificate checked"): there is no option to
//! switch verification off and no plaintext fallback. Trust is the webpki roots plus one
//! configured CA file. The ring provider is set explicitly so the result never depends on which
//! other crate installed a process-wide default. Towards the mail service the Clientmodul also
//! authenticates itself with the provider's C.CM.TLS-CS certificate from the key store
//! (KOM-LE-A_2074, A_2182-01): [`upstream_client_config`].

//!
//! Only the configurations are built here, runtime-neutral; the handshakes over sockets are the
//! runtimes' (`komle-smol`'s `tls_stream`, `komle-tokio`'s tokio-rustls).

use std::fmt;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{KeySettings, UpstreamSettings};
use crate::key_store::{self, ClientIdentity, KeyStore};

/// A TLS set-up problem, naming the file involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads all certificates from a PEM file; an empty file is an error.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = std::fs::File::open(path)
        .map_err(|e| TlsError(format!("{}: cannot open: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no CERTIFICATE found in PEM file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = std::fs::File::open(path)
        .map_err(|e| TlsError(format!("{}: cannot open: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| TlsError(format!("{}: bad PEM: {e}", path.display())))?
        .ok_or_else(|| {
            TlsError(format!(
                "{}: no PRIVATE KEY found in PEM file",
                path.display()
            ))
        })
}

/// The listeners' TLS configuration from the `[tls]` certificate chain and key.
pub fn server_config(
    certificate: &Path,
    private_key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certificates(certificate)?;
    let key = load_private_key(private_key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError(format!(
                "{} / {}: certificate and key do not fit: {e}",
                certificate.display(),
                private_key.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// Roots: webpki's plus every certificate in `extra_ca` (PEM).
pub fn root_store(extra_ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        for cert in load_certificates(path)? {
            roots.add(cert).map_err(|e| {
                TlsError(format!("{}: unusable CA certificate: {e}", path.display()))
            })?;
        }
    }
    Ok(roots)
}

/// The client configuration for the MTA and POP3 server: certificate verification always on.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_root_certificates(root_store(extra_ca)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client configuration for the MTA and POP3 server with a client certificate: mutual TLS
/// (KOM-LE-A_2074) with the provider's C.CM.TLS-CS key and chain (KOM-LE-A_2182-01), server
/// certificate verification as in [`client_config`].
pub fn client_config_with_identity(
    extra_ca: Option<&Path>,
    identity: ClientIdentity,
) -> Result<Arc<ClientConfig>, TlsError> {
    let (chain, key) = identity.into_parts();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_root_certificates(root_store(extra_ca)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError(format!("client certificate and key do not fit: {e}")))?;
    Ok(Arc::new(config))
}

/// The client configuration the daemon uses towards the mail service: with the client
/// certificate from the key store when `[upstream] client_identity` names one (KOM-LE-A_2074,
/// A_2182-01), else [`client_config`]. Opens the store (`[keys]`, password from the password
/// file or `KOMLE_KEYSTORE_PASSWORD`); every failure is one line naming the file or alias.
pub fn upstream_client_config(
    upstream: &UpstreamSettings,
    keys: Option<&KeySettings>,
) -> Result<Arc<ClientConfig>, TlsError> {
    match upstream_identity(upstream, keys)? {
        Some(identity) => client_config_with_identity(upstream.ca.as_deref(), identity),
        None => client_config(upstream.ca.as_deref()),
    }
}

/// Where `[upstream] client_identity` is kept: the `[keys]` store and the alias; `None` when no
/// client identity is configured, an error when the alias names no store.
pub fn identity_source<'a>(
    upstream: &'a UpstreamSettings,
    keys: Option<&'a KeySettings>,
) -> Result<Option<(&'a KeySettings, &'a str)>, TlsError> {
    let Some(alias) = upstream.client_identity.as_deref() else {
        return Ok(None);
    };
    let keys = keys.ok_or_else(|| {
        TlsError("[upstream] client_identity is set but [keys] store is not".into())
    })?;
    Ok(Some((keys, alias)))
}

/// The identity `[upstream] client_identity` names, read from the `[keys]` store; `None` when
/// no client identity is configured. The daemon keeps it re-readable instead
/// ([`crate::tls_reload::ReloadableClientIdentity::configured`]).
pub fn upstream_identity(
    upstream: &UpstreamSettings,
    keys: Option<&KeySettings>,
) -> Result<Option<ClientIdentity>, TlsError> {
    identity_source(upstream, keys)?
        .map(|(keys, alias)| open_identity(keys, alias))
        .transpose()
}

/// The key store entry `alias` from the configured store.
pub fn open_identity(keys: &KeySettings, alias: &str) -> Result<ClientIdentity, TlsError> {
    let password = key_store::password::store_password(keys.password_file.as_deref())
        .map_err(|e| TlsError(e.to_string()))?;
    let store =
        KeyStore::open(&keys.store, password).map_err(|e| TlsError(format!("key store: {e}")))?;
    let identity = store
        .client_identity(alias)
        .map_err(|e| TlsError(format!("key store: {e}")))?;
    if let Some(warning) = store
        .info(alias)
        .ok()
        .and_then(|info| info.expiry_warning(std::time::SystemTime::now()))
    {
        log::warn!("{warning}");
    }
    Ok(identity)
}

/// The listeners' TLS configuration from a key store entry instead of PEM files (the server
/// certificate in the store of KOM-LE-A_2065 as well).
pub fn server_config_from_identity(
    identity: ClientIdentity,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = identity.into_parts();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("certificate and key do not fit: {e}")))?;
    Ok(Arc::new(config))
}

/// The name the server certificate must carry: a DNS name, or an IP literal (also in brackets,
/// as `[::1]`), which rustls then matches against IP subjectAltNames and leaves out of SNI.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned())
        .map_err(|_| TlsError(format!("{host:?} is neither a host name nor an IP address")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;
    use crate::tls_reload::ReloadableCertificate;

    #[test]
    fn server_name_accepts_ip_literals() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("mta.kim.telematik"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host").is_err());
    }

    /// Runs a TLS handshake between the two configurations in memory.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> Result<(), rustls::Error> {
        let mut c = rustls::ClientConnection::new(client, server_name("localhost").unwrap())?;
        let mut s = rustls::ServerConnection::new(server)?;
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                // TLS 1.3: the server checks the client certificate after the client is done.
                let mut buf = Vec::new();
                while c.wants_write() {
                    c.write_tls(&mut buf).unwrap();
                }
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    /// A server that requires a client certificate from the test CA.
    fn mutual_tls_server(pki: &test_pki::TestPki) -> Arc<ServerConfig> {
        let mut roots = RootCertStore::empty();
        for c in load_certificates(&pki.ca()).unwrap() {
            roots.add(c).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                load_certificates(&pki.server_cert()).unwrap(),
                load_private_key(&pki.server_key()).unwrap(),
            )
            .unwrap();
        Arc::new(config)
    }

    /// A key store holding the test PKI's client certificate as `kim`, its password in a file.
    fn store_with_client(pki: &test_pki::TestPki) -> KeySettings {
        store_with(pki, &pki.client_cert(), &pki.client_key())
    }

    /// A key store holding `cert` and `key` as `kim`, its password in a file.
    fn store_with(pki: &test_pki::TestPki, cert: &Path, key: &Path) -> KeySettings {
        let p12 = pki.path("client.p12");
        let ok = std::process::Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:transport"])
            .arg("-in")
            .arg(cert)
            .arg("-inkey")
            .arg(key)
            .arg("-out")
            .arg(&p12)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let settings = KeySettings {
            store: pki.path("keys.p12"),
            password_file: Some(pki.path("store-password")),
        };
        std::fs::write(pki.path("store-password"), "store-pw\n").unwrap();
        std::fs::set_permissions(
            pki.path("store-password"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let password = komle_core::secret::Password::new("store-pw");
        let mut store = KeyStore::open_or_create(&settings.store, password).unwrap();
        store
            .import_pkcs12(
                "kim",
                &p12,
                &komle_core::secret::Password::new("transport"),
                false,
            )
            .unwrap();
        store.save().unwrap();
        settings
    }

    #[test]
    fn a_2182_upstream_config_presents_the_stored_client_certificate() {
        let pki = test_pki::make("Mutual CA");
        let keys = store_with_client(&pki);
        let server = mutual_tls_server(&pki);
        let mut upstream = UpstreamSettings {
            ca: Some(pki.ca()),
            client_identity: Some("kim".into()),
            ..UpstreamSettings::default()
        };
        let with_identity = upstream_client_config(&upstream, Some(&keys)).unwrap();
        handshake(with_identity, server.clone()).expect("mutual TLS with the stored identity");

        // Without client_identity: today's configuration, which such a server refuses.
        upstream.client_identity = None;
        let without = upstream_client_config(&upstream, Some(&keys)).unwrap();
        let e = handshake(without, server).unwrap_err();
        assert!(matches!(e, rustls::Error::NoCertificatesPresented), "{e:?}");
    }

    #[test]
    fn a_2182_reloadable_trust_presents_the_stored_client_certificate() {
        let pki = test_pki::make("Mutual CA");
        let keys = store_with_client(&pki);
        let server = mutual_tls_server(&pki);
        let upstream = UpstreamSettings {
            client_identity: Some("kim".into()),
            ..UpstreamSettings::default()
        };
        let trust = crate::tls_reload::ReloadableTrust::load(Some(&pki.ca())).unwrap();
        let identity =
            crate::tls_reload::ReloadableClientIdentity::configured(&upstream, Some(&keys))
                .unwrap();
        assert!(identity.is_some());
        let config = trust
            .client_config_with_reloadable_identity(identity)
            .unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        handshake(config, server.clone()).expect("mutual TLS through the reloadable trust");
        let without = trust.client_config().unwrap();
        assert!(handshake(without, server).is_err());
        let none = UpstreamSettings::default();
        assert!(upstream_identity(&none, None).unwrap().is_none());
    }

    /// A renewed C.CM.TLS-CS reaches new connections on SIGHUP (the reloader calls
    /// `ReloadableClientIdentity::reload`): here the store's `kim` entry is replaced by a
    /// certificate of another CA, which the mail service then refuses; a reload that cannot
    /// open the store keeps the identity in use.
    #[test]
    fn a_2074_a_2182_client_identity_is_re_read_from_the_key_store() {
        use crate::tls_reload::{ReloadableClientIdentity, ReloadableTrust};
        let pki = test_pki::make("Mutual CA");
        let other = test_pki::make("Other CA");
        let keys = store_with_client(&pki);
        let server = mutual_tls_server(&pki);
        let trust = ReloadableTrust::load(Some(&pki.ca())).unwrap();
        let identity = ReloadableClientIdentity::load(&keys, "kim").unwrap();
        // A fresh configuration per handshake: one with a session cache would resume the
        // earlier TLS session, which keeps the identity it was made with.
        let fresh = || {
            trust
                .client_config_with_reloadable_identity(Some(identity.clone()))
                .unwrap()
        };
        handshake(fresh(), server.clone()).expect("the stored identity is presented");
        assert!(!format!("{identity:?}").contains("PRIVATE"));

        // A wrong store password: not re-read, the identity in use stays.
        std::fs::write(pki.path("store-password"), "wrong\n").unwrap();
        let e = identity.reload().unwrap_err();
        assert!(e.0.contains("wrong key store password"), "{e}");
        handshake(fresh(), server.clone()).expect("previous identity kept");

        // The entry replaced by another CA's certificate (same store password): presented
        // from now on, and refused by a server that trusts only the first CA.
        std::fs::write(pki.path("store-password"), "store-pw\n").unwrap();
        let replaced = store_with_client(&other);
        std::fs::copy(&replaced.store, &keys.store).unwrap();
        identity.reload().unwrap();
        let e = handshake(fresh(), server.clone()).unwrap_err();
        assert!(
            !matches!(e, rustls::Error::NoCertificatesPresented),
            "the new certificate is presented (and refused by this server): {e:?}"
        );
        let other_trust = ReloadableTrust::load(Some(&other.ca())).unwrap();
        let towards_other = other_trust
            .client_config_with_reloadable_identity(Some(identity.clone()))
            .unwrap();
        handshake(towards_other, mutual_tls_server(&other))
            .expect("the new identity is what new connections show");
    }

    #[test]
    fn a_2065_listener_certificate_can_come_from_the_key_store() {
        let pki = test_pki::make("Listener CA");
        let keys = store_with(&pki, &pki.server_cert(), &pki.server_key());
        let server = server_config_from_identity(open_identity(&keys, "kim").unwrap()).unwrap();
        let client = client_config(Some(&pki.ca())).unwrap();
        handshake(client, server).expect("the stored server certificate is presented");

        // `[tls] identity`: what the listeners use, re-read from the store on SIGHUP.
        let tls = crate::config::TlsSettings {
            identity: crate::config::ListenerIdentity::KeyStore {
                alias: "kim".into(),
            },
            client_ca: None,
        };
        assert!(ReloadableCertificate::configured(&tls, None).is_err());
        let reloadable = ReloadableCertificate::configured(&tls, Some(&keys)).unwrap();
        let trusting = |p: &test_pki::TestPki| client_config(Some(&p.ca())).unwrap();
        handshake(trusting(&pki), reloadable.server_config().unwrap())
            .expect("the stored certificate is presented");
        assert!(!format!("{reloadable:?}").contains("PRIVATE"));
        // Renewed under the same alias (another CA here, to tell them apart).
        let other = test_pki::make("Renewed listener CA");
        let renewed = store_with(&other, &other.server_cert(), &other.server_key());
        std::fs::copy(&renewed.store, &keys.store).unwrap();
        reloadable.reload().unwrap();
        handshake(trusting(&other), reloadable.server_config().unwrap())
            .expect("the renewed certificate is presented after the reload");
        handshake(trusting(&pki), reloadable.server_config().unwrap())
            .expect_err("the old certificate is no longer presented");
        // A store that cannot be opened keeps the certificate in use.
        std::fs::write(pki.path("store-password"), "wrong\n").unwrap();
        assert!(reloadable.reload().is_err());
        handshake(trusting(&other), reloadable.server_config().unwrap())
            .expect("the certificate in use stays");
    }

    #[test]
    fn a_2065_upstream_config_errors_are_one_line() {
        let pki = test_pki::make("Mutual CA");
        let keys = store_with_client(&pki);
        let upstream = UpstreamSettings {
            client_identity: Some("other".into()),
            ..UpstreamSettings::default()
        };
        let e = upstream_client_config(&upstream, Some(&keys)).unwrap_err();
        assert_eq!(e.0, "key store: no key store entry \"other\"");
        std::fs::write(pki.path("store-password"), "wrong\n").unwrap();
        let e = upstream_client_config(&upstream, Some(&keys)).unwrap_err();
        assert!(e.0.contains("wrong key store password"), "{e}");
        assert!(upstream_client_config(&upstream, None).is_err());
    }

    #[test]
    fn missing_and_empty_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = server_config(&missing, &missing).unwrap_err();
        assert!(e.0.contains("nope.pem: cannot open"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(
            load_certificates(&empty)
                .unwrap_err()
                .0
                .contains("no CERTIFICATE")
        );
        assert!(
            load_private_key(&empty)
                .unwrap_err()
                .0
                .contains("no PRIVATE KEY")
        );
        let pki = test_pki::make("Test CA");
        // A key that does not belong to the certificate.
        let e = server_config(&pki.server_cert(), &pki.client_key()).unwrap_err();
        assert!(e.0.contains("do not fit"), "{e}");
    }
}
