//! `[admin] listen`: the daemon's local HTTP endpoint for supervisors and monitoring.
//!
//! - `GET /health`: `200` when the Konnektor (its `connector.sds` is readable and usable), the
//!   directory (its LDAP port accepts connections) and the time sync (A_2230: at least one NTP
//!   exchange with the Konnektor succeeded) are all good, else `503`. The body has one line per
//!   dependency, `ok` or `FAILED` with the reason, so the operator sees which one is down.
//! - `GET /metrics`: Prometheus text format ([`Stats::render`]): sessions, messages, Konnektor
//!   and directory latency histograms, faults by gematik code, certificate-cache hits.
//!
//! WHY a thread with `tiny_http` instead of a task on the daemon's executor: the health checks
//! block (HTTPS to the Konnektor, a TCP connect to the directory), scrapes are rare, and a
//! maintained HTTP/1.1 server keeps request parsing out of this crate; one thread costs
//! nothing next to that. Nothing of a mail passes here: the body holds names, counts and the
//! dependencies' error texts only.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use komle_core::konnektor::ServiceDirectory;

use crate::cli::RuntimeError;
use crate::config::Config;
use crate::konnektor_http::KonnektorHttp;
use crate::stats::{Outcome, Stats, dependencies};
use crate::time_sync::Clock;

/// How long one health answer is reused: a monitoring system polling every second must not
/// turn into a `connector.sds` request per second on the Konnektor.
pub const HEALTH_CACHE: Duration = Duration::from_secs(5);

/// The longest a health probe waits for one dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One dependency's state as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// `konnektor`, `directory` or `time sync`.
    pub name: &'static str,
    pub ok: bool,
    /// Why (or what was seen); no message content, no secrets.
    pub detail: String,
}

/// The health of every dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub checks: Vec<CheckLine>,
}

impl HealthReport {
    /// Ready only when every check is good.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// `name: ok|FAILED: detail`, one line each.
    pub fn body(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let state = if c.ok { "ok" } else { "FAILED" };
            out.push_str(&format!("{}: {state}: {}\n", c.name, c.detail));
        }
        out
    }
}

/// Where `/health` gets its answer (the daemon: [`DependencyHealth`]; tests: a fixed one).
pub trait HealthSource: Send + Sync {
    /// Blocking: runs on the admin thread.
    fn check(&self) -> HealthReport;
}

/// The daemon's dependencies, checked from its configuration.
pub struct DependencyHealth {
    konnektor: Result<KonnektorHttp, String>,
    sds_url: String,
    directory_url: String,
    timeout: Duration,
    clock: Option<Arc<Clock>>,
    cached: Mutex<Option<(Instant, HealthReport)>>,
}

impl DependencyHealth {
    /// `clock` is the daemon's synced clock (`None`: no time sync configured, which is
    /// reported as a failure).
    pub fn from_config(config: &Config, clock: Option<Arc<Clock>>) -> Self {
        // A hanging Konnektor must not hold /health for the full call timeout (1 min).
        let mut konnektor = config.konnektor.clone();
        konnektor.timeout = konnektor.timeout.min(PROBE_TIMEOUT);
        DependencyHealth {
            konnektor: KonnektorHttp::new(&konnektor).map_err(|e| e.to_string()),
            sds_url: config.konnektor.sds_url.clone(),
            directory_url: config.directory.url.clone(),
            timeout: config.directory.timeout.min(PROBE_TIMEOUT),
            clock,
            cached: Mutex::new(None),
        }
    }

    fn konnektor(&self) -> CheckLine {
        let (ok, detail) = match &self.konnektor {
            Err(e) => (false, format!("[konnektor] TLS settings: {e}")),
            Ok(http) => match http.get_blocking(&self.sds_url) {
                Err(e) => (false, format!("{}: {e}", self.sds_url)),
                Ok(bytes) => match ServiceDirectory::parse(&bytes).and_then(|d| d.endpoints()) {
                    Ok(e) => (
                        true,
                        format!(
                            "connector.sds read (signature service {:?}, ECC capable: {})",
                            e.signature_version, e.ecc_capable
                        ),
                    ),
                    Err(e) => (false, format!("connector.sds unusable: {e}")),
                },
            },
        };
        CheckLine {
            name: "konnektor",
            ok,
            detail,
        }
    }

    fn directory(&self) -> CheckLine {
        let last = match dependencies().ldap_last() {
            Outcome::Unknown => "no lookup yet",
            Outcome::Ok => "last lookup ok",
            Outcome::Failed => "last lookup failed",
        };
        let (ok, detail) = match tcp_probe(&self.directory_url, self.timeout) {
            Ok(addr) => (true, format!("{addr} accepts connections; {last}")),
            Err(e) => (false, format!("{}: {e}; {last}", self.directory_url)),
        };
        CheckLine {
            name: "directory",
            ok,
            detail,
        }
    }

    fn time_sync(&self) -> CheckLine {
        let (ok, detail) = match &self.clock {
            None => (false, "not configured (no Konnektor host)".to_owned()),
            Some(c) if c.is_synced() => (
                true,
                format!(
                    "offset to the Konnektor {} ms",
                    c.offset_nanos() / 1_000_000
                ),
            ),
            Some(_) => (
                false,
                "no NTP answer from the Konnektor yet (UDP/123)".into(),
            ),
        };
        CheckLine {
            name: "time sync",
            ok,
            detail,
        }
    }
}

impl HealthSource for DependencyHealth {
    fn check(&self) -> HealthReport {
        let mut cached = match self.cached.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < HEALTH_CACHE
        {
            return report.clone();
        }
        let report = HealthReport {
            checks: vec![self.konnektor(), self.directory(), self.time_sync()],
        };
        *cached = Some((Instant::now(), report.clone()));
        report
    }
}

/// `host:port` of an `ldap://` / `ldaps://` URL (default ports 389 / 636).
pub fn ldap_authority(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "ldap" => 389,
        "ldaps" => 636,
        _ => return None,
    };
    let host = crate::assembly::url_host(url)?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let after_host = match authority.rsplit_once(']') {
        Some((_, tail)) => tail,
        None => authority.rsplit_once('@').map_or(authority, |(_, h)| h),
    };
    let port = match after_host.rsplit_once(':') {
        Some((_, p)) => p.parse().ok()?,
        None => default,
    };
    Some((host, port))
}

/// Connects to the directory's LDAP port within `timeout`: the cheap "reachable" probe.
pub fn tcp_probe(url: &str, timeout: Duration) -> Result<SocketAddr, String> {
    let (host, port) = ldap_authority(url).ok_or("not an ldap:// or ldaps:// URL")?;
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(addr),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// Logs a warning when the directory's LDAP port does not accept connections (blocking, at
/// most [`PROBE_TIMEOUT`]): the daemon starts anyway (recipients get 4xx until it is back),
/// but an operator must not learn of it only from the first refused mail.
pub fn warn_if_directory_unreachable(config: &Config) {
    let url = &config.directory.url;
    if let Err(e) = tcp_probe(url, config.directory.timeout.min(PROBE_TIMEOUT)) {
        log::warn!(
            "[directory] url {url}: not reachable at start ({e}); recipients are answered with 4xx until it is"
        );
    }
}

/// The running endpoint; dropping it stops the thread.
pub struct AdminServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `addr` and serves `/health` and `/metrics` on a thread of its own.
    pub fn start(
        addr: SocketAddr,
        stats: Arc<Stats>,
        health: Arc<dyn HealthSource>,
    ) -> io::Result<AdminServer> {
        let server = Arc::new(tiny_http::Server::http(addr).map_err(io::Error::other)?);
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("not an IP listener"))?;
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("komle-admin".into())
            .spawn(move || serve(&serving, &stats, health.as_ref()))?;
        log::info!("admin endpoint on http://{bound} (/health, /metrics)");
        Ok(AdminServer {
            server,
            addr: bound,
            thread: Some(thread),
        })
    }

    /// The bound address (the port when `:0` was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `[admin]` of `config`, if present, started: the daemon's hook. A port that cannot be bound
/// is a start-up error naming the option.
pub fn start_configured(
    config: &Config,
    stats: Arc<Stats>,
    clock: Option<Arc<Clock>>,
) -> Result<Option<AdminServer>, RuntimeError> {
    let Some(admin) = &config.admin else {
        return Ok(None);
    };
    let health = Arc::new(DependencyHealth::from_config(config, clock));
    AdminServer::start(admin.listen, stats, health)
        .map(Some)
        .map_err(|e| RuntimeError(format!("[admin] listen {}: cannot bind: {e}", admin.listen)))
}

fn serve(server: &tiny_http::Server, stats: &Stats, health: &dyn HealthSource) {
    for request in server.incoming_requests() {
        let (status, content_type, body) = answer(request.method(), request.url(), stats, health);
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes());
        let mut response = tiny_http::Response::from_string(body).with_status_code(status);
        if let Ok(h) = header {
            response.add_header(h);
        }
        if let Err(e) = request.respond(response) {
            log::debug!("admin endpoint: answer not sent: {e}");
        }
    }
}

/// Status, content type and body for one request.
fn answer(
    method: &tiny_http::Method,
    url: &str,
    stats: &Stats,
    health: &dyn HealthSource,
) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if *method != tiny_http::Method::Get && *method != tiny_http::Method::Head {
        return (405, TEXT, "only GET\n".into());
    }
    match url.split('?').next().unwrap_or_default() {
        "/health" => {
            let report = health.check();
            let status = if report.ready() { 200 } else { 503 };
            (status, TEXT, report.body())
        }
        // The exposition format's content type (Prometheus text format 0.0.4).
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            stats.render(),
        ),
        _ => (404, TEXT, "not found: /health, /metrics\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    struct Fixed(HealthReport);
    impl HealthSource for Fixed {
        fn check(&self) -> HealthReport {
            self.0.clone()
        }
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&format!("http://{addr}{path}")).call().unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = r.status().as_u16();
        (status, ct, r.body_mut().read_to_string().unwrap())
    }

    fn line(name: &'static str, ok: bool, detail: &str) -> CheckLine {
        CheckLine {
            name,
            ok,
            detail: detail.into(),
        }
    }

    #[test]
    fn health_is_503_naming_each_failed_dependency_and_metrics_scrape() {
        let stats = Arc::new(Stats::default());
        stats.sessions_total.fetch_add(4, Ordering::Relaxed);
        let report = HealthReport {
            checks: vec![
                line("konnektor", true, "connector.sds read"),
                line("directory", false, "127.0.0.1:1: refused"),
                line("time sync", false, "no NTP answer"),
            ],
        };
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            stats.clone(),
            Arc::new(Fixed(report)),
        )
        .unwrap();
        let addr = server.local_addr();
        let (status, _, body) = get(addr, "/health");
        assert_eq!(status, 503);
        assert_eq!(
            body,
            "konnektor: ok: connector.sds read\ndirectory: FAILED: 127.0.0.1:1: refused\ntime sync: FAILED: no NTP answer\n"
        );
        let (status, ct, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        assert!(body.contains("# TYPE komle_sessions_total counter\nkomle_sessions_total 4\n"));
        assert!(body.contains("# TYPE komle_konnektor_request_duration_seconds histogram\n"));
        assert_eq!(get(addr, "/nope").0, 404);
        // Dropping stops and joins the thread (it would hang here otherwise).
        drop(server);
    }

    #[test]
    fn health_is_200_when_all_are_good() {
        let report = HealthReport {
            checks: vec![
                line("konnektor", true, "a"),
                line("directory", true, "b"),
                line("time sync", true, "c"),
            ],
        };
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Stats::default()),
            Arc::new(Fixed(report)),
        )
        .unwrap();
        let (status, _, body) = get(server.local_addr(), "/health");
        assert_eq!((status, body.lines().count()), (200, 3), "{body}");
    }

    #[test]
    fn ldap_urls_give_host_and_port() {
        assert_eq!(
            ldap_authority("ldap://vzd.local"),
            Some(("vzd.local".into(), 389))
        );
        assert_eq!(
            ldap_authority("ldaps://vzd.local/dc=x"),
            Some(("vzd.local".into(), 636))
        );
        assert_eq!(
            ldap_authority("ldap://127.0.0.1:3890"),
            Some(("127.0.0.1".into(), 3890))
        );
        assert_eq!(
            ldap_authority("ldaps://[fd00::1]:1636"),
            Some(("fd00::1".into(), 1636))
        );
        assert_eq!(ldap_authority("https://x"), None);
    }

    #[test]
    fn a_busy_admin_port_is_a_start_up_error_naming_the_option() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pki = crate::test_pki::make("Admin CA");
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
[konnektor]\nsds_url = \"https://127.0.0.1:1/connector.sds\"\n\
[directory]\nurl = \"ldap://127.0.0.1:1\"\nbase = \"dc=x\"\n[admin]\nlisten = \"{}\"\n",
            pki.server_cert().display(),
            pki.server_key().display(),
            taken.local_addr().unwrap()
        );
        let config = Config::parse(&text).unwrap();
        let e = start_configured(&config, Arc::new(Stats::default()), None)
            .err()
            .unwrap();
        assert!(
            e.0.starts_with(&format!(
                "[admin] listen {}: cannot bind:",
                taken.local_addr().unwrap()
            )),
            "{e}"
        );
    }

    #[test]
    fn dependency_health_names_konnektor_directory_and_time_sync_when_down() {
        let pki = crate::test_pki::make("Admin CA");
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
[konnektor]\nsds_url = \"https://127.0.0.1:1/connector.sds\"\nca = \"{}\"\n\
[directory]\nurl = \"ldap://127.0.0.1:1\"\nbase = \"dc=x\"\n",
            pki.server_cert().display(),
            pki.server_key().display(),
            pki.ca().display(),
        );
        let config = Config::parse(&text).unwrap();
        let clock = Arc::new(Clock::new());
        let health = DependencyHealth::from_config(&config, Some(clock.clone()));
        let report = health.check();
        assert!(!report.ready());
        let names: Vec<_> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["konnektor", "directory", "time sync"], "{report:?}");
        // Within HEALTH_CACHE the same answer comes back without asking again.
        clock.set_offset_nanos(2_000_000);
        assert_eq!(health.check(), report);
    }
}
