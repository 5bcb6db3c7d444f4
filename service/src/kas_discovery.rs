//! Where the sender's KAS and account manager are: DNS service discovery (A_19361-01,
//! RFC 6763) instead of configured URLs.
//!
//! For each service (`_kas._tcp`, `_accmgr._tcp`) under the discovery domain (the TI's
//! `kim.telematik`):
//! 1. **PTR** `_kas._tcp.<domain>` lists the service instances (one per KIM provider).
//! 2. The instance is chosen by the sender's mail domain (KIM addresses carry the provider's
//!    domain, e.g. `…@akquinet.kim.telematik`, and its instance name ends with it, the way the
//!    open-source Clientmodul openkim filters the PTR answers); a single instance is taken as
//!    it is (a provider's own DNS, a test bed).
//! 3. **SRV** of the instance: host and port (lowest priority, then highest weight, RFC 2782;
//!    target `.` means "not offered").
//! 4. **TXT** of the instance: the base path, from the key `path` (RFC 6763 §6 key/value
//!    pairs; `path` is the DNS-SD convention for HTTP services, and the yaml comments only say
//!    "Base-path gemäß TXT RR"). No TXT record or no `path` key: an empty base path, as
//!    openkim uses in production. A `path` that is not an absolute URL path is a typed error,
//!    never part of a URL.
//!
//! The URL is `https://<SRV host>:<SRV port><TXT path><path from the yaml>` (the `servers:`
//! comment of AttachmentService.yaml and AccountLimit.yaml): [`KAS_API_PATH`] and
//! [`LIMITS_API_PATH`]. The host's address is resolved when the HTTPS client connects (system
//! resolver), the name stays in the URL for the TLS server-name check.
//!
//! Results are cached for the smallest TTL of the records used (capped at a day), so a
//! lookup happens once per TTL, not per mail; failures are not cached (the next mail tries
//! again). Every failure is a [`DiscoveryError`], which the send path answers like a KAS that
//! is down: 451 and RSET (A_19363-03).
//!
//! The DNS client is hickory-resolver (no hand-written DNS). It runs on a private
//! current-thread tokio runtime inside one blocking call, so the service stays
//! runtime-neutral; [`KasEndpoints`] puts that call on the `blocking` pool.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::Resolver;

use crate::config::KasSettings;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

/// `[kas] discovery_domain` default: the TI's KIM domain, where the providers register their
/// KAS and account manager instances.
pub const DEFAULT_DISCOVERY_DOMAIN: &str = "kim.telematik";

/// The yaml's `servers:` path of I_Attachment_Service 2.4 (AttachmentService.yaml).
pub const KAS_API_PATH: &str = "/attachments/v2.4";

/// The yaml's `servers:` path of I_AccountLimit_Service plus its `/limit` operation
/// (AccountLimit.yaml, getLimits).
pub const LIMITS_API_PATH: &str = "/AccountLimit/v1.1/limit";

/// Bound of one discovery (PTR, SRV, TXT): DNS answers in milliseconds or not at all; a
/// shorter `[kas] timeout` bounds it further.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time a discovered endpoint is kept, whatever its TTL says.
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// The two services of a KIM provider that the Clientmodul discovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `_kas._tcp`: the KOM-LE Attachment Service.
    Kas,
    /// `_accmgr._tcp`: the account manager with getLimits (A_22416).
    AccountManager,
}

impl Service {
    /// The DNS-SD service label (`<Service>.<Proto>`, RFC 6763 §7).
    pub fn label(self) -> &'static str {
        match self {
            Service::Kas => "_kas._tcp",
            Service::AccountManager => "_accmgr._tcp",
        }
    }

    /// The path from the yaml appended to the discovered base.
    pub fn api_path(self) -> &'static str {
        match self {
            Service::Kas => KAS_API_PATH,
            Service::AccountManager => LIMITS_API_PATH,
        }
    }
}

/// One discovered service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The instance name from the PTR record (without the final dot).
    pub instance: String,
    /// SRV target (without the final dot).
    pub host: String,
    /// SRV port.
    pub port: u16,
    /// The TXT record's `path`, `""` or `/…` without a trailing slash.
    pub base_path: String,
}

impl Endpoint {
    /// `https://host:port<base path><yaml path>` for `service`.
    pub fn url(&self, service: Service) -> String {
        format!(
            "https://{}:{}{}{}",
            self.host,
            self.port,
            self.base_path,
            service.api_path()
        )
    }
}

/// Why no endpoint was found. All of them mean "the KAS is not reachable" to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The PTR query found no instance (NXDOMAIN or no PTR records).
    NoInstance { service: String },
    /// Several instances and none belongs to the sender's domain.
    NoInstanceForSender {
        service: String,
        sender_domain: String,
        instances: usize,
    },
    /// The instance has no usable SRV record (none, or target `.`).
    NoSrv { instance: String },
    /// The instance's TXT `path` cannot be a URL path.
    BadTxt {
        instance: String,
        reason: &'static str,
    },
    /// The name server did not answer in time.
    Timeout,
    /// Anything else from the resolver (no name server, I/O, SERVFAIL, bad configuration).
    Resolver(String),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoInstance { service } => write!(f, "no DNS-SD instance for {service}"),
            Self::NoInstanceForSender {
                service,
                sender_domain,
                instances,
            } => write!(
                f,
                "{instances} DNS-SD instances for {service}, none for the sender's domain {sender_domain}"
            ),
            Self::NoSrv { instance } => write!(f, "no SRV record for {instance}"),
            Self::BadTxt { instance, reason } => {
                write!(f, "TXT record of {instance}: {reason}")
            }
            Self::Timeout => f.write_str("DNS lookup timed out"),
            Self::Resolver(e) => write!(f, "DNS lookup failed: {e}"),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// `[kas] discovery_domain`, `dns_server` and the time a whole discovery may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// Where `_kas._tcp` and `_accmgr._tcp` are looked up, e.g. `kim.telematik`.
    pub domain: String,
    /// The name server to ask; `None`: the system's (`/etc/resolv.conf`).
    pub dns_server: Option<SocketAddr>,
    /// Bound of one whole discovery (PTR, SRV, TXT with retries).
    pub timeout: Duration,
}

struct Cached {
    endpoint: Endpoint,
    valid_until: Instant,
}

/// DNS-SD lookups with a TTL cache; shared by all sessions.
pub struct KasDiscovery {
    settings: DiscoverySettings,
    /// Per service and sender domain (lower case; `""` without one).
    cache: Mutex<HashMap<(Service, String), Cached>>,
}

impl fmt::Debug for KasDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KasDiscovery")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What one discovery yields before it is cached: the endpoint and the smallest TTL seen.
struct Found {
    endpoint: Endpoint,
    ttl: Duration,
}

impl KasDiscovery {
    pub fn new(settings: DiscoverySettings) -> Self {
        Self {
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &DiscoverySettings {
        &self.settings
    }

    /// The endpoint of `service` for a sender in `sender_domain`: from the cache while its TTL
    /// lasts, else from DNS. Blocks for up to [`DiscoverySettings::timeout`]: call it on a
    /// blocking pool (see [`KasEndpoints`]).
    ///
    /// # Errors
    /// [`DiscoveryError`]; not cached.
    pub fn discover(
        &self,
        service: Service,
        sender_domain: Option<&str>,
    ) -> Result<Endpoint, DiscoveryError> {
        let domain = sender_domain
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let key = (service, domain);
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(&key).filter(|c| Instant::now() < c.valid_until) {
                return Ok(c.endpoint.clone());
            }
        }
        let found = self.lookup(service, &key.1)?;
        log::info!(
            "DNS-SD: {} for {} at {} (TTL {} s)",
            service.label(),
            if key.1.is_empty() {
                "any sender"
            } else {
                &key.1
            },
            found.endpoint.url(service),
            found.ttl.as_secs()
        );
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            key,
            Cached {
                endpoint: found.endpoint.clone(),
                valid_until: Instant::now() + found.ttl.min(MAX_CACHE),
            },
        );
        Ok(found.endpoint)
    }

    fn lookup(&self, service: Service, sender_domain: &str) -> Result<Found, DiscoveryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DiscoveryError::Resolver(format!("runtime: {e}")))?;
        let timeout = self.settings.timeout;
        runtime.block_on(async {
            match tokio::time::timeout(timeout, self.lookup_async(service, sender_domain)).await {
                Ok(r) => r,
                Err(_) => Err(DiscoveryError::Timeout),
            }
        })
    }

    fn resolver(&self) -> Result<Resolver<TokioRuntimeProvider>, DiscoveryError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match self.settings.dns_server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            None => Resolver::builder(provider).map_err(|e| resolver_error(&e))?,
        };
        let options = builder.options_mut();
        // Half the budget per try, two tries: the whole discovery fits the timeout.
        options.timeout = (self.settings.timeout / 2).max(Duration::from_millis(100));
        options.attempts = 2;
        options.use_hosts_file = ResolveHosts::Never;
        builder.build().map_err(|e| resolver_error(&e))
    }

    async fn lookup_async(
        &self,
        service: Service,
        sender_domain: &str,
    ) -> Result<Found, DiscoveryError> {
        let resolver = self.resolver()?;
        let service_name = format!(
            "{}.{}.",
            service.label(),
            self.settings.domain.trim_end_matches('.')
        );
        let mut ttl = u32::MAX;

        // 1. PTR: the instances.
        let ptr = match resolver
            .lookup(service_name.as_str(), RecordType::PTR)
            .await
        {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() => {
                return Err(DiscoveryError::NoInstance {
                    service: service_name,
                });
            }
            Err(e) => return Err(resolver_error(&e)),
        };
        let mut instances: Vec<(String, u32)> = ptr
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some((name_text(&p.0.to_string()), r.ttl)),
                _ => None,
            })
            .collect();
        instances.sort();
        instances.dedup_by(|a, b| a.0 == b.0);
        let (instance, ptr_ttl) = choose_instance(&instances, sender_domain).map_err(|n| {
            if n == 0 {
                DiscoveryError::NoInstance {
                    service: service_name.clone(),
                }
            } else {
                DiscoveryError::NoInstanceForSender {
                    service: service_name.clone(),
                    sender_domain: sender_domain.to_owned(),
                    instances: n,
                }
            }
        })?;
        ttl = ttl.min(ptr_ttl);
        let fqdn = format!("{instance}.");

        // 2. SRV: host and port.
        let srv = match resolver.lookup(fqdn.as_str(), RecordType::SRV).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() => {
                return Err(DiscoveryError::NoSrv { instance });
            }
            Err(e) => return Err(resolver_error(&e)),
        };
        let best = srv
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some((s, r.ttl)),
                _ => None,
            })
            .min_by_key(|(s, _)| (s.priority, std::cmp::Reverse(s.weight)));
        let Some((srv_data, srv_ttl)) = best else {
            return Err(DiscoveryError::NoSrv { instance });
        };
        let host = name_text(&srv_data.target.to_string());
        if host.is_empty() || srv_data.port == 0 {
            // RFC 2782: target "." means the service is decidedly not available.
            return Err(DiscoveryError::NoSrv { instance });
        }
        ttl = ttl.min(srv_ttl);

        // 3. TXT: the base path.
        let base_path = match resolver.lookup(fqdn.as_str(), RecordType::TXT).await {
            Ok(l) => {
                let mut strings = Vec::new();
                for r in l.answers() {
                    if let RData::TXT(t) = &r.data {
                        ttl = ttl.min(r.ttl);
                        strings.extend(t.txt_data.iter().map(|s| s.to_vec()));
                    }
                }
                base_path_from_txt(&strings).map_err(|reason| DiscoveryError::BadTxt {
                    instance: instance.clone(),
                    reason,
                })?
            }
            Err(e) if e.is_no_records_found() => String::new(),
            Err(e) => return Err(resolver_error(&e)),
        };
        Ok(Found {
            endpoint: Endpoint {
                instance,
                host,
                port: srv_data.port,
                base_path,
            },
            ttl: Duration::from_secs(u64::from(ttl)),
        })
    }
}

fn resolver_error(e: &NetError) -> DiscoveryError {
    if matches!(e, NetError::Timeout) {
        DiscoveryError::Timeout
    } else {
        DiscoveryError::Resolver(e.to_string())
    }
}

/// A DNS name as text without the root dot, lower case.
fn name_text(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The instance for a sender in `sender_domain` (lower case, may be empty) among `instances`
/// (sorted names with their TTLs): the first whose name is the domain or ends with
/// `.<domain>`; else the only one. `Err(n)`: none chosen among `n`.
pub fn choose_instance(
    instances: &[(String, u32)],
    sender_domain: &str,
) -> Result<(String, u32), usize> {
    if !sender_domain.is_empty() {
        let suffix = format!(".{sender_domain}");
        if let Some(i) = instances
            .iter()
            .find(|(n, _)| n == sender_domain || n.ends_with(&suffix))
        {
            return Ok(i.clone());
        }
    }
    match instances {
        [only] => Ok(only.clone()),
        _ => Err(instances.len()),
    }
}

/// The base path from the TXT strings (RFC 6763 §6: `key=value`, keys case-insensitive, only
/// the first occurrence of a key counts): `path`'s value without a trailing slash, `""`
/// without the key.
///
/// # Errors
/// A reason when `path` is not UTF-8, not absolute, or has characters outside an RFC 3986
/// path (query, fragment, space, controls), so nothing odd ever reaches a URL.
pub fn base_path_from_txt(strings: &[Vec<u8>]) -> Result<String, &'static str> {
    let Some(value) = strings.iter().find_map(|s| {
        let (key, value) = match s.iter().position(|&b| b == b'=') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (&s[..], None),
        };
        key.eq_ignore_ascii_case(b"path").then_some(value)
    }) else {
        return Ok(String::new());
    };
    let Some(value) = value else {
        return Err("path without a value");
    };
    let text = std::str::from_utf8(value).map_err(|_| "path is not UTF-8")?;
    if text.is_empty() {
        return Ok(String::new());
    }
    if !text.starts_with('/') {
        return Err("path does not start with /");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c);
    if !text.chars().all(allowed) {
        return Err("path has characters outside a URL path");
    }
    if text.contains("//") {
        return Err("path has an empty segment");
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Where [`crate::kas_flow::KasFlow`] sends uploads and getLimits: configured URLs
/// (`[kas] base_url`, the override for test environments) or DNS-SD.
#[derive(Debug, Clone)]
pub enum KasEndpoints {
    /// `[kas] base_url` (in the client) and `limits_url`: no DNS.
    Fixed { limits_url: Option<String> },
    /// A_19361-01; `limits_url` is an explicit override of the account manager's URL.
    Discovered {
        discovery: Arc<KasDiscovery>,
        limits_url: Option<String>,
    },
}

impl KasEndpoints {
    /// From `[kas]`: fixed URLs when `base_url` is configured (the override wins over
    /// `discovery_domain`, said once in the log: this runs once at start), else DNS-SD under
    /// `discovery_domain` or [`DEFAULT_DISCOVERY_DOMAIN`], `limits_url` still overriding the
    /// account manager.
    pub fn from_settings(kas: &KasSettings) -> Self {
        if kas.base_url.is_some() {
            if let Some(domain) = &kas.discovery_domain {
                log::warn!(
                    "[kas] base_url overrides discovery_domain {domain}: no DNS-SD (A_19361-01)"
                );
            }
            return Self::Fixed {
                limits_url: kas.limits_url.clone(),
            };
        }
        let domain = kas
            .discovery_domain
            .clone()
            .unwrap_or_else(|| DEFAULT_DISCOVERY_DOMAIN.to_owned());
        log::info!(
            "[kas] KAS and account manager by DNS-SD under {domain} (A_19361-01){}",
            if kas.limits_url.is_some() {
                "; getLimits at the configured limits_url"
            } else {
                ""
            }
        );
        Self::Discovered {
            discovery: Arc::new(KasDiscovery::new(DiscoverySettings {
                domain,
                dns_server: kas.dns_server,
                timeout: kas.timeout.min(DISCOVERY_TIMEOUT),
            })),
            limits_url: kas.limits_url.clone(),
        }
    }

    /// The KAS base URL (`…/attachments/v2.4`) for a sender in `sender_domain`; `None` for
    /// [`KasEndpoints::Fixed`] (the client's configured one applies).
    ///
    /// # Errors
    /// [`DiscoveryError`].
    pub async fn kas_base_url(
        &self,
        sender_domain: Option<&str>,
    ) -> Result<Option<String>, DiscoveryError> {
        match self {
            Self::Fixed { .. } => Ok(None),
            Self::Discovered { discovery, .. } => {
                discover_on_pool(discovery, Service::Kas, sender_domain)
                    .await
                    .map(|e| Some(e.url(Service::Kas)))
            }
        }
    }

    /// The getLimits URL for a sender in `sender_domain`; `None`: none configured or found.
    pub async fn limits_url(&self, sender_domain: Option<&str>) -> Option<String> {
        match self {
            Self::Fixed { limits_url } => limits_url.clone(),
            Self::Discovered {
                limits_url: Some(url),
                ..
            } => Some(url.clone()),
            Self::Discovered { discovery, .. } => {
                match discover_on_pool(discovery, Service::AccountManager, sender_domain).await {
                    Ok(e) => Some(e.url(Service::AccountManager)),
                    Err(e) => {
                        log::warn!("account manager not found ({e})");
                        None
                    }
                }
            }
        }
    }
}

async fn discover_on_pool(
    discovery: &Arc<KasDiscovery>,
    service: Service,
    sender_domain: Option<&str>,
) -> Result<Endpoint, DiscoveryError> {
    let discovery = Arc::clone(discovery);
    let domain = sender_domain.map(str::to_owned);
    blocking::unblock(move || discovery.discover(service, domain.as_deref())).await
}

/// The domain of a mail address (`local@domain`), if it has one.
pub fn mail_domain(address: &str) -> Option<&str> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_19361_base_path_from_the_txt_path_key() {
        assert_eq!(
            base_path_from_txt(&txt(&["txtvers=1", "path=/kas/"])).unwrap(),
            "/kas"
        );
        assert_eq!(base_path_from_txt(&txt(&["PATH=/a/b"])).unwrap(), "/a/b");
        // RFC 6763 §6.4: only the first occurrence of a key counts.
        assert_eq!(
            base_path_from_txt(&txt(&["path=/x", "path=/y"])).unwrap(),
            "/x"
        );
        assert_eq!(base_path_from_txt(&txt(&["txtvers=1"])).unwrap(), "");
        assert_eq!(base_path_from_txt(&txt(&["path="])).unwrap(), "");
        assert_eq!(base_path_from_txt(&[]).unwrap(), "");
        for bad in [
            "path",
            "path=kas",
            "path=/a?b",
            "path=/a b",
            "path=/a#f",
            "path=//evil",
        ] {
            assert!(base_path_from_txt(&txt(&[bad])).is_err(), "{bad}");
        }
        assert!(base_path_from_txt(&[b"path=/\xff".to_vec()]).is_err());
    }

    #[test]
    fn a_19361_instance_of_the_senders_provider() {
        let list = vec![
            ("kas.akquinet.kim.telematik".to_owned(), 60),
            ("kas.arv.kim.telematik".to_owned(), 30),
        ];
        assert_eq!(
            choose_instance(&list, "arv.kim.telematik").unwrap().0,
            "kas.arv.kim.telematik"
        );
        // Suffix on a label boundary only.
        assert_eq!(choose_instance(&list, "v.kim.telematik"), Err(2));
        assert_eq!(choose_instance(&list, ""), Err(2));
        assert_eq!(choose_instance(&list[..1], "other.example").unwrap().1, 60);
        assert_eq!(choose_instance(&[], "x"), Err(0));
    }

    #[test]
    fn a_19361_url_from_srv_txt_and_yaml() {
        let e = Endpoint {
            instance: "i._kas._tcp.kim.test".into(),
            host: "kas.kim.test".into(),
            port: 8443,
            base_path: "/p".into(),
        };
        assert_eq!(
            e.url(Service::Kas),
            "https://kas.kim.test:8443/p/attachments/v2.4"
        );
        assert_eq!(
            e.url(Service::AccountManager),
            "https://kas.kim.test:8443/p/AccountLimit/v1.1/limit"
        );
        assert_eq!(mail_domain("<a@B.example>"), Some("B.example"));
        assert_eq!(mail_domain("nobody"), None);
    }
}
