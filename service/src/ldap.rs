//! Directory (VZD) access over LDAP with ldap3, run off the async executor.
//!
//! ldap3's `LdapConn` is blocking (it drives a private current-thread tokio runtime), so every
//! call runs on the `blocking` thread pool (usable from smol and tokio alike). One connection is
//! kept and reused across lookups (a TLS handshake per recipient would dominate the latency); a
//! broken connection is replaced once per lookup before the directory counts as unreachable.
//! Because that one connection serves one lookup at a time, lookups queue as tasks
//! ([`crate::call_limit`] with a limit of one), not as threads parked on its lock.
//!
//! The query itself comes from `komle_core::directory::DirectoryQuery` (RFC 4515 escaping
//! there), and entries go back as `komle_core::directory::DirectoryEntry` for the core's
//! selection rules. Nothing here logs addresses, certificates or the bind password.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::call_limit::CallLimit;
use komle_core::directory::{DirectoryEntry, DirectoryQuery};
use ldap3::{LdapConn, LdapConnSettings, ResultEntry, Scope, SearchEntry, SearchOptions};

/// Where and how to reach the directory.
#[derive(Clone)]
pub struct LdapSettings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    pub base_dn: String,
    /// PEM trust anchors for ldaps; `None` uses the webpki roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Bind DN and password; `None` reads anonymously.
    pub bind: Option<(String, String)>,
    /// Connect and per-operation timeout.
    pub timeout: Duration,
    /// Maximum number of entries per lookup (server-side size limit).
    pub size_limit: i32,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("base_dn", &self.base_dn)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("bind_dn", &self.bind.as_ref().map(|(dn, _)| dn))
            .field("timeout", &self.timeout)
            .field("size_limit", &self.size_limit)
            .finish()
    }
}

impl LdapSettings {
    /// Defaults: 10 s timeout, at most 20 entries per address.
    pub fn new(url: &str, base_dn: &str) -> Self {
        LdapSettings {
            url: url.to_owned(),
            base_dn: base_dn.to_owned(),
            ca_pem: None,
            bind: None,
            timeout: Duration::from_secs(10),
            size_limit: 20,
        }
    }
}

/// Lookup failures. [`LdapError::Unreachable`] is distinct because the SMTP layer answers it
/// with a transient 4xx (try later), not with a permanent "no certificate".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapError {
    /// Connection refused, timed out, TLS failed, or the connection broke.
    Unreachable(String),
    /// The settings cannot work (bad URL, bad CA file).
    Config(String),
    /// The directory rejected the bind credentials.
    BindFailed(u32),
    /// More entries than the configured size limit.
    TooManyResults,
    /// Any other LDAP result code.
    Directory { rc: u32, text: String },
}

impl std::fmt::Display for LdapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LdapError::Unreachable(e) => write!(f, "directory unreachable: {e}"),
            LdapError::Config(e) => write!(f, "directory configuration: {e}"),
            LdapError::BindFailed(rc) => write!(f, "directory bind rejected (rc {rc})"),
            LdapError::TooManyResults => f.write_str("directory returned too many entries"),
            LdapError::Directory { rc, text } => write!(f, "directory error rc {rc}: {text}"),
        }
    }
}

impl std::error::Error for LdapError {}

const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;

fn map_error(e: ldap3::LdapError) -> LdapError {
    use ldap3::LdapError as E;
    match e {
        E::LdapResult { result } if result.rc == RC_SIZE_LIMIT_EXCEEDED => {
            LdapError::TooManyResults
        }
        E::LdapResult { result } => LdapError::Directory {
            rc: result.rc,
            text: result.text,
        },
        E::UrlParsing { .. } | E::UnknownScheme(_) | E::DNSName { .. } | E::FilterParsing => {
            LdapError::Config(e.to_string())
        }
        other => LdapError::Unreachable(other.to_string()),
    }
}

/// The directory client. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct DirectoryClient {
    settings: Arc<LdapSettings>,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Arc<Mutex<Option<LdapConn>>>,
    /// One lookup at a time on `conn`; the others wait as tasks.
    calls: CallLimit,
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let mut reader = pem;
            for cert in rustls_pemfile::certs(&mut reader) {
                let cert = cert.map_err(|e| LdapError::Config(format!("CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| LdapError::Config(format!("CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(LdapError::Config("CA PEM holds no certificate".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// ldap3 panics on malformed entries from the server; a broken directory must not take the
/// Clientmodul down, so such an entry is dropped instead.
fn to_entry(re: ResultEntry) -> Option<DirectoryEntry> {
    let se = std::panic::catch_unwind(move || SearchEntry::construct(re)).ok()?;
    let text = se
        .attrs
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(String::into_bytes).collect::<Vec<_>>()));
    let all: Vec<(String, Vec<Vec<u8>>)> = text.chain(se.bin_attrs).collect();
    Some(DirectoryEntry::from_attributes(
        &se.dn,
        all.iter().map(|(k, v)| (k.as_str(), v.clone())),
    ))
}

impl DirectoryClient {
    /// Validates the settings; connects lazily on the first lookup.
    pub fn new(settings: LdapSettings) -> Result<Self, LdapError> {
        let tls = if settings.url.starts_with("ldaps://") {
            Some(tls_config(settings.ca_pem.as_deref())?)
        } else if settings.url.starts_with("ldap://") {
            None
        } else {
            return Err(LdapError::Config(
                "URL must start with ldap:// or ldaps://".into(),
            ));
        };
        Ok(DirectoryClient {
            settings: Arc::new(settings),
            tls,
            conn: Arc::new(Mutex::new(None)),
            calls: CallLimit::new(1),
        })
    }

    /// Looks up the entries for `address` (KOM-LE-A_2023), off the executor.
    pub async fn lookup(&self, address: &str) -> Result<Vec<DirectoryEntry>, LdapError> {
        let this = self.clone();
        let address = address.to_owned();
        self.calls.run(move || this.lookup_blocking(&address)).await
    }

    /// The same, blocking the calling thread.
    pub fn lookup_blocking(&self, address: &str) -> Result<Vec<DirectoryEntry>, LdapError> {
        let query = DirectoryQuery::for_address(&self.settings.base_dn, address);
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| LdapError::Unreachable("connection lock poisoned".into()))?;
        let started = std::time::Instant::now();
        let result = self.search_reconnecting_once(&mut guard, &query);
        crate::stats::dependencies().ldap_lookup(started.elapsed(), result.is_ok());
        result
    }

    /// One search; if the connection breaks during it, one more on a new connection.
    ///
    /// WHY: a kept connection may have been closed by the server meanwhile, and a fresh one
    /// can be dropped mid-search too (seen once in CI as ldap3's "premature end of search
    /// stream" on a first lookup against a loaded slapd); the lookup is idempotent, so the
    /// recipient gets its answer instead of a 451. A connect that fails is not tried again: a
    /// directory that is down costs one connect timeout, not two.
    fn search_reconnecting_once(
        &self,
        slot: &mut Option<LdapConn>,
        query: &DirectoryQuery,
    ) -> Result<Vec<DirectoryEntry>, LdapError> {
        let first = self.search(self.connected(slot)?, query);
        if !matches!(first, Err(LdapError::Unreachable(_))) {
            return first;
        }
        *slot = None;
        let second = self.search(self.connected(slot)?, query);
        if matches!(second, Err(LdapError::Unreachable(_))) {
            *slot = None;
        }
        second
    }

    /// The kept connection, or a new one.
    fn connected<'a>(&self, slot: &'a mut Option<LdapConn>) -> Result<&'a mut LdapConn, LdapError> {
        match slot {
            Some(conn) => Ok(conn),
            None => Ok(slot.insert(self.connect()?)),
        }
    }

    /// Drops the kept connection (the next lookup reconnects).
    pub fn disconnect(&self) {
        if let Ok(mut g) = self.conn.lock()
            && let Some(mut c) = g.take()
        {
            let _ = c.unbind();
        }
    }

    fn connect(&self) -> Result<LdapConn, LdapError> {
        let mut s = LdapConnSettings::new().set_conn_timeout(self.settings.timeout);
        if let Some(tls) = &self.tls {
            s = s.set_config(tls.clone());
        }
        let mut conn = LdapConn::with_settings(s, &self.settings.url).map_err(map_error)?;
        if let Some((dn, pw)) = &self.settings.bind {
            let r = conn
                .with_timeout(self.settings.timeout)
                .simple_bind(dn, pw)
                .map_err(map_error)?;
            if r.rc != 0 {
                return Err(LdapError::BindFailed(r.rc));
            }
        }
        Ok(conn)
    }

    fn search(
        &self,
        conn: &mut LdapConn,
        query: &DirectoryQuery,
    ) -> Result<Vec<DirectoryEntry>, LdapError> {
        let result = conn
            .with_timeout(self.settings.timeout)
            .with_search_options(SearchOptions::new().sizelimit(self.settings.size_limit))
            .search(
                &query.base_dn,
                Scope::Subtree,
                &query.filter,
                &query.attributes,
            );
        let result = match result {
            Ok(r) => r,
            Err(e) => return Err(map_error(e)),
        };
        match result.1.rc {
            0 => Ok(result.0.into_iter().filter_map(to_entry).collect()),
            RC_SIZE_LIMIT_EXCEEDED => Err(LdapError::TooManyResults),
            // noSuchObject: the base DN is missing, so nobody is in the directory.
            32 => Ok(Vec::new()),
            rc => Err(LdapError::Directory {
                rc,
                text: result.1.text,
            }),
        }
    }
}
