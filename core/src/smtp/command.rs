//! SMTP command lines from the client (RFC 5321 §4.1), parsed strictly, and the only way to
//! write a command for the MTA.
//!
//! # Relay rules (default deny)
//!
//! A byte reaches the MTA only if this module parsed the client's command and wrote it anew:
//! [`Command::canonical`] turns a parsed command into a [`CanonicalCommand`], whose bytes come
//! from the serialiser here and nowhere else, and the session's upstream send takes nothing
//! but that type (plus the protected message and the SASL lines of its own MTA login).
//!
//! - The canonical form is: verb in upper case, one SP, the parsed arguments, CRLF. MAIL and
//!   RCPT carry the path as `<mailbox>` (a source route is dropped, RFC 5321 §4.1.2) followed
//!   by the ESMTP parameters the module knows, validated and in a fixed order: MAIL `SIZE`
//!   (RFC 1870), `BODY=7BIT|8BITMIME` (RFC 6152), `RET`, `ENVID` (RFC 3461), `AUTH` (RFC 4954
//!   §5), `SMTPUTF8` (RFC 6531); RCPT `NOTIFY`, `ORCPT` (RFC 3461). HELO/EHLO carry the
//!   validated domain or address literal. NOOP's optional argument is dropped.
//! - Parsing the canonical form gives the same command again, so the canonical form is a fixed
//!   point (tested by property tests here and over whole sessions in `core/tests`).
//! - Refused locally, never relayed: a line with a control character anywhere (NUL, TAB, VT,
//!   FF, bare CR, ESC, DEL, C1), a leading SP, an empty line, non-ASCII outside a MAIL/RCPT
//!   path, a verb not followed by exactly one SP or the line end: `500 5.5.2`. An unknown verb
//!   and the verbs the proxy does not relay (VRFY, EXPN, HELP, ETRN, TURN, ATRN, BDAT): `502
//!   5.5.1`. An unknown MAIL/RCPT parameter: `555 5.5.4`. Bad arguments: `501`.
//! - Mailboxes may hold UTF-8 (RFC 6531 `UTF8-non-ascii` in atoms, quoted strings and domain
//!   labels) whether or not MAIL carries `SMTPUTF8`: the MTA advertises and enforces SMTPUTF8
//!   itself. A non-ASCII character that is a control character is refused like any other.
//!
//! KOM-LE-A_2018 asks for the client's commands to be relayed unchanged. The module keeps
//! that for every command it understands: the canonical form says the same thing the client
//! said. Bytes it does not understand are not relayed at all, since the MTA may understand
//! them differently (Postfix skips leading white space, so ` DATA` opened a message body that
//! the module never saw and never protected).

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The verbs the module knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Auth,
    Starttls,
    Bdat,
    Vrfy,
    Expn,
    Help,
    Etrn,
    Turn,
    Atrn,
}

impl Verb {
    fn from_word(word: &str) -> Option<Self> {
        const ALL: [(&str, Verb); 17] = [
            ("HELO", Verb::Helo),
            ("EHLO", Verb::Ehlo),
            ("MAIL", Verb::Mail),
            ("RCPT", Verb::Rcpt),
            ("DATA", Verb::Data),
            ("RSET", Verb::Rset),
            ("NOOP", Verb::Noop),
            ("QUIT", Verb::Quit),
            ("AUTH", Verb::Auth),
            ("STARTTLS", Verb::Starttls),
            ("BDAT", Verb::Bdat),
            ("VRFY", Verb::Vrfy),
            ("EXPN", Verb::Expn),
            ("HELP", Verb::Help),
            ("ETRN", Verb::Etrn),
            ("TURN", Verb::Turn),
            ("ATRN", Verb::Atrn),
        ];
        ALL.iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, v)| *v)
    }
}

/// A parsed command line.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    Helo(Domain),
    Ehlo(Domain),
    Mail(ReversePath, MailParams),
    Rcpt(Mailbox, RcptParams),
    Data,
    Rset,
    Noop,
    Quit,
    /// `AUTH mechanism [initial-response]`; answered by the module, never relayed.
    Auth(AuthArgs),
    Starttls,
    /// A known verb the proxy answers with 502 and never relays (VRFY, EXPN, HELP, ETRN, TURN,
    /// ATRN, BDAT).
    NotRelayed(Verb),
}

/// Debug shows the verb only: arguments hold addresses and, for AUTH, credentials.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail(..) => "MAIL",
            Command::Rcpt(..) => "RCPT",
            Command::Data => "DATA",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Auth(_) => "AUTH",
            Command::Starttls => "STARTTLS",
            Command::NotRelayed(v) => return write!(f, "NotRelayed({v:?})"),
        };
        write!(f, "Command({verb})")
    }
}

/// Arguments of AUTH: the mechanism (upper case) and the initial response, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthArgs {
    pub mechanism: String,
    pub initial_response: Option<String>,
}

/// Why a line is refused; each maps to the reply the client gets ([`CommandError::reply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// Not an SMTP command line at all (control bytes, leading white space, a verb not
    /// followed by exactly one SP): `500 5.5.2`.
    Syntax,
    /// Not a verb the module knows: `502 5.5.1`.
    UnknownVerb,
    /// A known verb with arguments that do not fit its grammar: `501`.
    BadArguments(Verb),
    /// A MAIL/RCPT parameter with a bad value: `501 5.5.4`.
    BadParameter,
    /// A MAIL/RCPT parameter the module does not know or support: `555 5.5.4`.
    UnknownParameter,
}

impl CommandError {
    /// The reply for the client.
    pub fn reply(self) -> Vec<u8> {
        use super::reply::line;
        match self {
            CommandError::Syntax => line(500, "5.5.2 Syntax error, command unrecognized"),
            CommandError::UnknownVerb => line(502, "5.5.1 Invalid command"),
            CommandError::BadArguments(Verb::Mail) => {
                line(501, "5.5.4 Syntax: MAIL FROM:<address>")
            }
            CommandError::BadArguments(Verb::Rcpt) => line(501, "5.1.3 Syntax: RCPT TO:<address>"),
            CommandError::BadArguments(Verb::Helo) => line(501, "5.5.4 Syntax: HELO hostname"),
            CommandError::BadArguments(Verb::Ehlo) => line(501, "5.5.4 Syntax: EHLO hostname"),
            CommandError::BadArguments(Verb::Data) => line(501, "5.5.4 Syntax: DATA"),
            CommandError::BadArguments(_) => line(501, "5.5.4 Invalid command arguments"),
            CommandError::BadParameter => line(501, "5.5.4 Invalid parameter value"),
            CommandError::UnknownParameter => line(555, "5.5.4 Unsupported parameter"),
        }
    }
}

/// A command line for the MTA, CRLF included. Only this module's serialiser makes one (from a
/// parsed [`Command`] or for the module's own commands), so whatever goes upstream as a
/// command was written here.
#[derive(Clone, PartialEq, Eq)]
pub struct CanonicalCommand(Vec<u8>);

impl CanonicalCommand {
    /// The bytes for the MTA, CRLF included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn verb_only(verb: &str) -> Self {
        Self(format!("{verb}\r\n").into_bytes())
    }

    pub fn quit() -> Self {
        Self::verb_only("QUIT")
    }

    pub fn rset() -> Self {
        Self::verb_only("RSET")
    }

    pub fn data() -> Self {
        Self::verb_only("DATA")
    }

    pub fn noop() -> Self {
        Self::verb_only("NOOP")
    }

    pub fn ehlo(domain: &Domain) -> Self {
        Self(format!("EHLO {}\r\n", domain.0).into_bytes())
    }

    pub fn helo(domain: &Domain) -> Self {
        Self(format!("HELO {}\r\n", domain.0).into_bytes())
    }

    pub fn mail(from: &ReversePath, params: &MailParams) -> Self {
        let path = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        Self(format!("MAIL FROM:<{path}>{params}\r\n").into_bytes())
    }

    pub fn rcpt(to: &Mailbox, params: &RcptParams) -> Self {
        Self(format!("RCPT TO:<{to}>{params}\r\n").into_bytes())
    }
}

/// Debug shows the verb only (addresses are personal data).
impl fmt::Debug for CanonicalCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.0.split(|b| *b == b' ' || *b == b'\r').next();
        let verb = verb.and_then(|v| core::str::from_utf8(v).ok());
        write!(f, "CanonicalCommand({})", verb.unwrap_or("?"))
    }
}

impl Command {
    /// The canonical form for the MTA, for the commands the proxy relays (HELO, EHLO, MAIL,
    /// RCPT, RSET, NOOP, QUIT); `None` for the rest, which the module answers itself (DATA is
    /// sent by the module only with the protected message).
    pub fn canonical(&self) -> Option<CanonicalCommand> {
        Some(match self {
            Command::Helo(d) => CanonicalCommand::helo(d),
            Command::Ehlo(d) => CanonicalCommand::ehlo(d),
            Command::Mail(from, params) => CanonicalCommand::mail(from, params),
            Command::Rcpt(to, params) => CanonicalCommand::rcpt(to, params),
            Command::Rset => CanonicalCommand::rset(),
            Command::Noop => CanonicalCommand::noop(),
            Command::Quit => CanonicalCommand::quit(),
            Command::Data | Command::Auth(_) | Command::Starttls | Command::NotRelayed(_) => {
                return None;
            }
        })
    }
}

/// Parses a command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let line = core::str::from_utf8(line).map_err(|_| CommandError::Syntax)?;
    if line.is_empty() || line.chars().any(char::is_control) || line.starts_with(' ') {
        return Err(CommandError::Syntax);
    }
    // Trailing spaces are dropped (clients add them; nothing can hide in them).
    let line = line.trim_end_matches(' ');
    let (word, args) = match line.split_once(' ') {
        Some((w, a)) => (w, Some(a)),
        None => (line, None),
    };
    if !word.is_ascii() || args.is_some_and(|a| a.starts_with(' ')) {
        return Err(CommandError::Syntax);
    }
    let verb = Verb::from_word(word).ok_or(CommandError::UnknownVerb)?;
    if verb != Verb::Mail && verb != Verb::Rcpt && !line.is_ascii() {
        return Err(CommandError::Syntax);
    }
    let bad = CommandError::BadArguments(verb);
    let no_args = |c: Command| if args.is_none() { Ok(c) } else { Err(bad) };
    match verb {
        Verb::Helo => Ok(Command::Helo(helo_domain(args).ok_or(bad)?)),
        Verb::Ehlo => Ok(Command::Ehlo(helo_domain(args).ok_or(bad)?)),
        Verb::Mail => mail(args.unwrap_or_default()),
        Verb::Rcpt => rcpt(args.unwrap_or_default()),
        Verb::Data => no_args(Command::Data),
        Verb::Rset => no_args(Command::Rset),
        Verb::Quit => no_args(Command::Quit),
        Verb::Starttls => no_args(Command::Starttls),
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which has no meaning and is dropped.
        Verb::Noop => Ok(Command::Noop),
        Verb::Auth => auth(args.unwrap_or_default()).ok_or(bad),
        Verb::Bdat
        | Verb::Vrfy
        | Verb::Expn
        | Verb::Help
        | Verb::Etrn
        | Verb::Turn
        | Verb::Atrn => Ok(Command::NotRelayed(verb)),
    }
}

fn auth(args: &str) -> Option<Command> {
    let mut parts = args.split(' ');
    let mechanism = parts.next().filter(|m| {
        !m.is_empty()
            && m.len() <= 20
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })?;
    let initial_response = parts.next().map(str::to_owned);
    if parts.next().is_some() {
        return None;
    }
    Some(Command::Auth(AuthArgs {
        mechanism: mechanism.to_ascii_uppercase(),
        initial_response,
    }))
}

/// A HELO/EHLO argument or a mailbox's domain: a domain name or an address literal,
/// validated, kept as the client wrote it.
#[derive(Clone, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    /// Parses the argument of HELO/EHLO: a domain (labels of letters, digits, `-`, and `_`
    /// which Windows host names carry) or an address literal. ASCII only.
    pub fn parse_helo(s: &str) -> Option<Self> {
        (s.is_ascii() && (is_address_literal(s) || is_domain(s, true))).then(|| Self(s.to_owned()))
    }

    /// `localhost`, for when the configured host name is not a valid EHLO argument.
    pub fn localhost() -> Self {
        Self("localhost".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

fn helo_domain(args: Option<&str>) -> Option<Domain> {
    Domain::parse_helo(args?)
}

/// RFC 5321 §4.1.2 `Domain` (with RFC 6531 U-labels unless `helo`), at most 255 octets.
fn is_domain(s: &str, helo: bool) -> bool {
    s.len() <= 255
        && s.split('.').all(|label| {
            let ok_char = |c: char| {
                c.is_ascii_alphanumeric()
                    || c == '-'
                    || (helo && c == '_')
                    || (!helo && !c.is_ascii())
            };
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(ok_char)
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// RFC 5321 §4.1.3 address literal: `[IPv4]`, `[IPv6:addr]` or `[tag:dcontent]`.
fn is_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    if inner.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    if let Some(v6) = inner
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
        .and_then(|_| inner.get(5..))
    {
        return v6.parse::<Ipv6Addr>().is_ok();
    }
    // General-address-literal: Standardized-tag ":" 1*dcontent.
    let Some((tag, content)) = inner.split_once(':') else {
        return false;
    };
    is_domain(tag, false)
        && tag.is_ascii()
        && !content.is_empty()
        && content.bytes().all(|b| matches!(b, 33..=90 | 94..=126))
}

/// A mailbox (`Local-part "@" Domain`, RFC 5321 §4.1.2, RFC 6531), validated; the local part
/// keeps the client's form (dot-string or quoted string).
#[derive(Clone, PartialEq, Eq)]
pub struct Mailbox {
    local: String,
    domain: String,
}

impl Mailbox {
    /// Parses `local@domain` as it stands between the angle brackets of a path.
    pub fn parse(s: &str) -> Option<Self> {
        let (local, rest) = local_part(s)?;
        let domain = rest.strip_prefix('@')?;
        if !(is_domain(domain, false) || is_address_literal(domain)) {
            return None;
        }
        Some(Self {
            local: local.to_owned(),
            domain: domain.to_owned(),
        })
    }

    /// The address as written in the path: `local@domain`.
    pub fn address(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox(<{self}>)")
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Splits off a `Local-part` (dot-string or quoted string, at most 64 octets).
fn local_part(s: &str) -> Option<(&str, &str)> {
    let end = if let Some(q) = s.strip_prefix('"') {
        let mut escaped = false;
        let mut close = None;
        for (i, c) in q.char_indices() {
            if escaped {
                // quoted-pairSMTP: backslash and %d32-126.
                if !(' '..='~').contains(&c) {
                    return None;
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                close = Some(i);
                break;
            } else if !(c == ' ' || c == '!' || ('#'..='~').contains(&c) || !c.is_ascii()) {
                return None;
            }
        }
        close? + 2
    } else {
        let end = s.find('@').unwrap_or(s.len());
        let dot_string = &s[..end];
        if dot_string
            .split('.')
            .any(|a| a.is_empty() || !a.chars().all(is_atext))
        {
            return None;
        }
        end
    };
    (end <= 64).then(|| s.split_at(end))
}

/// The reverse path of MAIL: a mailbox or the null path `<>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl ReversePath {
    /// Parses an address as the module keeps it (`local@domain`, or empty for `<>`).
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() {
            return Some(ReversePath::Null);
        }
        Mailbox::parse(s).map(ReversePath::Mailbox)
    }

    /// The address without brackets; empty for the null path.
    pub fn address(&self) -> String {
        match self {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.address(),
        }
    }
}

/// `<[A-d-l ":"] Mailbox>`; the source route is checked and dropped (RFC 5321 §4.1.2,
/// appendix C). `Some(None)` is the null path `<>` (allowed when `null_ok`).
fn path(s: &str, null_ok: bool) -> Option<(Option<Mailbox>, &str)> {
    let inner = s.strip_prefix('<')?;
    if let Some(rest) = inner.strip_prefix('>') {
        return null_ok.then_some((None, rest));
    }
    let inner = if inner.starts_with('@') {
        let (route, rest) = inner.split_once(':')?;
        let route_ok = route
            .split(',')
            .all(|hop| hop.strip_prefix('@').is_some_and(|d| is_domain(d, false)));
        if !route_ok {
            return None;
        }
        rest
    } else {
        inner
    };
    let (local, rest) = local_part(inner)?;
    let rest = rest.strip_prefix('@')?;
    let close = rest.find('>')?;
    let mailbox = Mailbox::parse(&inner[..local.len() + 1 + close])?;
    Some((Some(mailbox), &rest[close + 1..]))
}

/// After `FROM:`/`TO:`, spaces before the path are tolerated (RFC 821 habits); the canonical
/// form has none.
fn after_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| args[keyword.len()..].trim_start_matches(' '))
}

fn mail(args: &str) -> Result<Command, CommandError> {
    let bad = CommandError::BadArguments(Verb::Mail);
    let rest = after_keyword(args, "FROM:").ok_or(bad)?;
    let (mailbox, rest) = path(rest, true).ok_or(bad)?;
    let params = MailParams::parse(esmtp_params(rest).ok_or(bad)?)?;
    let from = mailbox.map_or(ReversePath::Null, ReversePath::Mailbox);
    Ok(Command::Mail(from, params))
}

fn rcpt(args: &str) -> Result<Command, CommandError> {
    let bad = CommandError::BadArguments(Verb::Rcpt);
    let rest = after_keyword(args, "TO:").ok_or(bad)?;
    let (mailbox, rest) = path(rest, false).ok_or(bad)?;
    let params = RcptParams::parse(esmtp_params(rest).ok_or(bad)?)?;
    Ok(Command::Rcpt(mailbox.ok_or(bad)?, params))
}

/// `*(SP esmtp-param)` after the path, as (keyword, value) pairs; ASCII only (RFC 5321
/// §4.1.2 `esmtp-value` is %d33-60 / %d62-126).
fn esmtp_params(rest: &str) -> Option<Vec<(&str, Option<&str>)>> {
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix(' ')?;
    rest.split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            let key_ok = k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let value_ok = v.is_none_or(|v| {
                !v.is_empty() && v.bytes().all(|b| matches!(b, 33..=60 | 62..=126))
            });
            (key_ok && value_ok).then_some((k, v))
        })
        .collect()
}

/// RFC 3461 §4 xtext: `!`..`~` except `+` and `=`, and `+XX` hex escapes.
fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex =
                    |x: Option<&u8>| x.is_some_and(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
                if !(hex(b.get(i + 1)) && hex(b.get(i + 2))) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

/// `BODY=` values (RFC 6152); BINARYMIME is not offered (it needs BDAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// `RET=` (RFC 3461 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// The ESMTP parameters of MAIL the module relays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, xtext, at most 100 characters.
    pub envid: Option<String>,
    /// RFC 4954 §5 `AUTH=` mailbox, xtext or `<>`.
    pub auth: Option<String>,
    pub smtputf8: bool,
}

fn set_once<T>(slot: &mut Option<T>, v: T) -> Result<(), CommandError> {
    if slot.is_some() {
        return Err(CommandError::BadParameter);
    }
    *slot = Some(v);
    Ok(())
}

impl MailParams {
    fn parse(params: Vec<(&str, Option<&str>)>) -> Result<Self, CommandError> {
        let bad = CommandError::BadParameter;
        let mut p = MailParams::default();
        for (k, v) in params {
            let key = k.to_ascii_uppercase();
            match (key.as_str(), v) {
                ("SIZE", Some(v)) => {
                    if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad);
                    }
                    set_once(&mut p.size, v.parse().map_err(|_| bad)?)?;
                }
                ("BODY", Some(v)) => {
                    let body = match v.to_ascii_uppercase().as_str() {
                        "7BIT" => Body::SevenBit,
                        "8BITMIME" => Body::EightBitMime,
                        "BINARYMIME" => return Err(CommandError::UnknownParameter),
                        _ => return Err(bad),
                    };
                    set_once(&mut p.body, body)?;
                }
                ("RET", Some(v)) => {
                    let ret = match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err(bad),
                    };
                    set_once(&mut p.ret, ret)?;
                }
                ("ENVID", Some(v)) if v.len() <= 100 && is_xtext(v) => {
                    set_once(&mut p.envid, v.to_owned())?
                }
                ("AUTH", Some(v)) if v.len() <= 500 && (v == "<>" || is_xtext(v)) => {
                    set_once(&mut p.auth, v.to_owned())?
                }
                ("SMTPUTF8", None) => {
                    if p.smtputf8 {
                        return Err(bad);
                    }
                    p.smtputf8 = true;
                }
                ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH" | "SMTPUTF8", _) => return Err(bad),
                _ => return Err(CommandError::UnknownParameter),
            }
        }
        Ok(p)
    }
}

impl fmt::Display for MailParams {
    /// Each parameter with its leading SP, in a fixed order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.size {
            write!(f, " SIZE={s}")?;
        }
        match self.body {
            Some(Body::SevenBit) => f.write_str(" BODY=7BIT")?,
            Some(Body::EightBitMime) => f.write_str(" BODY=8BITMIME")?,
            None => {}
        }
        match self.ret {
            Some(Ret::Full) => f.write_str(" RET=FULL")?,
            Some(Ret::Hdrs) => f.write_str(" RET=HDRS")?,
            None => {}
        }
        if let Some(e) = &self.envid {
            write!(f, " ENVID={e}")?;
        }
        if let Some(a) = &self.auth {
            write!(f, " AUTH={a}")?;
        }
        if self.smtputf8 {
            f.write_str(" SMTPUTF8")?;
        }
        Ok(())
    }
}

/// `NOTIFY=` (RFC 3461 §4.1): NEVER, or a set of SUCCESS, FAILURE, DELAY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    Never,
    /// Which of SUCCESS, FAILURE, DELAY; at least one.
    On {
        success: bool,
        failure: bool,
        delay: bool,
    },
}

/// The ESMTP parameters of RCPT the module relays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT: `addr-type ";" xtext`, at most 500 characters.
    pub orcpt: Option<String>,
}

impl RcptParams {
    fn parse(params: Vec<(&str, Option<&str>)>) -> Result<Self, CommandError> {
        let bad = CommandError::BadParameter;
        let mut p = RcptParams::default();
        for (k, v) in params {
            match (k.to_ascii_uppercase().as_str(), v) {
                ("NOTIFY", Some(v)) => set_once(&mut p.notify, notify(v).ok_or(bad)?)?,
                ("ORCPT", Some(v)) => {
                    let (kind, addr) = v.split_once(';').ok_or(bad)?;
                    let kind_ok =
                        !kind.is_empty() && kind.chars().all(|c| c.is_ascii() && is_atext(c));
                    if v.len() > 500 || !kind_ok || addr.is_empty() || !is_xtext(addr) {
                        return Err(bad);
                    }
                    set_once(&mut p.orcpt, v.to_owned())?;
                }
                ("NOTIFY" | "ORCPT", None) => return Err(bad),
                _ => return Err(CommandError::UnknownParameter),
            }
        }
        Ok(p)
    }
}

fn notify(v: &str) -> Option<Notify> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::Never);
    }
    let (mut success, mut failure, mut delay) = (false, false, false);
    for item in v.split(',') {
        let slot = match item.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut success,
            "FAILURE" => &mut failure,
            "DELAY" => &mut delay,
            _ => return None,
        };
        if *slot {
            return None;
        }
        *slot = true;
    }
    Some(Notify::On {
        success,
        failure,
        delay,
    })
}

impl fmt::Display for RcptParams {
    /// Each parameter with its leading SP, in a fixed order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.notify {
            Some(Notify::Never) => f.write_str(" NOTIFY=NEVER")?,
            Some(Notify::On {
                success,
                failure,
                delay,
            }) => {
                let names = [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")];
                let list: Vec<&str> = names
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| *n)
                    .collect();
                write!(f, " NOTIFY={}", list.join(","))?;
            }
            None => {}
        }
        if let Some(o) = &self.orcpt {
            write!(f, " ORCPT={o}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(line: &[u8]) -> Result<Vec<u8>, CommandError> {
        let c = parse(line)?;
        Ok(c.canonical().expect("relayed verb").into_bytes())
    }

    #[test]
    fn a_2018_known_commands_are_rewritten_canonically() {
        assert_eq!(
            canon(b"mail from:<a@b.de> size=10").unwrap(),
            b"MAIL FROM:<a@b.de> SIZE=10\r\n"
        );
        assert_eq!(
            canon(b"MAIL FROM: <a@b.de> BODY=8bitmime SIZE=007 ret=hdrs ENVID=x+2B1 SMTPUTF8")
                .unwrap(),
            b"MAIL FROM:<a@b.de> SIZE=7 BODY=8BITMIME RET=HDRS ENVID=x+2B1 SMTPUTF8\r\n"
        );
        assert_eq!(canon(b"MAIL FROM:<>").unwrap(), b"MAIL FROM:<>\r\n");
        assert_eq!(
            canon(b"rcpt to:<@relay.de,@r2.de:x@y.de>").unwrap(),
            b"RCPT TO:<x@y.de>\r\n"
        );
        assert_eq!(
            canon(b"RCPT TO:<x@y.de> notify=delay,success ORCPT=rfc822;x+40y.de").unwrap(),
            b"RCPT TO:<x@y.de> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+40y.de\r\n"
        );
        assert_eq!(
            canon(b"RCPT TO:<\"a >b\"@y.de>").unwrap(),
            b"RCPT TO:<\"a >b\"@y.de>\r\n"
        );
        assert_eq!(
            canon(b"ehlo [192.168.1.5]").unwrap(),
            b"EHLO [192.168.1.5]\r\n"
        );
        assert_eq!(
            canon(b"EHLO [IPv6:2001:db8::1]").unwrap(),
            b"EHLO [IPv6:2001:db8::1]\r\n"
        );
        assert_eq!(canon(b"helo my_pc.local").unwrap(), b"HELO my_pc.local\r\n");
        assert_eq!(canon(b"noop whatever").unwrap(), b"NOOP\r\n");
        assert_eq!(canon(b"QUIT ").unwrap(), b"QUIT\r\n");
        assert_eq!(
            canon("RCPT TO:<jörg@bücher.de>".as_bytes()).unwrap(),
            "RCPT TO:<jörg@bücher.de>\r\n".as_bytes()
        );
    }

    #[test]
    fn a_2018_white_space_and_control_bytes_are_syntax_errors() {
        for line in [
            &b" DATA"[..],
            b"DATA\t",
            b"\tDATA",
            b"RCPT\tTO:<x@y.de>",
            b"RCPT\x0bTO:<x@y.de>",
            b" RCPT TO:<x@y.de>",
            b"RCPT  TO:<x@y.de>",
            b"RCPT TO:<x@y.de>\x00",
            b"MAIL FROM:<a\x1b@b.de>",
            b"NOOP\x0c",
            b"NOOP\rQUIT",
            b"NOOP\x7f",
            b"",
            "DÄTA".as_bytes(),
            b"\xff\xfe",
            "NOOP \u{85}".as_bytes(),
        ] {
            assert_eq!(parse(line), Err(CommandError::Syntax), "{line:?}");
        }
    }

    #[test]
    fn a_2018_unknown_and_not_relayed_verbs() {
        assert_eq!(parse(b"XUNKNOWN 1 2"), Err(CommandError::UnknownVerb));
        assert_eq!(parse(b"GET / HTTP/1.1"), Err(CommandError::UnknownVerb));
        assert_eq!(parse(b"vrfy x").unwrap(), Command::NotRelayed(Verb::Vrfy));
        assert_eq!(
            parse(b"BDAT 10 LAST").unwrap(),
            Command::NotRelayed(Verb::Bdat)
        );
        assert!(parse(b"EXPN x").unwrap().canonical().is_none());
        assert!(parse(b"DATA").unwrap().canonical().is_none());
    }

    #[test]
    fn bad_arguments_and_parameters() {
        let mail = Err(CommandError::BadArguments(Verb::Mail));
        let rcpt = Err(CommandError::BadArguments(Verb::Rcpt));
        assert_eq!(parse(b"MAIL FROM:a@b.de"), mail);
        assert_eq!(parse(b"MAIL FROM:<a@b.de>SIZE=1"), mail);
        assert_eq!(parse(b"MAIL FROM:<nodomain>"), mail);
        assert_eq!(parse(b"RCPT TO:<>"), rcpt);
        assert_eq!(parse(b"RCPT TO:<no-domain>"), rcpt);
        assert_eq!(parse(b"RCPT TO:<a b@c.de>"), rcpt);
        assert_eq!(parse(b"RCPT TO:<x@y.de"), rcpt);
        assert_eq!(parse(b"RCPT TO:<x..y@y.de>"), rcpt);
        assert_eq!(parse(b"RCPT TO:<x@-y.de>"), rcpt);
        assert_eq!(
            parse(b"DATA now"),
            Err(CommandError::BadArguments(Verb::Data))
        );
        assert_eq!(parse(b"EHLO"), Err(CommandError::BadArguments(Verb::Ehlo)));
        assert_eq!(
            parse(b"EHLO a b"),
            Err(CommandError::BadArguments(Verb::Ehlo))
        );
        assert_eq!(
            parse(b"EHLO a<b"),
            Err(CommandError::BadArguments(Verb::Ehlo))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.de> X-FOO=1"),
            Err(CommandError::UnknownParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.de> BODY=BINARYMIME"),
            Err(CommandError::UnknownParameter)
        );
        assert_eq!(
            parse(b"RCPT TO:<a@b.de> FOO"),
            Err(CommandError::UnknownParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.de> SIZE=x"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.de> SIZE=1 SIZE=2"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.de> SIZE=99999999999999999999"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.de> ENVID=a+zz"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(
            parse(b"RCPT TO:<a@b.de> NOTIFY=NEVER,DELAY"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(
            parse(b"RCPT TO:<a@b.de> ORCPT=x"),
            Err(CommandError::BadParameter)
        );
        assert_eq!(parse("MAIL FROM:<a@b.de> ENVID=ä".as_bytes()), mail);
    }

    #[test]
    fn auth_arguments() {
        let Command::Auth(a) = parse(b"auth plain AGEAYg==").unwrap() else {
            panic!("not AUTH");
        };
        assert_eq!(a.mechanism, "PLAIN");
        assert_eq!(a.initial_response.as_deref(), Some("AGEAYg=="));
        assert_eq!(parse(b"AUTH"), Err(CommandError::BadArguments(Verb::Auth)));
        assert_eq!(
            parse(b"AUTH PLAIN a b"),
            Err(CommandError::BadArguments(Verb::Auth))
        );
    }

    fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
        let verbs = prop::sample::select(vec![
            "MAIL", "mail", "RCPT", "rcpt", "EHLO", "helo", "NOOP", "RSET", "QUIT", "DATA", "VRFY",
        ]);
        let args = prop::sample::select(vec![
            "",
            " FROM:<a@b.de>",
            " TO:<x@y.de>",
            " FROM:<>",
            " TO:<\"q\\\"x\"@[1.2.3.4]>",
            " [192.168.1.5]",
            " host.example",
            " FROM:<a@b.de> SIZE=10 AUTH=<>",
            " TO:<x@y.de> NOTIFY=NEVER ORCPT=rfc822;x@y.de",
            " TO:<jörg@bücher.de>",
        ]);
        let tail = proptest::collection::vec(any::<u8>(), 0..6);
        (verbs, args, tail, any::<bool>()).prop_map(|(v, a, t, with_tail)| {
            let mut l = format!("{v}{a}").into_bytes();
            if with_tail {
                l.extend(t);
            }
            l
        })
    }

    proptest! {
        /// The canonical form is a fixed point of parse-then-serialise, and holds no control
        /// byte, whatever line it came from.
        #[test]
        fn a_2018_canonical_form_round_trips(line in prop_oneof![
            line_strategy(),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]) {
            if let Some(c) = parse(&line).ok().and_then(|c| c.canonical()) {
                let bytes = c.as_bytes();
                let body = bytes.strip_suffix(b"\r\n").expect("CRLF");
                let again = parse(body).expect("canonical form parses").canonical().expect("relayed");
                prop_assert_eq!(again.as_bytes(), bytes);
                let text = core::str::from_utf8(body).expect("UTF-8");
                prop_assert!(!text.chars().any(char::is_control));
            }
        }
    }
}
