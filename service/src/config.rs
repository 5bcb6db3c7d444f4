//! The daemon's configuration file (TOML).
//!
//! The file is parsed into a generic TOML table and then read section by section, key by key,
//! instead of deriving `Deserialize` for the whole tree: serde's messages do not name the key for
//! a wrong type ("invalid type: string, expected u64"), and an operator staring at a daemon that
//! will not start needs exactly one line saying which key is wrong, e.g.
//! `config error: [konnektor] sds_url: missing`. Unknown keys and sections are rejected so a typo
//! never silently falls back to a default.
//!
//! Defaults follow Tab_Konf_Param (gemSpec_CM_KOMLE): Konnektor timeout 1 min, SMTP/POP3 server
//! and client timeouts 5 min, encryption-certificate TTL 12 h.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use komle_core::login_name::KonnektorId;
use komle_core::secret::Password;
use komle_core::upstream_allow::UpstreamAllowList;
use toml::{Table, Value};

use crate::duration::parse_duration;

/// Default for `[timeouts] konnektor` (Tab_Konf_Param: 1 min).
pub const DEFAULT_KONNEKTOR_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for the SMTP/POP3 timeouts (Tab_Konf_Param: 5 min).
pub const DEFAULT_MAIL_TIMEOUT: Duration = Duration::from_secs(300);
/// Default for `[timeouts] data`: the whole message after DATA (the module's own bound, not in
/// Tab_Konf_Param).
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default for `[cache] certificate_ttl` (Tab_Konf_Param: 12 h).
pub const DEFAULT_CERTIFICATE_TTL: Duration = Duration::from_secs(12 * 3600);
/// Default for `[cache] capacity`: addresses whose certificates are kept.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default for `[smtp] max_sessions`.
pub const DEFAULT_MAX_SESSIONS: usize = 100;
/// Default for `[directory] timeout`.
pub const DEFAULT_DIRECTORY_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub smtp: Option<SmtpSettings>,
    pub pop3: Option<Pop3Settings>,
    pub tls: TlsSettings,
    pub upstream: UpstreamSettings,
    /// `[keys]`: the key store; `None` when the section is absent.
    pub keys: Option<KeySettings>,
    pub konnektor: KonnektorSettings,
    /// `[konnektor.<id>]`: further Konnektoren a login name may choose by its KonnektorId
    /// (A_21457 SMTP, A_21517 POP3); a login without one uses `[konnektor]`.
    pub konnektoren: BTreeMap<KonnektorId, KonnektorSettings>,
    pub directory: DirectorySettings,
    pub cache: CacheSettings,
    pub timeouts: Timeouts,
    pub log: LogSettings,
    pub process: ProcessSettings,
    /// `[admin]`: the local HTTP endpoint with `/health` and `/metrics`; `None` when absent.
    pub admin: Option<AdminSettings>,
    /// `[doctor]`: what `komle-cm doctor` uses beyond the other sections.
    pub doctor: DoctorSettings,
    /// `[kas]`: KIM 1.5 large messages through the KOM-LE Attachment Service; `None`: mails
    /// over 15 MiB are refused by the SMTP size limit and received KAS messages become the
    /// 4008 error mail.
    pub kas: Option<KasSettings>,
}

/// `[admin]`: a local HTTP endpoint for the supervisor and the monitoring system. WHY local:
/// it answers without authentication, so it belongs on loopback or a management network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
}

/// `[doctor]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorSettings {
    /// The address `komle-cm doctor` looks up in the directory; without it the doctor searches
    /// for a placeholder, which proves bind and search but not the data.
    pub sample_address: Option<String>,
    /// `Mandant#ClientSystem#Workplace`: the Konnektor context in which the doctor asks for
    /// the SM-B and its PIN status (GetCards, GetPinStatus); without it those checks are skipped.
    pub context: Option<String>,
}

/// `[kas]`: the sender's KOM-LE Attachment Service (gemSpec_CM_KOMLE V1.16 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KasSettings {
    /// `https://<host>:<port>/attachments/v2.4`: the explicit override of DNS-SD (test
    /// environments without the TI's DNS). `None`: discovered (A_19361-01).
    pub base_url: Option<String>,
    /// The account manager's getLimits URL (A_22416), `…/AccountLimit/v1.1/limit`. With
    /// `base_url`: only this one (none: no getLimits); without: overrides the discovered one.
    pub limits_url: Option<String>,
    /// Where `_kas._tcp` / `_accmgr._tcp` are looked up (A_19361-01, RFC 6763); default
    /// [`crate::kas_discovery::DEFAULT_DISCOVERY_DOMAIN`] when `base_url` is absent. Set
    /// together with `base_url`, the override wins (logged once at start).
    pub discovery_domain: Option<String>,
    /// The name server for discovery (`host:port`); `None`: the system's resolv.conf.
    pub dns_server: Option<SocketAddr>,
    /// CM_KAS_TIMEOUT (Tab_Konf_Param): inactivity limit per KAS I/O step.
    pub timeout: Duration,
    /// CA (PEM) for the KAS's server certificate; none: the webpki roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS (A_19362, A_19368); without them the
    /// key store's `[upstream] client_identity` is used.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Largest client mail accepted (SMTP SIZE): gematik's reference KAS takes 500 MiB.
    pub max_mail_size: usize,
}

/// `[kas] max_mail_size` default: 500 MiB.
pub const DEFAULT_KAS_MAX_MAIL_SIZE: usize = 500 * 1024 * 1024;

/// `[smtp]`: the listener mail clients send through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub listen: SocketAddr,
    /// Reserved: only implicit TLS is implemented; `true` is rejected until STARTTLS exists.
    pub starttls: bool,
    /// Concurrent sessions; more are refused with `421 4.3.2`.
    pub max_sessions: usize,
    /// Name in the greeting and EHLO reply.
    pub hostname: String,
    /// Concurrent sessions from one client IP address; `None` (the default) is no limit of
    /// its own, because a practice behind one NAT router or a terminal server shows all its
    /// workstations under one address. Over the limit: `421 4.3.2` like over `max_sessions`.
    pub max_sessions_per_address: Option<usize>,
    /// `proxy_protocol`: every connection starts with a PROXY protocol v2 header from a load
    /// balancer (HAProxy `send-proxy-v2`), whose source address is logged and limited by.
    /// Default false; when true, connections without the header are closed, so only a
    /// balancer may reach the listener (README.md, "Scale out").
    pub proxy_protocol: bool,
}

/// `[pop3]`: the listener mail clients fetch through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Settings {
    pub listen: SocketAddr,
    pub max_sessions: usize,
    /// As [`SmtpSettings::max_sessions_per_address`]; over the limit `-ERR [SYS/TEMP]`.
    pub max_sessions_per_address: Option<usize>,
    /// A_23165's switch: deliver the decrypted original although the integrity check failed
    /// (`deliver_original_on_integrity_failure`). Default false: gemSpec_CM_KOMLE 1.16 replaces
    /// the content with the fixed security warning.
    pub deliver_original_on_integrity_failure: bool,
    /// As [`SmtpSettings::proxy_protocol`].
    pub proxy_protocol: bool,
}

/// `[tls]`: the certificate the listeners present to mail clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Where the certificate and key come from: `certificate` + `private_key` (PEM files) or
    /// `identity` (a `[keys]` store entry, KOM-LE-A_2065: keys in the password-protected store).
    pub identity: ListenerIdentity,
    /// `client_ca`: when set, mail clients must present a certificate issued by this CA (PEM)
    /// at the listeners; not set, they connect without one. KOM-LE-A_2181 asks for both modes.
    pub client_ca: Option<PathBuf>,
}

/// The listeners' certificate and key: PEM files, or an entry of the `[keys]` store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerIdentity {
    Files {
        certificate: PathBuf,
        private_key: PathBuf,
    },
    /// `identity = "<alias>"`; needs `[keys] store`.
    KeyStore { alias: String },
}

/// `[upstream]`: which MTAs and POP3 servers clients may name in their login name, and the
/// trust for them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamSettings {
    /// Extra CA (PEM) besides the webpki roots.
    pub ca: Option<PathBuf>,
    /// `smtp = ["host:port", "*.domain:port", ...]`: the MTAs a login may name. Not set means
    /// every SMTP login is refused (and [`Config::warnings`] says so).
    pub smtp: Option<UpstreamAllowList>,
    /// `pop3 = [...]`: the POP3 servers a login may name; not set refuses every POP3 login.
    pub pop3: Option<UpstreamAllowList>,
    /// `client_identity = "<alias>"`: the key store entry (the provider's C.CM.TLS-CS key and
    /// certificate) presented as TLS client certificate to the MTA and the POP3 server
    /// (KOM-LE-A_2074, A_2182-01). Needs `[keys] store`. Not set: no client certificate (and
    /// [`Config::warnings`] says so).
    pub client_identity: Option<String>,
    /// `verify_server_certificate` (default true): after the TLS handshake with the MTA or
    /// POP3 server, its certificate is checked by the Konnektor's VerifyCertificate
    /// (A_2075-01, A_22348) besides the configured CA. `false` only for test beds whose
    /// Konnektor does not know the mail servers' CA.
    pub verify_server_certificate: bool,
}

/// `[keys]`: the password-protected key store (KOM-LE-A_2065), filled by
/// `komle-cm keys import` from the provider's PKCS#12 (A_18783).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// The store file (PKCS#12, mode 0600).
    pub store: PathBuf,
    /// A file holding the store password (first line), readable by the daemon's user only,
    /// e.g. a systemd credential (`LoadCredential=`). Not set: the password comes from the
    /// environment variable `KOMLE_KEYSTORE_PASSWORD`. Never a config value: config files are
    /// copied, mailed and checked in.
    pub password_file: Option<PathBuf>,
}

impl UpstreamSettings {
    /// The MTAs clients may name (empty when not configured: nothing is allowed).
    pub fn smtp_allow(&self) -> UpstreamAllowList {
        self.smtp.clone().unwrap_or_default()
    }

    /// The POP3 servers clients may name (empty when not configured: nothing is allowed).
    pub fn pop3_allow(&self) -> UpstreamAllowList {
        self.pop3.clone().unwrap_or_default()
    }
}

/// How the Clientmodul authenticates at the Konnektor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KonnektorAuth {
    /// Mutual TLS (the default the Konnektor expects).
    ClientCertificate { certificate: PathBuf, key: PathBuf },
    /// HTTP Basic over TLS.
    Basic { user: String, password: Password },
    /// Neither (a Konnektor configured without client authentication).
    None,
}

/// `[konnektor]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KonnektorSettings {
    /// URL of `connector.sds` (service discovery).
    pub sds_url: String,
    /// CA (PEM) the Konnektor's TLS certificate is checked against.
    pub ca: Option<PathBuf>,
    pub auth: KonnektorAuth,
    /// Also used for NTP time sync (A_2230).
    pub timeout: Duration,
    /// Calls to this Konnektor in flight at once (`max_parallel_calls`, default
    /// [`DEFAULT_KONNEKTOR_PARALLEL_CALLS`]); more wait their turn (`crate::call_limit`).
    pub max_parallel_calls: usize,
}

/// Default for `[konnektor] max_parallel_calls`: enough to keep a Konnektor busy while one
/// call's answer travels, few enough that 100 sending sessions do not hold 100 threads (and
/// 100 TLS connections) at the Konnektor (BENCHMARKS.md, issue 15).
pub const DEFAULT_KONNEKTOR_PARALLEL_CALLS: usize = 8;

/// `[directory]`: the VZD over LDAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySettings {
    pub url: String,
    pub base: String,
    pub ca: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Password>,
    pub timeout: Duration,
}

/// `[cache]`: recipients' encryption certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub certificate_ttl: Duration,
    pub capacity: usize,
}

/// `[timeouts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// A_2016: how long the MTA may take to answer.
    pub mta_response: Duration,
    /// A_2017: idle MTA connection.
    pub mta_idle: Duration,
    /// Silent client.
    pub client_idle: Duration,
    /// The whole message after the 354 (`SmtpConfig::data_timeout`).
    pub data: Duration,
    /// A client's TLS handshake at the listeners (`None`: 30 s).
    pub handshake: Option<Duration>,
    /// How long running sessions may finish after SIGTERM/SIGINT (`None`: 30 s).
    pub shutdown_grace: Option<Duration>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub level: log::LevelFilter,
    /// How each line on stderr is written.
    pub format: LogFormat,
}

/// `[log] format`: one line per record on stderr in every format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00.000Z INFO  target] message` (env_logger's layout).
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `msg` (log shippers parse it).
    Json,
    /// The message with systemd's `<N>` priority prefix and no timestamp: journald adds its
    /// own and files the line at that priority.
    Journald,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            "journald" => Ok(LogFormat::Journald),
            other => Err(format!("unknown format {other:?} (text, json, journald)")),
        }
    }
}

/// `[process]`: how the daemon protects its memory (see `process_hardening`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// Keep core dumps possible (debugging only): by default `komle-cm` sets RLIMIT_CORE to 0
    /// and makes itself non-dumpable, so passwords and mail never reach a core file (A_2005).
    pub allow_core_dumps: bool,
}

/// A configuration problem: one line, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `[section] key`, `[section]`, or the file path for I/O and syntax errors.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: path.display().to_string(),
            problem: e.to_string(),
        })?;
        Self::parse(&text).map_err(|mut e| {
            if e.key.is_empty() {
                e.key = path.display().to_string();
            }
            e
        })
    }

    /// Parses configuration text. Relative paths stay relative (to the working directory).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let table: Table = toml::from_str(text).map_err(|e| ConfigError {
            key: String::new(),
            // toml's message spans several lines with a snippet; keep the first line and the
            // position so the error stays one line.
            problem: one_line_toml_error(&e, text),
        })?;
        const SECTIONS: &[&str] = &[
            "smtp",
            "pop3",
            "tls",
            "upstream",
            "keys",
            "konnektor",
            "directory",
            "cache",
            "timeouts",
            "log",
            "process",
            "admin",
            "doctor",
            "kas",
        ];
        for (name, value) in &table {
            if !SECTIONS.contains(&name.as_str()) {
                return Err(ConfigError {
                    key: format!("[{name}]"),
                    problem: format!("unknown section (known: {})", SECTIONS.join(", ")),
                });
            }
            if !value.is_table() {
                return Err(ConfigError {
                    key: format!("[{name}]"),
                    problem: "must be a table".into(),
                });
            }
        }

        let smtp = match Section::optional(&table, "smtp") {
            Some(mut s) => {
                let listen = s.required_addr("listen")?;
                let starttls = s.bool("starttls")?.unwrap_or(false);
                if starttls {
                    return Err(s.error(
                        "starttls",
                        "STARTTLS is not supported; listeners use implicit TLS (set false)",
                    ));
                }
                let max_sessions = s.count("max_sessions")?.unwrap_or(DEFAULT_MAX_SESSIONS);
                let hostname = s
                    .string("hostname")?
                    .unwrap_or_else(|| "KOM-LE-Clientmodul".to_owned());
                let max_sessions_per_address = s.per_address_limit(max_sessions)?;
                let proxy_protocol = s.bool("proxy_protocol")?.unwrap_or(false);
                s.finish()?;
                Some(SmtpSettings {
                    listen,
                    starttls,
                    max_sessions,
                    hostname,
                    max_sessions_per_address,
                    proxy_protocol,
                })
            }
            None => None,
        };
        let pop3 = match Section::optional(&table, "pop3") {
            Some(mut s) => {
                let listen = s.required_addr("listen")?;
                let max_sessions = s.count("max_sessions")?.unwrap_or(DEFAULT_MAX_SESSIONS);
                let max_sessions_per_address = s.per_address_limit(max_sessions)?;
                let deliver_original_on_integrity_failure = s
                    .bool("deliver_original_on_integrity_failure")?
                    .unwrap_or(false);
                let proxy_protocol = s.bool("proxy_protocol")?.unwrap_or(false);
                s.finish()?;
                Some(Pop3Settings {
                    listen,
                    max_sessions,
                    max_sessions_per_address,
                    deliver_original_on_integrity_failure,
                    proxy_protocol,
                })
            }
            None => None,
        };
        if smtp.is_none() && pop3.is_none() {
            return Err(ConfigError {
                key: "[smtp] listen".into(),
                problem: "missing (configure [smtp] and/or [pop3])".into(),
            });
        }

        let mut s = Section::required(&table, "tls");
        let identity = match (s.string("identity")?, s.path("certificate")?) {
            (Some(_), Some(_)) => {
                return Err(s.error(
                    "identity",
                    "either identity (key store) or certificate/private_key (files), not both",
                ));
            }
            (Some(alias), None) => {
                if s.path("private_key")?.is_some() {
                    return Err(s.error(
                        "identity",
                        "either identity (key store) or certificate/private_key (files), not both",
                    ));
                }
                ListenerIdentity::KeyStore { alias }
            }
            (None, Some(certificate)) => ListenerIdentity::Files {
                certificate,
                private_key: s.required_path("private_key")?,
            },
            (None, None) => {
                return Err(s.error(
                    "certificate",
                    "missing (or identity = \"<alias>\" for a key store entry)",
                ));
            }
        };
        let tls = TlsSettings {
            identity,
            client_ca: s.path("client_ca")?,
        };
        s.finish()?;

        let mut s = Section::required(&table, "upstream");
        let upstream = UpstreamSettings {
            ca: s.path("ca")?,
            smtp: s.allow_list("smtp")?,
            pop3: s.allow_list("pop3")?,
            client_identity: s.string("client_identity")?,
            verify_server_certificate: s.bool("verify_server_certificate")?.unwrap_or(true),
        };
        s.finish()?;

        let keys = match Section::optional(&table, "keys") {
            Some(mut s) => {
                let store = s.required_path("store")?;
                let password_file = s.path("password_file")?;
                s.finish()?;
                Some(KeySettings {
                    store,
                    password_file,
                })
            }
            None => None,
        };
        if matches!(tls.identity, ListenerIdentity::KeyStore { .. }) && keys.is_none() {
            return Err(ConfigError {
                key: "[tls] identity".into(),
                problem: "needs the key store: set [keys] store".into(),
            });
        }
        if upstream.client_identity.is_some() && keys.is_none() {
            return Err(ConfigError {
                key: "[upstream] client_identity".into(),
                problem: "needs the key store: set [keys] store".into(),
            });
        }

        let mut t = Section::required(&table, "timeouts");
        let timeouts = Timeouts {
            mta_response: t.duration("mta_response")?.unwrap_or(DEFAULT_MAIL_TIMEOUT),
            mta_idle: t.duration("mta_idle")?.unwrap_or(DEFAULT_MAIL_TIMEOUT),
            client_idle: t.duration("client_idle")?.unwrap_or(DEFAULT_MAIL_TIMEOUT),
            data: t.duration("data")?.unwrap_or(DEFAULT_DATA_TIMEOUT),
            handshake: t.duration("handshake")?,
            shutdown_grace: t.duration("shutdown_grace")?,
        };
        let konnektor_timeout_in_timeouts = t.duration("konnektor")?;
        t.finish()?;

        let mut s = Section::required(&table, "konnektor");
        let (konnektor, timeout_here) = read_konnektor(&mut s)?;
        let timeout = match (timeout_here, konnektor_timeout_in_timeouts) {
            (Some(_), Some(_)) => {
                return Err(s.error("timeout", "also set as [timeouts] konnektor; give one"));
            }
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => DEFAULT_KONNEKTOR_TIMEOUT,
        };
        let konnektor = KonnektorSettings {
            timeout,
            ..konnektor
        };
        // A_21457/A_21517: `[konnektor.<id>]` tables beside the default's keys. Each names its
        // own sds_url and authentication; its timeout defaults to the default Konnektor's.
        let mut konnektoren = BTreeMap::new();
        for (key, value) in s.tables() {
            let id = KonnektorId::new(key).map_err(|_| ConfigError {
                key: format!("[konnektor.{key}]"),
                problem: "not a usable KonnektorId (visible ASCII without '#', at most 64 characters, not '*')".into(),
            })?;
            let mut sub = Section::nested(value, format!("konnektor.{key}"));
            let (settings, own_timeout) = read_konnektor(&mut sub)?;
            sub.finish()?;
            konnektoren.insert(
                id,
                KonnektorSettings {
                    timeout: own_timeout.unwrap_or(timeout),
                    ..settings
                },
            );
        }
        s.finish_with_tables()?;

        let mut s = Section::required(&table, "directory");
        let url = s.required_string("url")?;
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err(s.error("url", "must be an ldap:// or ldaps:// URL"));
        }
        let directory = DirectorySettings {
            url,
            base: s.required_string("base")?,
            ca: s.path("ca")?,
            bind_dn: s.string("bind_dn")?,
            bind_password: s.string("bind_password")?.map(Password::new),
            timeout: s.duration("timeout")?.unwrap_or(DEFAULT_DIRECTORY_TIMEOUT),
        };
        if directory.bind_dn.is_some() != directory.bind_password.is_some() {
            let which = if directory.bind_dn.is_some() {
                "bind_password"
            } else {
                "bind_dn"
            };
            return Err(s.error(which, "missing (bind_dn and bind_password go together)"));
        }
        s.finish()?;

        let mut s = Section::required(&table, "cache");
        let cache = CacheSettings {
            certificate_ttl: s
                .duration("certificate_ttl")?
                .unwrap_or(DEFAULT_CERTIFICATE_TTL),
            capacity: s.count("capacity")?.unwrap_or(DEFAULT_CACHE_CAPACITY),
        };
        s.finish()?;

        let mut s = Section::required(&table, "log");
        let level = match s.string("level")? {
            None => log::LevelFilter::Info,
            Some(l) => l.parse().map_err(|_| {
                s.error(
                    "level",
                    &format!("unknown level {l:?} (off, error, warn, info, debug, trace)"),
                )
            })?,
        };
        let format = match s.string("format")? {
            None => LogFormat::Text,
            Some(f) => f.parse().map_err(|e: String| s.error("format", &e))?,
        };
        s.finish()?;
        let log = LogSettings { level, format };

        let mut s = Section::required(&table, "process");
        let process = ProcessSettings {
            allow_core_dumps: s.bool("allow_core_dumps")?.unwrap_or(false),
        };
        s.finish()?;

        let admin = match Section::optional(&table, "admin") {
            Some(mut s) => {
                let listen = s.required_addr("listen")?;
                s.finish()?;
                Some(AdminSettings { listen })
            }
            None => None,
        };
        let mut s = Section::required(&table, "doctor");
        let doctor = DoctorSettings {
            sample_address: s.string("sample_address")?,
            context: s.string("context")?,
        };
        if let Some(c) = &doctor.context {
            let parts: Vec<&str> = c.split('#').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
                return Err(s.error(
                    "context",
                    &format!("{c:?} is not Mandant#ClientSystem#Workplace"),
                ));
            }
        }
        s.finish()?;
        distinct_listen_addresses(smtp.as_ref(), pop3.as_ref(), admin.as_ref())?;
        let kas = match Section::optional(&table, "kas") {
            Some(mut s) => {
                let base_url = s.string("base_url")?;
                if base_url
                    .as_deref()
                    .is_some_and(|u| !u.starts_with("https://"))
                {
                    return Err(s.error("base_url", "must be an https:// URL (A_19362)"));
                }
                let discovery_domain = s.string("discovery_domain")?;
                if discovery_domain.as_deref().is_some_and(|d| {
                    let d = d.trim_end_matches('.');
                    d.is_empty()
                        || !d.split('.').all(|l| {
                            !l.is_empty()
                                && l.len() <= 63
                                && l.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        })
                }) {
                    return Err(s.error("discovery_domain", "is not a DNS domain name"));
                }
                let dns_server = match s.string("dns_server")? {
                    Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                        s.error("dns_server", "must be IP:port, e.g. \"127.0.0.1:53\"")
                    })?),
                    None => None,
                };
                let limits_url = s.string("limits_url")?;
                if limits_url
                    .as_deref()
                    .is_some_and(|u| !u.starts_with("https://"))
                {
                    return Err(s.error("limits_url", "must be an https:// URL"));
                }
                let timeout = s
                    .duration("timeout")?
                    .unwrap_or(crate::kas_client::DEFAULT_KAS_TIMEOUT);
                let ca = s.path("ca")?;
                let client_certificate = s.path("client_certificate")?;
                let client_key = s.path("client_key")?;
                if client_certificate.is_some() != client_key.is_some() {
                    return Err(s.error(
                        "client_key",
                        "client_certificate and client_key go together",
                    ));
                }
                if client_certificate.is_none() && upstream.client_identity.is_none() {
                    return Err(s.error(
                        "client_certificate",
                        "missing: the KAS requires mutual TLS; set client_certificate/client_key or [upstream] client_identity",
                    ));
                }
                let max_mail_size = s
                    .count("max_mail_size")?
                    .unwrap_or(DEFAULT_KAS_MAX_MAIL_SIZE);
                s.finish()?;
                Some(KasSettings {
                    base_url,
                    limits_url,
                    discovery_domain,
                    dns_server,
                    timeout,
                    ca,
                    client_certificate,
                    client_key,
                    max_mail_size,
                })
            }
            None => None,
        };

        Ok(Config {
            smtp,
            pop3,
            tls,
            upstream,
            keys,
            konnektor,
            konnektoren,
            directory,
            cache,
            timeouts,
            log,
            process,
            admin,
            doctor,
            kas,
        })
    }
}

/// Two listeners on one address:port cannot both bind; the second would fail at start with a
/// bare "address in use". Said here, naming both keys, so `--check-config` catches it.
fn distinct_listen_addresses(
    smtp: Option<&SmtpSettings>,
    pop3: Option<&Pop3Settings>,
    admin: Option<&AdminSettings>,
) -> Result<(), ConfigError> {
    let listeners = [
        ("[smtp] listen", smtp.map(|s| s.listen)),
        ("[pop3] listen", pop3.map(|p| p.listen)),
        ("[admin] listen", admin.map(|a| a.listen)),
    ];
    for (i, (key, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr else { continue };
        if addr.port() == 0 {
            continue; // an OS-chosen port never collides
        }
        for (other, other_addr) in &listeners[..i] {
            if *other_addr == Some(*addr) {
                return Err(ConfigError {
                    key: (*key).to_owned(),
                    problem: format!("{addr} is also {other}; each listener needs its own port"),
                });
            }
        }
    }
    Ok(())
}

impl Config {
    /// Settings that are valid but probably not what the operator wants, one line each naming
    /// the key to set: logged at start and printed by `--check-config`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let lists = [
            (
                self.smtp.is_some(),
                "smtp",
                "SMTP",
                &self.upstream.smtp,
                "465",
            ),
            (
                self.pop3.is_some(),
                "pop3",
                "POP3",
                &self.upstream.pop3,
                "995",
            ),
        ];
        for (listening, key, protocol, list, port) in lists {
            if !listening {
                continue;
            }
            match list {
                None => out.push(format!(
                    "[upstream] {key}: not set, every {protocol} login is refused; list the \
                     servers clients may name, e.g. {key} = [\"*.kim.example:{port}\"]"
                )),
                Some(l) if l.is_empty() => out.push(format!(
                    "[upstream] {key}: empty, every {protocol} login is refused"
                )),
                Some(_) => {}
            }
        }
        if self.upstream.client_identity.is_none() {
            out.push(
                "[upstream] client_identity: not set, the MTA and POP3 server get no client \
                 certificate (KOM-LE-A_2074 requires mutual TLS); import the provider's PKCS#12 \
                 with `komle-cm keys import` and name its alias here"
                    .to_owned(),
            );
        }
        out
    }
}

/// The keys of one Konnektor table (`[konnektor]` or `[konnektor.<id>]`); the timeout is
/// returned apart because the default Konnektor's may also come from `[timeouts]`.
fn read_konnektor(
    s: &mut Section<'_>,
) -> Result<(KonnektorSettings, Option<Duration>), ConfigError> {
    let sds_url = s.required_string("sds_url")?;
    if !sds_url.starts_with("https://") {
        return Err(s.error("sds_url", "must be an https:// URL (A_2011: TLS always)"));
    }
    let ca = s.path("ca")?;
    let client_certificate = s.path("client_certificate")?;
    let client_key = s.path("client_key")?;
    let user = s.string("user")?;
    let password = s.string("password")?.map(Password::new);
    let timeout = s.duration("timeout")?;
    let max_parallel_calls = s
        .count("max_parallel_calls")?
        .unwrap_or(DEFAULT_KONNEKTOR_PARALLEL_CALLS);
    let auth = match (client_certificate, client_key, user, password) {
        (Some(_), None, _, _) => return Err(s.error("client_key", "missing")),
        (None, Some(_), _, _) => return Err(s.error("client_certificate", "missing")),
        (Some(_), Some(_), Some(_), _) | (Some(_), Some(_), _, Some(_)) => {
            return Err(s.error(
                "user",
                "give either client_certificate/client_key or user/password",
            ));
        }
        (Some(certificate), Some(key), None, None) => {
            KonnektorAuth::ClientCertificate { certificate, key }
        }
        (None, None, Some(_), None) => return Err(s.error("password", "missing")),
        (None, None, None, Some(_)) => return Err(s.error("user", "missing")),
        (None, None, Some(user), Some(password)) => KonnektorAuth::Basic { user, password },
        (None, None, None, None) => KonnektorAuth::None,
    };
    let settings = KonnektorSettings {
        sds_url,
        ca,
        auth,
        timeout: DEFAULT_KONNEKTOR_TIMEOUT,
        max_parallel_calls,
    };
    Ok((settings, timeout))
}

fn one_line_toml_error(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())]
                .bytes()
                .filter(|&b| b == b'\n')
                .count()
                + 1;
            format!("TOML syntax, line {line}: {msg}")
        }
        None => format!("TOML syntax: {msg}"),
    }
}

/// One `[section]` being read; remembers which keys were consumed so leftovers (typos) can be
/// rejected by [`Section::finish`]. A missing optional section reads as empty.
struct Section<'a> {
    name: String,
    table: Option<&'a Table>,
    used: Vec<&'static str>,
}

static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();

impl<'a> Section<'a> {
    fn optional(root: &'a Table, name: &'static str) -> Option<Self> {
        root.get(name).and_then(Value::as_table).map(|t| Section {
            name: name.to_owned(),
            table: Some(t),
            used: Vec::new(),
        })
    }

    /// A section whose keys may all be required or defaulted; absent means empty.
    fn required(root: &'a Table, name: &'static str) -> Self {
        Section {
            name: name.to_owned(),
            table: root.get(name).and_then(Value::as_table),
            used: Vec::new(),
        }
    }

    /// A table inside a section (`[konnektor.<id>]`), named as the operator writes it.
    fn nested(table: &'a Table, name: String) -> Self {
        Section {
            name,
            table: Some(table),
            used: Vec::new(),
        }
    }

    /// The keys of this section whose values are tables, in file order.
    fn tables(&self) -> Vec<(&'a str, &'a Table)> {
        self.table
            .into_iter()
            .flat_map(|t| t.iter())
            .filter_map(|(k, v)| v.as_table().map(|t| (k.as_str(), t)))
            .collect()
    }

    fn error(&self, key: &str, problem: &str) -> ConfigError {
        ConfigError {
            key: format!("[{}] {key}", self.name),
            problem: problem.to_owned(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.table
            .unwrap_or_else(|| EMPTY.get_or_init(Table::new))
            .get(key)
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(self.error(key, "empty")),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.error(
                key,
                &format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn required_string(&mut self, key: &'static str) -> Result<String, ConfigError> {
        self.string(key)?.ok_or_else(|| self.error(key, "missing"))
    }

    fn path(&mut self, key: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    fn required_path(&mut self, key: &'static str) -> Result<PathBuf, ConfigError> {
        Ok(PathBuf::from(self.required_string(key)?))
    }

    fn required_addr(&mut self, key: &'static str) -> Result<SocketAddr, ConfigError> {
        let s = self.required_string(key)?;
        s.parse().map_err(|_| {
            self.error(
                key,
                &format!("{s:?} is not an IP:port address (e.g. \"127.0.0.1:465\")"),
            )
        })
    }

    fn bool(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.error(
                key,
                &format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    /// `max_sessions_per_address`: optional, at least 1, at most `max_sessions`.
    fn per_address_limit(&mut self, max_sessions: usize) -> Result<Option<usize>, ConfigError> {
        const KEY: &str = "max_sessions_per_address";
        match self.count(KEY)? {
            Some(n) if n > max_sessions => Err(self.error(
                KEY,
                &format!("must not exceed max_sessions ({max_sessions})"),
            )),
            other => Ok(other),
        }
    }

    /// An array of allow-list patterns (see [`komle_core::upstream_allow`]).
    fn allow_list(&mut self, key: &'static str) -> Result<Option<UpstreamAllowList>, ConfigError> {
        let items = match self.get(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(self.error(
                    key,
                    &format!(
                        "expected an array of \"host:port\" strings, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) => entries.push(s.as_str()),
                other => {
                    return Err(self.error(
                        key,
                        &format!("expected \"host:port\" strings, found {}", other.type_str()),
                    ));
                }
            }
        }
        UpstreamAllowList::parse(entries)
            .map(Some)
            .map_err(|(entry, e)| self.error(key, &format!("{entry:?}: {e}")))
    }

    /// A positive integer.
    fn count(&mut self, key: &'static str) -> Result<Option<usize>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Integer(n)) if *n > 0 => usize::try_from(*n)
                .map(Some)
                .map_err(|_| self.error(key, "too large")),
            Some(Value::Integer(_)) => Err(self.error(key, "must be at least 1")),
            Some(other) => Err(self.error(
                key,
                &format!("expected a positive integer, found {}", other.type_str()),
            )),
        }
    }

    fn duration(&mut self, key: &'static str) -> Result<Option<Duration>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) if d.is_zero() => Err(self.error(key, "must be longer than zero")),
                Ok(d) => Ok(Some(d)),
                Err(e) => Err(self.error(key, &e.to_string())),
            },
            Some(other) => Err(self.error(
                key,
                &format!(
                    "expected a duration string like \"30s\" or \"5m\", found {}",
                    other.type_str()
                ),
            )),
        }
    }

    /// Rejects keys nobody asked for: a typo must not fall back to a default silently.
    fn finish(self) -> Result<(), ConfigError> {
        self.finish_checking(false)
    }

    /// As [`Section::finish`], but tables inside the section were read by the caller.
    fn finish_with_tables(self) -> Result<(), ConfigError> {
        self.finish_checking(true)
    }

    fn finish_checking(self, tables_read: bool) -> Result<(), ConfigError> {
        if let Some(table) = self.table {
            for (key, value) in table {
                if tables_read && value.is_table() {
                    continue;
                }
                if !self.used.contains(&key.as_str()) {
                    let mut known = self.used.clone();
                    known.dedup();
                    return Err(
                        self.error(key, &format!("unknown key (known: {})", known.join(", ")))
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[smtp]
listen = "127.0.0.1:4650"
[tls]
certificate = "cert.pem"
private_key = "key.pem"
[konnektor]
sds_url = "https://konnektor.example/connector.sds"
client_certificate = "client.pem"
client_key = "client.key"
[directory]
url = "ldaps://vzd.example"
base = "dc=data,dc=vzd"
"#;

    #[test]
    fn admin_log_format_and_doctor_keys_are_read() {
        let c = Config::parse(&format!(
            "{MINIMAL}[admin]\nlisten = \"127.0.0.1:9465\"\n[log]\nformat = \"json\"\n[doctor]\nsample_address = \"a@b.kim.telematik\"\ncontext = \"m#c#w\"\n"
        ))
        .unwrap();
        assert_eq!(c.admin.unwrap().listen, "127.0.0.1:9465".parse().unwrap());
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(
            c.doctor.sample_address.as_deref(),
            Some("a@b.kim.telematik")
        );
        assert_eq!(
            err(&format!("{MINIMAL}[doctor]\ncontext = \"m#c\"\n")),
            "config error: [doctor] context: \"m#c\" is not Mandant#ClientSystem#Workplace"
        );
        let d = Config::parse(MINIMAL).unwrap();
        assert_eq!((d.admin, d.log.format), (None, LogFormat::Text));
        assert!(
            err(&format!("{MINIMAL}[log]\nformat = \"xml\"\n"))
                .starts_with("config error: [log] format: unknown format \"xml\"")
        );
        assert_eq!(
            err(&format!("{MINIMAL}[admin]\n")),
            "config error: [admin] listen: missing"
        );
    }

    #[test]
    fn smtp_and_pop3_on_the_same_port_is_a_config_error() {
        let e = err(&format!("{MINIMAL}[pop3]\nlisten = \"127.0.0.1:4650\"\n"));
        assert_eq!(
            e,
            "config error: [pop3] listen: 127.0.0.1:4650 is also [smtp] listen; each listener needs its own port"
        );
        let e = err(&format!("{MINIMAL}[admin]\nlisten = \"127.0.0.1:4650\"\n"));
        assert!(e.starts_with("config error: [admin] listen:"), "{e}");
        // Port 0 (tests): the OS picks distinct ports.
        let zero = MINIMAL.replace("4650", "0");
        assert!(Config::parse(&format!("{zero}[pop3]\nlisten = \"127.0.0.1:0\"\n")).is_ok());
    }

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_19362_kas_section_needs_https_and_a_client_identity() {
        let c = Config::parse(&format!(
            "{MINIMAL}[kas]\nbase_url = \"https://kas.example:443/attachments/v2.4\"\nlimits_url = \"https://am.example/AccountLimit/v1.1/limit\"\ntimeout = \"10s\"\nclient_certificate = \"kas.pem\"\nclient_key = \"kas.key\"\n"
        ))
        .expect("parses");
        let kas = c.kas.expect("[kas]");
        assert_eq!(kas.timeout, Duration::from_secs(10));
        assert_eq!(kas.max_mail_size, DEFAULT_KAS_MAX_MAIL_SIZE);
        assert!(
            crate::session::smtp_session_config(&Config::parse(&format!(
                "{MINIMAL}[kas]\nbase_url = \"https://k/a\"\nclient_certificate = \"a\"\nclient_key = \"b\"\n"
            ))
            .expect("parses"))
            .max_message_size
                >= DEFAULT_KAS_MAX_MAIL_SIZE,
            "SMTP SIZE follows the KAS limit"
        );
        assert_eq!(
            err(&format!("{MINIMAL}[kas]\nbase_url = \"http://k/a\"\n")),
            "config error: [kas] base_url: must be an https:// URL (A_19362)"
        );
        assert!(
            err(&format!("{MINIMAL}[kas]\nbase_url = \"https://k/a\"\n"))
                .starts_with("config error: [kas] client_certificate: missing")
        );
        let default = Config::parse(MINIMAL).expect("parses");
        assert!(default.kas.is_none());
    }

    #[test]
    fn a_19361_kas_discovery_settings() {
        let kas = |extra: &str| {
            Config::parse(&format!(
                "{MINIMAL}[kas]\nclient_certificate = \"a\"\nclient_key = \"b\"\n{extra}"
            ))
            .map(|c| c.kas.expect("[kas]"))
        };
        // Neither base_url nor discovery_domain: DNS-SD with the default domain later.
        let k = kas("").expect("parses");
        assert_eq!(
            (k.base_url, k.discovery_domain, k.dns_server),
            (None, None, None)
        );
        let k = kas("discovery_domain = \"kim.test\"\ndns_server = \"127.0.0.1:5353\"\n")
            .expect("parses");
        assert_eq!(k.discovery_domain.as_deref(), Some("kim.test"));
        assert_eq!(k.dns_server, Some("127.0.0.1:5353".parse().unwrap()));
        let both =
            kas("base_url = \"https://k/a\"\ndiscovery_domain = \"kim.test\"\n").expect("parses");
        assert!(both.base_url.is_some() && both.discovery_domain.is_some());
        assert_eq!(
            kas("dns_server = \"localhost\"\n").unwrap_err().to_string(),
            "config error: [kas] dns_server: must be IP:port, e.g. \"127.0.0.1:53\""
        );
        assert!(kas("discovery_domain = \"\"\n").is_err());
        for bad in ["\"a..b\"", "\"a b\"", "\"x/y\""] {
            assert_eq!(
                kas(&format!("discovery_domain = {bad}\n"))
                    .unwrap_err()
                    .to_string(),
                "config error: [kas] discovery_domain: is not a DNS domain name",
                "{bad}"
            );
        }
    }

    /// The warnings other than the one about `[upstream] client_identity`.
    fn without_client_identity(w: Vec<String>) -> Vec<String> {
        w.into_iter()
            .filter(|w| !w.starts_with("[upstream] client_identity:"))
            .collect()
    }

    #[test]
    fn a_2065_keys_section_names_the_store_and_password_file() {
        let text = format!(
            "{MINIMAL}[upstream]\nclient_identity = \"kim\"\n[keys]\nstore = \"/etc/komle-cm/keys.p12\"\npassword_file = \"/run/credentials/komle-cm.service/keystore\"\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.upstream.client_identity.as_deref(), Some("kim"));
        let keys = c.keys.unwrap();
        assert_eq!(keys.store, PathBuf::from("/etc/komle-cm/keys.p12"));
        assert_eq!(
            keys.password_file,
            Some(PathBuf::from("/run/credentials/komle-cm.service/keystore"))
        );
        // No store password in the file: an unknown key like any other.
        let e = err(&format!(
            "{MINIMAL}[keys]\nstore = \"k.p12\"\npassword = \"x\"\n"
        ));
        assert!(
            e.starts_with("config error: [keys] password: unknown key"),
            "{e}"
        );
        assert_eq!(
            err(&format!("{MINIMAL}[keys]\npassword_file = \"pw\"\n")),
            "config error: [keys] store: missing"
        );
        assert!(Config::parse(MINIMAL).unwrap().keys.is_none());
    }

    #[test]
    fn a_2065_listener_identity_from_the_key_store_or_files_never_both() {
        let with_tls = |tls: &str, rest: &str| {
            let mut text = MINIMAL.to_owned();
            let start = text.find("[tls]").expect("MINIMAL has [tls]");
            let end = text[start + 5..]
                .find("\n[")
                .map_or(text.len(), |i| start + 5 + i + 1);
            text.replace_range(start..end, &format!("[tls]\n{tls}\n"));
            text.push_str(rest);
            text
        };
        let keys = "[keys]\nstore = \"/etc/komle-cm/keys.p12\"\n";
        let c = Config::parse(&with_tls("identity = \"listener\"", keys)).expect("parses");
        assert_eq!(
            c.tls.identity,
            ListenerIdentity::KeyStore {
                alias: "listener".into()
            }
        );
        assert_eq!(
            err(&with_tls("identity = \"listener\"", "")),
            "config error: [tls] identity: needs the key store: set [keys] store"
        );
        assert!(
            err(&with_tls(
                "identity = \"listener\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"",
                keys
            ))
            .contains("not both")
        );
        assert!(
            err(&with_tls(
                "identity = \"listener\"\nprivate_key = \"k.pem\"",
                keys
            ))
            .contains("not both")
        );
        assert!(
            err(&with_tls("client_ca = \"ca.pem\"", keys)).contains("[tls] certificate: missing")
        );
        assert!(matches!(
            Config::parse(MINIMAL).unwrap().tls.identity,
            ListenerIdentity::Files { .. }
        ));
    }

    #[test]
    fn a_2182_client_identity_needs_the_key_store_and_its_absence_warns() {
        assert_eq!(
            err(&format!("{MINIMAL}[upstream]\nclient_identity = \"kim\"\n")),
            "config error: [upstream] client_identity: needs the key store: set [keys] store"
        );
        assert_eq!(
            err(&format!("{MINIMAL}[upstream]\nclient_identity = \"\"\n")),
            "config error: [upstream] client_identity: empty"
        );
        let w = Config::parse(MINIMAL).unwrap().warnings();
        assert!(
            w.iter().any(|w| w.starts_with(
                "[upstream] client_identity: not set, the MTA and POP3 server get no client certificate"
            )),
            "{w:?}"
        );
    }

    #[test]
    fn minimal_config_takes_tab_konf_param_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.konnektor.timeout, Duration::from_secs(60));
        assert_eq!(c.timeouts.mta_response, Duration::from_secs(300));
        assert_eq!(c.timeouts.mta_idle, Duration::from_secs(300));
        assert_eq!(c.timeouts.client_idle, Duration::from_secs(300));
        assert_eq!(c.timeouts.data, Duration::from_secs(1800));
        assert_eq!(c.cache.certificate_ttl, Duration::from_secs(43_200));
        assert_eq!(c.cache.capacity, DEFAULT_CACHE_CAPACITY);
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.listen, "127.0.0.1:4650".parse().unwrap());
        assert!(!smtp.starttls);
        assert_eq!(smtp.max_sessions, DEFAULT_MAX_SESSIONS);
        assert!(c.pop3.is_none());
        assert_eq!(
            c.konnektor.auth,
            KonnektorAuth::ClientCertificate {
                certificate: "client.pem".into(),
                key: "client.key".into()
            }
        );
        assert_eq!(c.log.level, log::LevelFilter::Info);
        assert!(
            !c.process.allow_core_dumps,
            "A_2005: no core dumps by default"
        );
    }

    #[test]
    fn process_allow_core_dumps_is_a_bool() {
        let on = format!("{MINIMAL}[process]\nallow_core_dumps = true\n");
        assert!(Config::parse(&on).unwrap().process.allow_core_dumps);
        let bad = format!("{MINIMAL}[process]\nallow_core_dumps = \"yes\"\n");
        assert_eq!(
            err(&bad),
            "config error: [process] allow_core_dumps: expected true or false, found string"
        );
    }

    #[test]
    fn missing_required_key_names_it() {
        let text = MINIMAL.replace("sds_url = \"https://konnektor.example/connector.sds\"", "");
        assert_eq!(err(&text), "config error: [konnektor] sds_url: missing");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = MINIMAL.replace("[cache]", "") + "[cache]\ncapactiy = 5\n";
        let e = err(&text);
        assert!(
            e.starts_with("config error: [cache] capactiy: unknown key"),
            "{e}"
        );
    }

    #[test]
    fn unknown_section_is_rejected() {
        let e = err(&format!("{MINIMAL}\n[smpt]\nlisten = \"x\"\n"));
        assert!(
            e.starts_with("config error: [smpt]: unknown section"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = format!("{MINIMAL}[cache]\ncapacity = \"many\"\n");
        let e = err(&text);
        assert!(
            e.starts_with("config error: [cache] capacity: expected a positive integer"),
            "{e}"
        );
    }

    #[test]
    fn humane_durations_are_read() {
        let text = format!(
            "{MINIMAL}[timeouts]\nmta_response = \"30s\"\nmta_idle = \"2m\"\nclient_idle = \"1h30m\"\ndata = \"10m\"\nkonnektor = \"90s\"\n[cache]\ncertificate_ttl = \"1d\"\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.timeouts.mta_response, Duration::from_secs(30));
        assert_eq!(c.timeouts.mta_idle, Duration::from_secs(120));
        assert_eq!(c.timeouts.client_idle, Duration::from_secs(5400));
        assert_eq!(c.timeouts.data, Duration::from_secs(600));
        assert_eq!(c.konnektor.timeout, Duration::from_secs(90));
        assert_eq!(c.cache.certificate_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn bad_duration_names_the_key() {
        let e = err(&format!("{MINIMAL}[timeouts]\nmta_idle = \"5\"\n"));
        assert!(e.starts_with("config error: [timeouts] mta_idle: "), "{e}");
        let e = err(&format!("{MINIMAL}[timeouts]\nmta_idle = 5\n"));
        assert!(
            e.starts_with("config error: [timeouts] mta_idle: expected a duration"),
            "{e}"
        );
    }

    #[test]
    fn konnektor_timeout_given_twice_is_ambiguous() {
        let text = MINIMAL.replace(
            "[directory]",
            "timeout = \"10s\"\n[timeouts]\nkonnektor = \"20s\"\n[directory]",
        );
        let e = err(&text);
        assert!(
            e.starts_with("config error: [konnektor] timeout: also set"),
            "{e}"
        );
    }

    #[test]
    fn basic_auth_needs_user_and_password_and_excludes_client_cert() {
        let basic = MINIMAL.replace(
            "client_certificate = \"client.pem\"\nclient_key = \"client.key\"",
            "user = \"cm\"\npassword = \"geheim\"",
        );
        let c = Config::parse(&basic).unwrap();
        match &c.konnektor.auth {
            KonnektorAuth::Basic { user, password } => {
                assert_eq!(user, "cm");
                assert_eq!(password.expose(), "geheim");
            }
            other => panic!("unexpected {other:?}"),
        }
        // The password never shows in Debug output (logs).
        assert!(!format!("{c:?}").contains("geheim"));
        let no_password = basic.replace("password = \"geheim\"", "");
        assert_eq!(
            err(&no_password),
            "config error: [konnektor] password: missing"
        );
        let both = MINIMAL.replace("[directory]", "user = \"cm\"\n[directory]");
        assert!(err(&both).starts_with("config error: [konnektor] user: give either"));
    }

    #[test]
    fn a_21457_a_21517_konnektor_tables_by_id_beside_the_default() {
        let text = MINIMAL.replace(
            "[directory]",
            "timeout = \"20s\"\n\
             [konnektor.Konn_1]\n\
             sds_url = \"https://k1.praxis.local/connector.sds\"\n\
             user = \"cm\"\n\
             password = \"pw\"\n\
             [konnektor.\"10.0.0.7\"]\n\
             sds_url = \"https://10.0.0.7/connector.sds\"\n\
             timeout = \"5s\"\n\
             [directory]",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            c.konnektor.sds_url,
            "https://konnektor.example/connector.sds"
        );
        assert_eq!(c.konnektoren.len(), 2);
        let k1 = &c.konnektoren[&KonnektorId::new("Konn_1").unwrap()];
        assert_eq!(k1.sds_url, "https://k1.praxis.local/connector.sds");
        assert!(matches!(&k1.auth, KonnektorAuth::Basic { user, .. } if user == "cm"));
        // Without its own timeout a Konnektor takes the default Konnektor's.
        assert_eq!(k1.timeout, Duration::from_secs(20));
        let k2 = &c.konnektoren[&KonnektorId::new("10.0.0.7").unwrap()];
        assert_eq!(k2.timeout, Duration::from_secs(5));
        assert_eq!(k2.auth, KonnektorAuth::None);
        assert!(Config::parse(MINIMAL).unwrap().konnektoren.is_empty());
    }

    #[test]
    fn a_21457_konnektor_table_errors_name_the_table_and_key() {
        let with = |extra: &str| MINIMAL.replace("[directory]", &format!("{extra}\n[directory]"));
        assert_eq!(
            err(&with("[konnektor.K1]\nca = \"x.pem\"")),
            "config error: [konnektor.K1] sds_url: missing"
        );
        assert!(
            err(&with(
                "[konnektor.K1]\nsds_url = \"http://k1/connector.sds\""
            ))
            .starts_with("config error: [konnektor.K1] sds_url: must be an https://")
        );
        assert!(
            err(&with(
                "[konnektor.K1]\nsds_url = \"https://k1/sds\"\nsds = 1"
            ))
            .starts_with("config error: [konnektor.K1] sds: unknown key")
        );
        assert!(
            err(&with("[konnektor.\"K 1\"]\nsds_url = \"https://k1/sds\""))
                .starts_with("config error: [konnektor.K 1]: not a usable KonnektorId")
        );
    }

    #[test]
    fn a_2011_konnektor_url_must_be_https() {
        let text = MINIMAL.replace("https://konnektor", "http://konnektor");
        assert!(err(&text).starts_with("config error: [konnektor] sds_url: must be an https://"));
    }

    #[test]
    fn bad_listen_address_names_the_key() {
        let text = MINIMAL.replace("127.0.0.1:4650", "localhost");
        assert!(err(&text).starts_with("config error: [smtp] listen: \"localhost\" is not"));
    }

    #[test]
    fn toml_syntax_error_is_one_line_with_line_number() {
        let e = Config::parse("[smtp\nlisten = 1").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn starttls_true_is_refused_until_implemented() {
        let text = MINIMAL.replace("[tls]", "starttls = true\n[tls]");
        assert!(err(&text).starts_with("config error: [smtp] starttls:"));
    }

    #[test]
    fn a_23165_deliver_original_switch_defaults_to_replacing_the_content() {
        let with_pop3 = MINIMAL.replace("[tls]", "[pop3]\nlisten = \"127.0.0.1:9950\"\n[tls]");
        let c = Config::parse(&with_pop3).unwrap();
        assert!(!c.pop3.unwrap().deliver_original_on_integrity_failure);
        let on = with_pop3.replace(
            "[tls]",
            "deliver_original_on_integrity_failure = true\n[tls]",
        );
        assert!(
            Config::parse(&on)
                .unwrap()
                .pop3
                .unwrap()
                .deliver_original_on_integrity_failure
        );
        let wrong = with_pop3.replace(
            "[tls]",
            "deliver_original_on_integrity_failure = \"yes\"\n[tls]",
        );
        assert!(
            err(&wrong).starts_with("config error: [pop3] deliver_original_on_integrity_failure:"),
            "{}",
            err(&wrong)
        );
    }

    #[test]
    fn at_least_one_listener_is_required() {
        let text = MINIMAL.replace("[smtp]\nlisten = \"127.0.0.1:4650\"\n", "");
        assert!(err(&text).starts_with("config error: [smtp] listen: missing"));
    }

    #[test]
    fn upstream_allow_lists_are_read() {
        let text = format!(
            "{MINIMAL}[upstream]\nsmtp = [\"mail.kim.example:465\", \"*.kim.telematik:465\", \"[2001:db8::1]:465\"]\npop3 = [\"127.0.0.1:995\"]\nclient_identity = \"kim\"\n[keys]\nstore = \"keys.p12\"\n"
        );
        let c = Config::parse(&text).unwrap();
        let smtp = c.upstream.smtp_allow();
        assert!(smtp.permits("Mail.Kim.Example.", 465));
        assert!(smtp.permits("a.kim.telematik", 465));
        assert!(smtp.permits("2001:db8::1", 465));
        assert!(!smtp.permits("a.kim.telematik.attacker.de", 465));
        assert!(!smtp.permits("127.0.0.1", 995));
        assert!(c.upstream.pop3_allow().permits("127.0.0.1", 995));
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn malformed_allow_list_pattern_is_one_line_naming_the_key() {
        for (list, key, problem) in [
            (
                "smtp = [\"mail.example\"]",
                "smtp",
                "\"mail.example\": needs an explicit port",
            ),
            (
                "pop3 = [\"pop.example:*\"]",
                "pop3",
                "\"pop.example:*\": \"*\" as port",
            ),
            ("smtp = [\"*:465\"]", "smtp", "\"*:465\": a wildcard"),
            (
                "smtp = [\"2001:db8::1:465\"]",
                "smtp",
                "\"2001:db8::1:465\": IPv6",
            ),
            ("smtp = \"mail.example:465\"", "smtp", "expected an array"),
            (
                "pop3 = [995]",
                "pop3",
                "expected \"host:port\" strings, found integer",
            ),
        ] {
            let e = err(&format!("{MINIMAL}[upstream]\n{list}\n"));
            let want = format!("config error: [upstream] {key}: {problem}");
            assert!(e.starts_with(&want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn missing_allow_list_refuses_everything_and_warns_naming_the_key() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(c.upstream.smtp.is_none());
        assert!(c.upstream.smtp_allow().is_empty());
        let w = without_client_identity(c.warnings());
        // Only the SMTP listener is configured in MINIMAL.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("[upstream] smtp: not set, every SMTP login is refused"),
            "{w:?}"
        );
        let with_pop3 = MINIMAL.replace("[tls]", "[pop3]\nlisten = \"127.0.0.1:9950\"\n[tls]");
        let c = Config::parse(&format!("{with_pop3}[upstream]\nsmtp = []\n")).unwrap();
        assert_eq!(
            without_client_identity(c.warnings()),
            [
                "[upstream] smtp: empty, every SMTP login is refused".to_owned(),
                "[upstream] pop3: not set, every POP3 login is refused; list the servers \
                 clients may name, e.g. pop3 = [\"*.kim.example:995\"]"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn per_address_limit_is_off_by_default_and_bounded_by_max_sessions() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.smtp.unwrap().max_sessions_per_address, None);
        let text = MINIMAL.replace("[tls]", "max_sessions_per_address = 4\n[tls]");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.smtp.unwrap().max_sessions_per_address, Some(4));
        let text = MINIMAL.replace("[tls]", "max_sessions_per_address = 0\n[tls]");
        assert!(
            err(&text)
                .starts_with("config error: [smtp] max_sessions_per_address: must be at least 1")
        );
        let text = MINIMAL.replace(
            "[tls]",
            "max_sessions = 10\nmax_sessions_per_address = 11\n[tls]",
        );
        assert_eq!(
            err(&text),
            "config error: [smtp] max_sessions_per_address: must not exceed max_sessions (10)"
        );
        let text = MINIMAL.replace(
            "[tls]",
            "[pop3]\nlisten = \"127.0.0.1:9950\"\nmax_sessions_per_address = 2\n[tls]",
        );
        assert_eq!(
            Config::parse(&text)
                .unwrap()
                .pop3
                .unwrap()
                .max_sessions_per_address,
            Some(2)
        );
    }

    #[test]
    fn proxy_protocol_is_off_by_default_and_per_listener() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(!c.smtp.unwrap().proxy_protocol);
        let text = MINIMAL.replace(
            "[tls]",
            "proxy_protocol = true\n[pop3]\nlisten = \"127.0.0.1:9950\"\n[tls]",
        );
        let c = Config::parse(&text).unwrap();
        assert!(c.smtp.unwrap().proxy_protocol);
        assert!(!c.pop3.unwrap().proxy_protocol);
        let text = MINIMAL.replace("[tls]", "proxy_protocol = \"yes\"\n[tls]");
        assert!(
            err(&text).starts_with("config error: [smtp] proxy_protocol: expected true or false"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn example_file_parses_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/komle-cm.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.smtp.is_some() && c.pop3.is_some());
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        // Every key the parser knows appears (set or commented out) in the example.
        for key in [
            "listen",
            "starttls",
            "max_sessions",
            "hostname",
            "certificate",
            "private_key",
            "ca",
            "sds_url",
            "client_certificate",
            "client_key",
            "user",
            "password",
            "url",
            "base",
            "bind_dn",
            "bind_password",
            "timeout",
            "certificate_ttl",
            "capacity",
            "mta_response",
            "mta_idle",
            "client_idle",
            "data",
            "konnektor",
            "level",
            "max_sessions_per_address",
            "smtp",
            "pop3",
            "deliver_original_on_integrity_failure",
            "store",
            "password_file",
            "client_identity",
            "format",
            "sample_address",
            "context",
            "proxy_protocol",
            "base_url",
            "limits_url",
            "discovery_domain",
            "dns_server",
            "max_mail_size",
        ] {
            assert!(text.contains(&format!("{key} =")), "example lacks {key}");
        }
        // The commented-out optional sections are valid when switched on.
        let on = text
            .replace("# [admin]\n# listen", "[admin]\nlisten")
            .replace("# [doctor]\n", "[doctor]\n")
            .replace("# sample_address =", "sample_address =")
            .replace("# context =", "context =");
        let c = Config::parse(&on).unwrap();
        assert_eq!(
            c.admin.map(|a| a.listen),
            Some("127.0.0.1:9465".parse().unwrap())
        );
        assert!(c.doctor.context.is_some() && c.doctor.sample_address.is_some());
        // [kas] switched on as documented: DNS-SD with the named server, no override.
        let kas = text
            .replace("# [kas]\n", "[kas]\n")
            .replace("# discovery_domain =", "discovery_domain =")
            .replace("# dns_server =", "dns_server =")
            .replace(
                "# client_certificate = \"/etc/komle-cm/kas",
                "client_certificate = \"/etc/komle-cm/kas",
            )
            .replace(
                "# client_key = \"/etc/komle-cm/kas",
                "client_key = \"/etc/komle-cm/kas",
            );
        let k = Config::parse(&kas).unwrap().kas.expect("[kas]");
        assert_eq!(k.discovery_domain.as_deref(), Some("kim.telematik"));
        assert_eq!(k.dns_server, Some("127.0.0.1:53".parse().unwrap()));
        assert!(k.base_url.is_none() && k.client_certificate.is_some());
    }
}
