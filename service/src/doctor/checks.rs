//! `komle-cm doctor`: each dependency checked the way the field's support scripts do, one line
//! each, so a support call starts from "which one is red".
//!
//! Checks, in order: the Konnektor (`connector.sds` readable, the service versions it offers),
//! ECC capability (A_17464), the SM-B present and its PIN verified (GetCards, GetPinStatus;
//! needs `[doctor] context`), the directory (bind and a sample lookup), the time offset to the
//! Konnektor (NTP, UDP/123, A_2230), each MTA and POP3 server of the `[upstream]` allow-lists
//! (TLS with the upstream trust and client certificate, the greeting read), and the listener
//! certificate's remaining validity. All blocking, with the configured timeouts; nothing is
//! sent to a mail server beyond the TLS handshake and its greeting.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use komle_core::konnektor::get_cards::{self, CardType, GetCardsRequest};
use komle_core::konnektor::get_pin_status::{self, PinStatus};
use komle_core::konnektor::pin_request::{PIN_TYPE_SMC, PinRequest};
use komle_core::konnektor::{CallContext, KonnektorEndpoints, ServiceDirectory};
use x509_cert::der::Decode;

use crate::assembly::{NTP_PORT, url_host};
use crate::config::{Config, ListenerIdentity};
use crate::konnektor_http::KonnektorHttp;
use crate::ldap::{DirectoryClient, LdapSettings};
use crate::tls;

/// Fewer days of validity left than this make the listener certificate check fail: enough
/// time to order and install a new one.
pub const CERTIFICATE_WARN_DAYS: i64 = 30;

/// The address looked up when `[doctor] sample_address` is not set: a search that finds
/// nothing still proves bind and search work.
pub const PROBE_ADDRESS: &str = "komle-doctor@probe.invalid";

/// The longest the doctor waits for one answer (Konnektor, directory, mail server).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Failed,
    /// Not checked (nothing configured to check, or it depends on a failed check).
    Skipped,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Failed => "FAILED",
            Verdict::Skipped => "skipped",
        };
        write!(f, "{v:<7} {}: {}", self.name, self.detail)
    }
}

fn line(name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        verdict,
        detail: detail.into(),
    }
}

/// Where the doctor sends its NTP query (the Konnektor's host, port 123; tests use another).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub ntp_port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options { ntp_port: NTP_PORT }
    }
}

/// Runs every check; the report's lines in order.
pub fn run(config: &Config, options: Options) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let endpoints = konnektor(config, &mut out);
    card(config, endpoints.as_ref(), &mut out);
    out.push(directory(config));
    out.push(time_offset(config, options.ntp_port));
    upstream(config, &mut out);
    out.push(listener_certificate(config, SystemTime::now()));
    out
}

/// How many checks failed: the doctor's exit code (at most 255).
pub fn failures(results: &[CheckResult]) -> usize {
    results
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .count()
}

fn konnektor(
    config: &Config,
    out: &mut Vec<CheckResult>,
) -> Option<(KonnektorHttp, KonnektorEndpoints)> {
    let url = &config.konnektor.sds_url;
    // The doctor waits at most PROBE_TIMEOUT per call, not the daemon's 1 min.
    let mut settings = config.konnektor.clone();
    settings.timeout = settings.timeout.min(PROBE_TIMEOUT);
    let read = KonnektorHttp::new(&settings)
        .map_err(|e| format!("[konnektor] TLS settings: {e}"))
        .and_then(|http| {
            let bytes = http.get_blocking(url).map_err(|e| format!("{url}: {e}"))?;
            let sds = ServiceDirectory::parse(&bytes)
                .map_err(|e| format!("{url}: connector.sds unreadable: {e}"))?;
            Ok((http, sds))
        });
    let (http, sds) = match read {
        Ok(r) => r,
        Err(e) => {
            out.push(line("konnektor", Verdict::Failed, e));
            out.push(line("ecc", Verdict::Skipped, "needs the Konnektor"));
            return None;
        }
    };
    let versions: Vec<String> = [
        "SignatureService",
        "EncryptionService",
        "CertificateService",
        "EventService",
        "CardService",
    ]
    .iter()
    .map(|name| match sds.highest_version(name) {
        Some(v) => format!("{name} {}.{}.{}", v.major, v.minor, v.patch),
        None => format!("{name} -"),
    })
    .collect();
    let endpoints = match sds.endpoints() {
        Ok(e) => {
            out.push(line(
                "konnektor",
                Verdict::Ok,
                format!("{url} read; {}", versions.join(", ")),
            ));
            Some((http, e))
        }
        Err(e) => {
            out.push(line(
                "konnektor",
                Verdict::Failed,
                format!("{url}: no usable endpoint: {e}; {}", versions.join(", ")),
            ));
            None
        }
    };
    out.push(if sds.is_ecc_capable() {
        line(
            "ecc",
            Verdict::Ok,
            "SignatureService >= 7.4.1 and EncryptionService >= 6.1.1 (A_17464)",
        )
    } else {
        line(
            "ecc",
            Verdict::Failed,
            "RSA only: A_17464 needs SignatureService >= 7.4.1 and EncryptionService >= 6.1.1 (Konnektor update)",
        )
    });
    endpoints
}

/// `Mandant#ClientSystem#Workplace` of `[doctor] context`.
fn call_context(text: &str) -> Option<CallContext> {
    let mut parts = text.split('#');
    let (m, c, w) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [m, c, w].iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(CallContext {
        mandant_id: m.into(),
        client_system_id: c.into(),
        workplace_id: w.into(),
        user_id: None,
    })
}

fn card(
    config: &Config,
    konnektor: Option<&(KonnektorHttp, KonnektorEndpoints)>,
    out: &mut Vec<CheckResult>,
) {
    let skip = |out: &mut Vec<CheckResult>, why: &str| {
        out.push(line("sm-b", Verdict::Skipped, why));
        out.push(line("sm-b pin", Verdict::Skipped, why));
    };
    let Some((http, endpoints)) = konnektor else {
        return skip(out, "needs the Konnektor");
    };
    let Some(text) = config.doctor.context.as_deref() else {
        return skip(
            out,
            "set [doctor] context = \"Mandant#ClientSystem#Workplace\" to ask the Konnektor",
        );
    };
    let Some(context) = call_context(text) else {
        return skip(
            out,
            "[doctor] context is not Mandant#ClientSystem#Workplace",
        );
    };
    let cards = get_cards::build(&GetCardsRequest {
        context: &context,
        card_type: Some(CardType::SmcB),
    });
    let answer = http
        .post_soap_blocking(&endpoints.event_service, cards.soap_action, cards.body)
        .map_err(|e| e.to_string())
        .and_then(|b| get_cards::parse(&b).map_err(|e| e.to_string()));
    let smb = match answer {
        Err(e) => {
            out.push(line("sm-b", Verdict::Failed, format!("GetCards: {e}")));
            out.push(line("sm-b pin", Verdict::Skipped, "needs the SM-B"));
            return;
        }
        Ok(r) => match r.smb().cloned() {
            None => {
                out.push(line(
                    "sm-b",
                    Verdict::Failed,
                    format!("no SM-B in context {text} (inserted? assigned to the Mandant?)"),
                ));
                out.push(line("sm-b pin", Verdict::Skipped, "needs the SM-B"));
                return;
            }
            Some(card) => card,
        },
    };
    out.push(line(
        "sm-b",
        Verdict::Ok,
        format!(
            "{} in terminal {} slot {}",
            smb.iccsn.as_deref().unwrap_or("(no ICCSN)"),
            smb.ct_id,
            smb.slot_id
        ),
    ));
    let Some(card_service) = &endpoints.card_service else {
        out.push(line(
            "sm-b pin",
            Verdict::Skipped,
            "connector.sds offers no CardService 8.1",
        ));
        return;
    };
    let pin = get_pin_status::build(&PinRequest {
        context: &context,
        card_handle: &smb.card_handle,
        pin_type: PIN_TYPE_SMC,
    });
    let status = http
        .post_soap_blocking(card_service, pin.soap_action, pin.body)
        .map_err(|e| e.to_string())
        .and_then(|b| get_pin_status::parse(&b).map_err(|e| e.to_string()));
    out.push(match status {
        Ok(s) if s.pin_status == Some(PinStatus::Verified) => {
            line("sm-b pin", Verdict::Ok, "PIN.SMC verified")
        }
        Ok(s) => line(
            "sm-b pin",
            Verdict::Failed,
            format!(
                "PIN.SMC {:?} (unlock the SM-B at the Konnektor's terminal)",
                s.pin_status
            ),
        ),
        Err(e) => line("sm-b pin", Verdict::Failed, format!("GetPinStatus: {e}")),
    });
}

fn directory(config: &Config) -> CheckResult {
    let d = &config.directory;
    let mut settings = LdapSettings::new(&d.url, &d.base);
    settings.timeout = d.timeout.min(PROBE_TIMEOUT);
    if let Some(ca) = &d.ca {
        match std::fs::read(ca) {
            Ok(pem) => settings.ca_pem = Some(pem),
            Err(e) => {
                return line(
                    "directory",
                    Verdict::Failed,
                    format!("[directory] ca: {}: {e}", ca.display()),
                );
            }
        }
    }
    if let (Some(dn), Some(pw)) = (&d.bind_dn, &d.bind_password) {
        settings.bind = Some((dn.clone(), pw.expose().to_owned()));
    }
    let address = config
        .doctor
        .sample_address
        .clone()
        .unwrap_or_else(|| PROBE_ADDRESS.to_owned());
    let result = DirectoryClient::new(settings)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            let r = c.lookup_blocking(&address).map_err(|e| e.to_string());
            c.disconnect();
            r
        });
    match result {
        Ok(entries) => {
            let certificates: usize = entries.iter().map(|e| e.certificates.len()).sum();
            let sample = match &config.doctor.sample_address {
                Some(a) if entries.is_empty() => {
                    return line(
                        "directory",
                        Verdict::Failed,
                        format!(
                            "{}: searched, but [doctor] sample_address {a} has no entry",
                            d.url
                        ),
                    );
                }
                Some(a) => format!(
                    "{a}: {} entr{}, {certificates} certificate(s)",
                    entries.len(),
                    if entries.len() == 1 { "y" } else { "ies" }
                ),
                None => "bind and search work (set [doctor] sample_address for a real lookup)"
                    .to_owned(),
            };
            line("directory", Verdict::Ok, format!("{}: {sample}", d.url))
        }
        Err(e) => line("directory", Verdict::Failed, format!("{}: {e}", d.url)),
    }
}

fn time_offset(config: &Config, port: u16) -> CheckResult {
    let Some(host) = url_host(&config.konnektor.sds_url) else {
        return line(
            "time",
            Verdict::Skipped,
            "no Konnektor host in [konnektor] sds_url",
        );
    };
    let addr = match (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut a| a.next())
    {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            return line("time", Verdict::Failed, format!("cannot resolve {host}"));
        }
    };
    let timeout = config.konnektor.timeout.min(Duration::from_secs(5));
    match futures_lite::future::block_on(crate::ntp::query(addr, timeout)) {
        Ok(sample) => line(
            "time",
            Verdict::Ok,
            format!(
                "offset to the Konnektor {:+} ms (NTP {addr}); komle-cm follows the Konnektor's time (A_2230)",
                sample.offset_nanos / 1_000_000
            ),
        ),
        Err(e) => line(
            "time",
            Verdict::Failed,
            format!("NTP {addr} (UDP/{port}): {e} (firewall? the Konnektor's NTP service?)"),
        ),
    }
}

/// A concrete `host:port` of an allow-list entry; `None` for `*.domain:port`.
fn concrete(pattern: &str) -> Option<(String, u16)> {
    if pattern.starts_with("*.") {
        return None;
    }
    let (host, port) = pattern.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

fn upstream(config: &Config, out: &mut Vec<CheckResult>) {
    let tls_config =
        tls::upstream_client_config(&config.upstream, config.keys.as_ref()).map_err(|e| e.0);
    let client_cert = if config.upstream.client_identity.is_some() {
        "with client certificate"
    } else {
        "without client certificate"
    };
    let timeout = config.timeouts.mta_response.min(PROBE_TIMEOUT);
    for (name, list, greeting) in [
        ("mta", config.upstream.smtp_allow(), "220"),
        ("pop3", config.upstream.pop3_allow(), "+OK"),
    ] {
        if list.is_empty() {
            out.push(line(
                name,
                Verdict::Skipped,
                format!(
                    "[upstream] {} is empty",
                    if name == "mta" { "smtp" } else { "pop3" }
                ),
            ));
        }
        for pattern in list.patterns() {
            let pattern = pattern.to_string();
            let label = format!("{name} {pattern}");
            let Some((host, port)) = concrete(&pattern) else {
                out.push(line(
                    label,
                    Verdict::Skipped,
                    "a pattern, no single host to try",
                ));
                continue;
            };
            let result = match &tls_config {
                Err(e) => Err(format!("upstream TLS: {e}")),
                Ok(c) => tls_greeting(c.clone(), &host, port, timeout),
            };
            out.push(match result {
                Ok(first) if first.starts_with(greeting) => line(
                    label,
                    Verdict::Ok,
                    format!("TLS {client_cert}, greeting {}", first.trim_end()),
                ),
                Ok(first) => line(
                    label,
                    Verdict::Failed,
                    format!("TLS ok, but the greeting is {:?}", first.trim_end()),
                ),
                Err(e) => line(label, Verdict::Failed, e),
            });
        }
    }
}

/// Connects with implicit TLS and reads the server's first line.
fn tls_greeting(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<String, String> {
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .and_then(|()| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let name = tls::server_name(host).map_err(|e| e.0)?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(|e| format!("{addr}: TLS or greeting: {e}"))?;
    // The greeting is the server's banner, no mail content: safe to show.
    first.truncate(200);
    Ok(first)
}

/// The listeners' leaf certificate and where it is (file path or key store entry).
fn listener_leaf(
    config: &Config,
) -> (
    String,
    Result<rustls::pki_types::CertificateDer<'static>, String>,
) {
    match &config.tls.identity {
        ListenerIdentity::Files { certificate, .. } => {
            let place = certificate.display().to_string();
            let leaf = tls::load_certificates(certificate)
                .map_err(|e| e.0)
                .and_then(|certs| {
                    certs
                        .into_iter()
                        .next()
                        .ok_or_else(|| format!("{place}: no certificate"))
                });
            (place, leaf)
        }
        ListenerIdentity::KeyStore { alias } => {
            let place = format!("key store entry \"{alias}\"");
            let leaf = match config.keys.as_ref() {
                None => Err("[tls] identity is set but [keys] store is not".to_owned()),
                Some(keys) => {
                    tls::open_identity(keys, alias)
                        .map_err(|e| e.0)
                        .and_then(|identity| {
                            let (chain, _key) = identity.into_parts();
                            chain
                                .into_iter()
                                .next()
                                .ok_or_else(|| format!("{place}: no certificate"))
                        })
                }
            };
            (place, leaf)
        }
    }
}

fn listener_certificate(config: &Config, now: SystemTime) -> CheckResult {
    let (place, leaf) = listener_leaf(config);
    let leaf = leaf.and_then(|der| {
        x509_cert::Certificate::from_der(der.as_ref())
            .map_err(|e| format!("{place}: not a certificate: {e}"))
    });
    let cert = match leaf {
        Ok(c) => c,
        Err(e) => return line("listener certificate", Verdict::Failed, e),
    };
    let not_after = cert.tbs_certificate.validity.not_after.to_system_time();
    let days = match not_after.duration_since(now) {
        Ok(left) => (left.as_secs() / 86_400) as i64,
        Err(past) => -((past.duration().as_secs() / 86_400) as i64) - 1,
    };
    let detail = format!("{place}: {days} day(s) left");
    if days < 0 {
        line(
            "listener certificate",
            Verdict::Failed,
            format!("{place}: expired"),
        )
    } else if days < CERTIFICATE_WARN_DAYS {
        line(
            "listener certificate",
            Verdict::Failed,
            format!("{detail}, renew it (less than {CERTIFICATE_WARN_DAYS})"),
        )
    } else {
        line("listener certificate", Verdict::Ok, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_entries_give_host_and_port_and_patterns_are_skipped() {
        assert_eq!(
            concrete("mta.kim.example:465"),
            Some(("mta.kim.example".into(), 465))
        );
        assert_eq!(
            concrete("[2001:db8::1]:995"),
            Some(("2001:db8::1".into(), 995))
        );
        assert_eq!(concrete("*.kim.example:465"), None);
    }

    #[test]
    fn doctor_context_is_three_parts() {
        let c = call_context("m1#cs1#ws1").unwrap();
        assert_eq!(
            (
                c.mandant_id.as_str(),
                c.client_system_id.as_str(),
                c.workplace_id.as_str()
            ),
            ("m1", "cs1", "ws1")
        );
        assert!(call_context("m1#cs1").is_none());
        assert!(call_context("m1##ws1").is_none());
        assert!(call_context("a#b#c#d").is_none());
    }

    #[test]
    fn listener_certificate_days_left_and_the_exit_code_counts_failures() {
        let pki = crate::test_pki::make("Doctor CA");
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
[konnektor]\nsds_url = \"https://127.0.0.1:1/connector.sds\"\n\
[directory]\nurl = \"ldap://127.0.0.1:1\"\nbase = \"dc=x\"\n",
            pki.server_cert().display(),
            pki.server_key().display(),
        );
        let config = Config::parse(&text).unwrap();
        // The test certificate is valid for about a day: soon to expire now, fine 40 days ago.
        let now = SystemTime::now();
        let soon = listener_certificate(&config, now);
        assert_eq!(soon.verdict, Verdict::Failed, "{soon}");
        assert!(soon.detail.contains("renew it"), "{soon}");
        let ok = listener_certificate(&config, now - Duration::from_secs(40 * 86_400));
        assert_eq!(ok.verdict, Verdict::Ok, "{ok}");
        assert!(ok.detail.ends_with("day(s) left"), "{ok}");
        // Seen from ten years on, it has expired.
        let later = now + Duration::from_secs(3650 * 86_400);
        let expired = listener_certificate(&config, later);
        assert_eq!(expired.verdict, Verdict::Failed, "{expired}");
        assert!(
            expired
                .to_string()
                .starts_with("FAILED  listener certificate: ")
        );
        let results = vec![ok, expired, line("x", Verdict::Skipped, "")];
        assert_eq!(failures(&results), 1);
    }
}
