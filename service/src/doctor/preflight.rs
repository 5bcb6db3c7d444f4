//! What `--check-config` and the daemon's start check before anything serves: every file the
//! configuration names opens and holds what its key says (certificate, key, CA, key store
//! entry), and every listen address can be bound.
//!
//! WHY before the start: a missing certificate or a key path that points at a certificate used
//! to pass `--check-config` ("config ok") and then stop the start; an operator needs the same
//! verdict from both, as one line per problem naming the key, with exit code 2.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use crate::config::{Config, ConfigError, KonnektorAuth, KonnektorSettings, ListenerIdentity};
use crate::konnektor_http::KonnektorHttp;
use crate::tls;

fn problem(key: &str, what: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        problem: what.to_string(),
    }
}

/// Opens every file the configuration names; one [`ConfigError`] per problem, naming the key.
/// Reads files only: nothing is bound or contacted.
pub fn check_files(config: &Config) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    // [tls]: each file on its own first (which one is wrong), then whether they fit.
    match &config.tls.identity {
        ListenerIdentity::Files {
            certificate,
            private_key,
        } => {
            let cert = tls::load_certificates(certificate);
            let key = tls::load_private_key(private_key);
            match (&cert, &key) {
                (Err(e), _) => problems.push(problem("[tls] certificate", e)),
                (_, Err(e)) => problems.push(problem("[tls] private_key", e)),
                (Ok(_), Ok(_)) => {
                    if let Err(e) = tls::server_config(certificate, private_key) {
                        problems.push(problem("[tls] private_key", e));
                    }
                }
            }
        }
        ListenerIdentity::KeyStore { alias } => {
            let built = config
                .keys
                .as_ref()
                .ok_or_else(|| tls::TlsError("needs the key store: set [keys] store".into()))
                .and_then(|keys| tls::open_identity(keys, alias))
                .and_then(tls::server_config_from_identity);
            if let Err(e) = built {
                problems.push(problem("[tls] identity", e));
            }
        }
    }
    if let Err(e) = tls::root_store(config.upstream.ca.as_deref()) {
        problems.push(problem("[upstream] ca", e));
    }
    if config.upstream.client_identity.is_some()
        && let Err(e) = tls::upstream_identity(&config.upstream, config.keys.as_ref())
    {
        problems.push(problem("[upstream] client_identity", e));
    }
    check_konnektor("konnektor", &config.konnektor, &mut problems);
    for (id, settings) in &config.konnektoren {
        check_konnektor(&format!("konnektor.{id}"), settings, &mut problems);
    }
    if let Some(ca) = &config.directory.ca {
        check_ca("[directory] ca", ca, &mut problems);
    }
    problems
}

fn check_konnektor(table: &str, settings: &KonnektorSettings, problems: &mut Vec<ConfigError>) {
    // Each file by its own key first; the transport then checks that they fit together.
    let before = problems.len();
    if let Some(ca) = &settings.ca {
        check_ca(&format!("[{table}] ca"), ca, problems);
    }
    if let KonnektorAuth::ClientCertificate { certificate, key } = &settings.auth {
        if let Err(e) = tls::load_certificates(certificate) {
            problems.push(problem(&format!("[{table}] client_certificate"), e));
        }
        if let Err(e) = tls::load_private_key(key) {
            problems.push(problem(&format!("[{table}] client_key"), e));
        }
    }
    if problems.len() == before
        && let Err(e) = KonnektorHttp::new(settings)
    {
        problems.push(problem(&format!("[{table}]"), e));
    }
}

fn check_ca(key: &str, path: &Path, problems: &mut Vec<ConfigError>) {
    match tls::load_certificates(path) {
        Ok(certs) if certs.is_empty() => problems.push(problem(
            key,
            format!("{}: no CERTIFICATE in it", path.display()),
        )),
        Ok(_) => {}
        Err(e) => problems.push(problem(key, e)),
    }
}

/// The listen addresses with their keys (`[smtp] listen`, `[pop3] listen`, `[admin] listen`).
pub fn listen_addresses(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let mut out = Vec::new();
    if let Some(s) = &config.smtp {
        out.push(("[smtp] listen", s.listen));
    }
    if let Some(p) = &config.pop3 {
        out.push(("[pop3] listen", p.listen));
    }
    if let Some(a) = &config.admin {
        out.push(("[admin] listen", a.listen));
    }
    out
}

/// Binds each listen address once and releases it: a port in use (or one below 1024 without
/// the privilege) is one [`ConfigError`] naming the option. Port 0 is skipped.
pub fn check_ports(config: &Config) -> Vec<ConfigError> {
    listen_addresses(config)
        .into_iter()
        .filter(|(_, addr)| addr.port() != 0)
        .filter_map(|(key, addr)| {
            TcpListener::bind(addr).err().map(|e| {
                let hint = match e.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        " (another process has it, or komle-cm already runs)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        " (ports below 1024 need CAP_NET_BIND_SERVICE)"
                    }
                    _ => "",
                };
                problem(key, format!("{addr}: cannot bind: {e}{hint}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pki: &crate::test_pki::TestPki, extra: &str) -> Config {
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
[upstream]\nca = \"{}\"\n\
[konnektor]\nsds_url = \"https://127.0.0.1:1/connector.sds\"\nca = \"{}\"\n\
client_certificate = \"{}\"\nclient_key = \"{}\"\n\
[directory]\nurl = \"ldap://127.0.0.1:1\"\nbase = \"dc=x\"\n{extra}",
            pki.server_cert().display(),
            pki.server_key().display(),
            pki.ca().display(),
            pki.ca().display(),
            pki.client_cert().display(),
            pki.client_key().display(),
        );
        Config::parse(&text).unwrap()
    }

    #[test]
    fn good_files_pass() {
        let pki = crate::test_pki::make("Preflight CA");
        assert_eq!(check_files(&config(&pki, "")), []);
    }

    #[test]
    fn missing_files_and_a_key_path_pointing_at_a_certificate_name_their_keys() {
        let pki = crate::test_pki::make("Preflight CA");
        let mut c = config(&pki, "");
        if let ListenerIdentity::Files { private_key, .. } = &mut c.tls.identity {
            *private_key = pki.server_cert(); // a certificate where the key belongs
        }
        c.upstream.ca = Some("/nonexistent/upstream-ca.pem".into());
        if let KonnektorAuth::ClientCertificate { certificate, .. } = &mut c.konnektor.auth {
            *certificate = "/nonexistent/cm-client.pem".into();
        }
        c.directory.ca = Some(pki.server_key()); // a key where a CA belongs
        let lines: Vec<String> = check_files(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with("config error: [tls] private_key: ")
                && lines[0].contains("no PRIVATE KEY"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(
                "config error: [upstream] ca: /nonexistent/upstream-ca.pem: cannot open"
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with(
                "config error: [konnektor] client_certificate: /nonexistent/cm-client.pem"
            ),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("config error: [directory] ca: "),
            "{}",
            lines[3]
        );
        assert!(lines.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn a_certificate_and_a_key_that_do_not_fit_are_reported() {
        let pki = crate::test_pki::make("Preflight CA");
        let mut c = config(&pki, "");
        if let ListenerIdentity::Files { private_key, .. } = &mut c.tls.identity {
            *private_key = pki.client_key();
        }
        let lines: Vec<String> = check_files(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("do not fit"), "{}", lines[0]);
    }

    #[test]
    fn a_client_identity_without_a_key_store_is_reported() {
        let pki = crate::test_pki::make("Preflight CA");
        let mut c = config(&pki, "");
        c.upstream.client_identity = Some("kim".into());
        let lines: Vec<String> = check_files(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("config error: [upstream] client_identity: "),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn a_port_in_use_names_the_option() {
        let pki = crate::test_pki::make("Preflight CA");
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let c = config(&pki, &format!("[pop3]\nlisten = \"{addr}\"\n"));
        let lines: Vec<String> = check_ports(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "config error: [pop3] listen: {addr}: cannot bind: "
            )),
            "{}",
            lines[0]
        );
        drop(taken);
        assert_eq!(check_ports(&c), []);
    }
}
