//! Which mail services a client may make the module connect to.
//!
//! The login name carries the host and port of the MTA or POP3 server (KOM-LE-A_2010,
//! `user#host:port#MandantId#ClientSystemId#WorkplaceId`). Without a check any client could make
//! the module open TCP+TLS connections to any host:port reachable from it — the Konnektor, the
//! directory, the module's own ports — and tell a trusted TLS service from a closed port by the
//! reply. The sessions therefore ask an [`UpstreamAllowList`] before they emit `ConnectUpstream`;
//! a refused login gets exactly the reply of an unreachable server and no connection attempt.
//!
//! Patterns (`[upstream] smtp = [...]`, `pop3 = [...]` in the daemon's configuration):
//!
//! | pattern                  | matches                                                    |
//! |--------------------------|------------------------------------------------------------|
//! | `mail.kim.example:465`   | that host name on port 465                                 |
//! | `*.kim.telematik:465`    | one or more labels in front of `kim.telematik`, port 465   |
//! | `192.0.2.7:995`          | that IPv4 address (written as four decimal octets)         |
//! | `[2001:db8::25]:465`     | that IPv6 address, in any spelling                         |
//!
//! Host names compare case-insensitively and ignore one trailing dot (`Mail.Example.` is
//! `mail.example`). The port is always explicit: there is no "any port" wildcard, because one
//! pattern like `*.kim.telematik:*` would again open every port of those hosts (administration
//! interfaces, other services) to probing. A service on several ports is listed once per port.
//! A wildcard stands only for whole leading labels, never for part of a label (`*mail.example`
//! is rejected) and never for the whole name (`*` alone is rejected). The last label of a
//! name pattern must not be all digits, so no name pattern can match something a resolver would
//! read as a numeric address (`127.1`).
//!
//! An empty list refuses every login: that is the default, so a deployment that forgot to
//! configure its mail services is safe (the daemon warns about it at start).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;
use std::sync::Arc;

/// What a client is told about a connection to its mail service that did not come about,
/// whatever the cause: refused by the allow-list, DNS, TCP, TLS or a timeout. One text for all,
/// so the reply cannot tell a closed port from a TLS service or from a refused host; the
/// runtime logs the real cause.
pub const UNREACHABLE_REASON: &str = "Verbindung fehlgeschlagen";

/// The longest host name (RFC 1035 §2.3.4) and label.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// The hosts and ports clients may name in their login name. Cheap to clone (shared).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamAllowList {
    patterns: Arc<[HostPattern]>,
}

impl UpstreamAllowList {
    /// A list that refuses everything (the default).
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// A list of already parsed patterns.
    pub fn new(patterns: Vec<HostPattern>) -> Self {
        Self {
            patterns: patterns.into(),
        }
    }

    /// Parses every entry; the first bad one is returned with its text.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, (String, PatternError)> {
        let patterns = entries
            .into_iter()
            .map(|e| e.parse::<HostPattern>().map_err(|err| (e.to_owned(), err)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(patterns))
    }

    /// Whether a client may make the module connect to `host:port` (the host as
    /// [`LoginName`](crate::login_name::LoginName) gives it: IPv6 literals without brackets).
    pub fn permits(&self, host: &str, port: u16) -> bool {
        let Some(target) = Target::new(host) else {
            return false;
        };
        self.patterns.iter().any(|p| p.matches(&target, port))
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, in configuration order.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }
}

/// One allowed host (or family of hosts) on one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    /// Lower-case labels of an exact name.
    Name(Vec<String>),
    /// Lower-case labels after `*.`: the host has at least one more label in front.
    Below(Vec<String>),
    Ip(IpAddr),
}

/// Why an allow-list entry is not a pattern; shown by the configuration check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// No `:port` at the end.
    MissingPort,
    /// `*` as the port: not allowed (see the module documentation).
    AnyPort,
    /// Not a number from 1 to 65535.
    InvalidPort,
    /// An IPv6 literal without brackets, or brackets around something else.
    InvalidAddress,
    /// Empty labels, characters outside letters/digits/hyphen, over-long names or labels,
    /// or an all-digit last label.
    InvalidName,
    /// `*` anywhere but as the whole first label, or with nothing after it.
    MisplacedWildcard,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingPort => "needs an explicit port, e.g. \"mail.example:465\"",
            Self::AnyPort => "\"*\" as port is not allowed; list each port",
            Self::InvalidPort => "port must be a number from 1 to 65535",
            Self::InvalidAddress => {
                "IPv6 addresses are written in brackets, e.g. \"[2001:db8::1]:465\""
            }
            Self::InvalidName => {
                "not a host name (letters, digits, hyphens; last label not all digits)"
            }
            Self::MisplacedWildcard => {
                "a wildcard stands for whole leading labels only, e.g. \"*.kim.telematik:465\""
            }
        })
    }
}

impl std::error::Error for PatternError {}

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, PatternError> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or(PatternError::InvalidAddress)?;
            let v6: Ipv6Addr = v6.parse().map_err(|_| PatternError::InvalidAddress)?;
            let port = after.strip_prefix(':').ok_or(PatternError::MissingPort)?;
            (HostMatch::Ip(IpAddr::V6(v6)), port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or(PatternError::MissingPort)?;
            if host.contains(':') {
                return Err(PatternError::InvalidAddress);
            }
            (host_match(host)?, port)
        };
        let port = match port {
            "*" => return Err(PatternError::AnyPort),
            p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u16>().map_err(|_| PatternError::InvalidPort)?
            }
            _ => return Err(PatternError::InvalidPort),
        };
        if port == 0 {
            return Err(PatternError::InvalidPort);
        }
        Ok(Self { host, port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Name(labels) => write!(f, "{}:{}", labels.join("."), self.port),
            HostMatch::Below(labels) => write!(f, "*.{}:{}", labels.join("."), self.port),
            HostMatch::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

fn host_match(host: &str) -> Result<HostMatch, PatternError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(HostMatch::Ip(IpAddr::V4(ip)));
    }
    if let Some(rest) = host.strip_prefix("*.") {
        if rest.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        return Ok(HostMatch::Below(
            name_labels(rest).ok_or(PatternError::InvalidName)?,
        ));
    }
    if host.contains('*') {
        return Err(PatternError::MisplacedWildcard);
    }
    Ok(HostMatch::Name(
        name_labels(host).ok_or(PatternError::InvalidName)?,
    ))
}

/// The lower-case labels of a DNS name (one trailing dot ignored), or `None` if it is not a
/// plain host name. An all-digit last label is refused so no name can be a numeric address.
fn name_labels(name: &str) -> Option<Vec<String>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let labels: Vec<String> = name.split('.').map(str::to_ascii_lowercase).collect();
    let label_ok = |l: &String| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !labels.iter().all(label_ok) {
        return None;
    }
    if labels.last()?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(labels)
}

/// A host from a login name, prepared for comparison.
enum Target {
    Ip(IpAddr),
    Name(Vec<String>),
}

impl Target {
    /// `None` for anything that is neither an address nor a plain host name: such a host
    /// matches no pattern.
    fn new(host: &str) -> Option<Self> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        name_labels(host).map(Self::Name)
    }
}

impl HostPattern {
    fn matches(&self, target: &Target, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        match (&self.host, target) {
            (HostMatch::Ip(want), Target::Ip(ip)) => want == ip,
            (HostMatch::Name(want), Target::Name(labels)) => want == labels,
            (HostMatch::Below(suffix), Target::Name(labels)) => {
                labels.len() > suffix.len() && labels.ends_with(suffix)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(entries: &[&str]) -> UpstreamAllowList {
        UpstreamAllowList::parse(entries.iter().copied()).unwrap()
    }

    #[test]
    fn a_2010_exact_name_matches_case_insensitively_and_with_trailing_dot() {
        let l = list(&["mail.kim.example:465"]);
        assert!(l.permits("mail.kim.example", 465));
        assert!(l.permits("MAIL.Kim.Example", 465));
        assert!(l.permits("mail.kim.example.", 465));
        assert!(!l.permits("mail.kim.example", 25));
        assert!(!l.permits("kim.example", 465));
        assert!(!l.permits("x.mail.kim.example", 465));
        assert!(!l.permits("mail.kim.example..", 465));
        assert!(!l.permits("mail.kim.examplex", 465));
    }

    #[test]
    fn a_2010_wildcard_stands_for_one_or_more_leading_labels() {
        let l = list(&["*.kim.telematik:465"]);
        assert!(l.permits("mail.kim.telematik", 465));
        assert!(l.permits("a.b.c.KIM.telematik.", 465));
        assert!(!l.permits("kim.telematik", 465));
        assert!(!l.permits("evil.kim.telematik.attacker.de", 465));
        assert!(!l.permits("evilkim.telematik", 465));
        assert!(!l.permits("mail.kim.telematik", 995));
    }

    #[test]
    fn a_2010_addresses_compare_as_addresses() {
        let l = list(&["127.0.0.1:2465", "[2001:db8::25]:465"]);
        assert!(l.permits("127.0.0.1", 2465));
        assert!(l.permits("2001:db8::25", 465));
        assert!(l.permits("2001:0db8:0:0::0:25", 465));
        assert!(!l.permits("127.0.0.2", 2465));
        assert!(!l.permits("127.0.0.1", 465));
        // Other spellings a resolver might read as 127.0.0.1 are names, and no name pattern
        // can match them.
        assert!(!l.permits("127.1", 2465));
        assert!(!l.permits("0x7f.0.0.1", 2465));
        assert!(!l.permits("::ffff:127.0.0.1", 2465));
    }

    #[test]
    fn empty_list_refuses_everything() {
        let l = UpstreamAllowList::deny_all();
        assert!(l.is_empty());
        assert!(!l.permits("mail.kim.example", 465));
        assert!(!l.permits("127.0.0.1", 465));
    }

    #[test]
    fn malformed_patterns_are_rejected_precisely() {
        use PatternError::*;
        let cases = [
            ("mail.example", MissingPort),
            ("mail.example:", InvalidPort),
            ("mail.example:*", AnyPort),
            ("mail.example:0", InvalidPort),
            ("mail.example:65536", InvalidPort),
            ("mail.example:+465", InvalidPort),
            ("2001:db8::1:465", InvalidAddress),
            ("[mail.example]:465", InvalidAddress),
            ("[2001:db8::1]465", MissingPort),
            ("*:465", MisplacedWildcard),
            ("*.:465", InvalidName),
            ("mail*.example:465", MisplacedWildcard),
            ("*.*.example:465", MisplacedWildcard),
            ("mail.*.example:465", MisplacedWildcard),
            ("mail..example:465", InvalidName),
            ("mail_x.example:465", InvalidName),
            ("-mail.example:465", InvalidName),
            ("127.1:465", InvalidName),
            ("256.0.0.1:465", InvalidName),
            (":465", InvalidName),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<HostPattern>(), Err(want), "{input}");
        }
        let long = format!("{}.example:465", "a".repeat(64));
        assert_eq!(long.parse::<HostPattern>(), Err(InvalidName));
    }

    #[test]
    fn patterns_display_in_canonical_form() {
        for (input, shown) in [
            ("Mail.Example.:465", "mail.example:465"),
            ("*.KIM.telematik:465", "*.kim.telematik:465"),
            ("[2001:0db8::0:25]:465", "[2001:db8::25]:465"),
            ("127.0.0.1:2465", "127.0.0.1:2465"),
        ] {
            assert_eq!(input.parse::<HostPattern>().unwrap().to_string(), shown);
        }
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
    }

    fn name(min: usize, max: usize) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(label(), min..=max)
    }

    /// Randomly upper-cases letters: matching must not care.
    fn shout(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    proptest! {
        /// A host outside every pattern never matches: a name that merely contains the
        /// wildcard's suffix (`evil.kim.telematik.attacker.de`), a name that differs from the
        /// suffix, and the suffix itself all miss `*.suffix`.
        #[test]
        fn a_host_outside_the_wildcard_never_matches(
            suffix in name(1, 3),
            front in name(1, 3),
            tail in name(1, 2),
            other in name(1, 4),
            port in 1u16..,
        ) {
            prop_assume!(!suffix.last().unwrap().bytes().all(|b| b.is_ascii_digit()));
            let s = suffix.join(".");
            let l = list(&[&format!("*.{s}:{port}")]);
            let inside = format!("{}.{s}", front.join("."));
            prop_assert!(l.permits(&inside, port));
            let trailing = format!("{inside}.{}", tail.join("."));
            // `a.r` + `.r` ends in `.r` again: a genuine subdomain, rightly permitted.
            prop_assume!(!trailing.ends_with(&format!(".{s}")));
            prop_assert!(!l.permits(&trailing, port));
            prop_assert!(!l.permits(&s, port));
            let other_port = if port == 1 { 2 } else { port - 1 };
            prop_assert!(!l.permits(&inside, other_port));
            if !other.ends_with(&suffix) || other.len() == suffix.len() {
                prop_assert!(!l.permits(&other.join("."), port));
            }
        }

        /// Matching agrees with a plain label-by-label reference on any list of patterns and
        /// any host, whatever the case and a trailing dot.
        #[test]
        fn matching_agrees_with_a_reference(
            patterns in proptest::collection::vec((any::<bool>(), name(1, 3), 1u16..4), 0..5),
            host in name(1, 4),
            port in 1u16..4,
            mask in any::<u64>(),
            dot in any::<bool>(),
        ) {
            let entries: Vec<String> = patterns
                .iter()
                .filter(|(_, n, _)| !n.last().unwrap().bytes().all(|b| b.is_ascii_digit()))
                .map(|(wild, n, p)| format!("{}{}:{p}", if *wild { "*." } else { "" }, n.join(".")))
                .collect();
            let l = UpstreamAllowList::parse(entries.iter().map(String::as_str)).unwrap();
            let expected = patterns.iter().any(|(wild, n, p)| {
                !n.last().unwrap().bytes().all(|b| b.is_ascii_digit())
                    && *p == port
                    && if *wild {
                        host.len() > n.len() && host.ends_with(n)
                    } else {
                        host == *n
                    }
            });
            let mut spelled = shout(&host.join("."), mask);
            if dot {
                spelled.push('.');
            }
            prop_assert_eq!(l.permits(&spelled, port), expected, "{} in {:?}", spelled, entries);
        }

        /// Parsing never panics, and whatever parses shows itself in a form that parses back
        /// to the same pattern.
        #[test]
        fn parsing_any_text_is_total_and_round_trips(s in "\\PC{0,40}") {
            if let Ok(p) = s.parse::<HostPattern>() {
                prop_assert_eq!(p.to_string().parse::<HostPattern>(), Ok(p));
            }
        }
    }
}
