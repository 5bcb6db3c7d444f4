//! The KOM-LE login-name grammar (KOM-LE-A_2010, Abb_MTA_Nutzername; POP3: KOM-LE-A_2032,
//! Abb_POP3_Nutzer_Name; gemSpec_CM_KOMLE V1.16 §3.3.2.2 and §3.4.2.2).
//!
//! A mail client cannot tell the Clientmodul where its MTA is or which card context to use, so
//! both ride in the user name. The optional fields differ between the two protocols (1.16):
//!
//! ```text
//! SMTP: user#host:port#MandantId#ClientSystemId#WorkplaceId[#KonnektorId][#…]          (A_21519-02)
//! POP3: user#host:port#MandantId#ClientSystemId#WorkplaceId[#UserId][#KonnektorId][#…] (A_21518-02)
//! ```
//!
//! `host` is a DNS name, an IPv4 address or a bracketed IPv6 literal (`[2001:db8::1]:465`).
//! An unused optional field that a later one follows is the placeholder `*`
//! (`…#7#*#Konn_1`: no UserId, KonnektorId `Konn_1`). The SMTP side has no UserId: signing
//! uses the SM-B only (A_2020), so its sixth field is the KonnektorId (A_21457); on the POP3
//! side the sixth is the UserId of a professional card (HBA) and the seventh the KonnektorId
//! (A_21517). Fields after those are ignored.

use core::fmt;

/// A parsed login name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName {
    /// The real account name at the mail service (the part before the first `#`).
    pub user: String,
    /// Host of the MTA or POP3 server, without brackets for IPv6 literals.
    pub host: String,
    pub port: u16,
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    /// POP3 only: the sixth field, if present and not `*` (needed for a HBA, §3.4.2.2).
    pub user_id: Option<String>,
    /// Which Konnektor serves this session in a multi-Konnektor setup (A_21457 SMTP, A_21517
    /// POP3); `None` means the configured default Konnektor.
    pub konnektor_id: Option<KonnektorId>,
}

/// Which protocol's login-name grammar applies: they differ in the optional fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginGrammar {
    /// `…#WorkplaceId[#KonnektorId]` (A_21519-02).
    Smtp,
    /// `…#WorkplaceId[#UserId][#KonnektorId]` (A_21518-02).
    Pop3,
}

/// The KonnektorId of a login name (A_21457, A_21517): a reference to one of the Konnektoren
/// the Clientmodul is configured for (`[konnektor.<id>]`), not an address itself, so a client
/// can only choose among configured Konnektoren.
///
/// Visible ASCII without `#` (the field separator); at most [`KonnektorId::MAX_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KonnektorId(Box<str>);

impl KonnektorId {
    /// Longest id accepted; configuration keys are short names.
    pub const MAX_LEN: usize = 64;

    /// Checks the characters of an id (the same rule for login names and configuration keys).
    pub fn new(id: &str) -> Result<Self, LoginNameError> {
        if id.is_empty()
            || id.len() > Self::MAX_LEN
            || id == "*"
            || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        {
            return Err(LoginNameError::InvalidKonnektorId);
        }
        Ok(Self(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KonnektorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a login name is incomplete; answered with 501 5.5.4 (SMTP) or -ERR (POP3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginNameError {
    MissingUser,
    MissingServerAddress,
    MissingPort,
    InvalidPort,
    InvalidHost,
    MissingMandantId,
    MissingClientSystemId,
    MissingWorkplaceId,
    /// The KonnektorId field holds characters no configured id can have.
    InvalidKonnektorId,
}

impl fmt::Display for LoginNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingUser => "Benutzername fehlt",
            Self::MissingServerAddress => {
                "Benutzername muss die Adresse und die Portnummer des Servers enthalten"
            }
            Self::MissingPort => "Benutzername muss die Portnummer des Servers enthalten",
            Self::InvalidPort => "Die Portnummer im Benutzernamen ist ungueltig",
            Self::InvalidHost => "Die Serveradresse im Benutzernamen ist ungueltig",
            Self::MissingMandantId => "Benutzername muss die MandantId enthalten",
            Self::MissingClientSystemId => "Benutzername muss die ClientSystemId enthalten",
            Self::MissingWorkplaceId => "Benutzername muss die WorkplaceId enthalten",
            Self::InvalidKonnektorId => "Die KonnektorId im Benutzernamen ist ungueltig",
        })
    }
}

impl LoginName {
    /// Parses a login name with the POP3 grammar (UserId, then KonnektorId). Kept for callers
    /// that build a call context for tests and demos; sessions use [`LoginName::parse_for`].
    pub fn parse(s: &str) -> Result<Self, LoginNameError> {
        Self::parse_for(LoginGrammar::Pop3, s)
    }

    /// Parses an SMTP login name (A_2010, A_21457, A_21519-02).
    pub fn parse_smtp(s: &str) -> Result<Self, LoginNameError> {
        Self::parse_for(LoginGrammar::Smtp, s)
    }

    /// Parses a POP3 login name (A_2032, A_21517, A_21518-02).
    pub fn parse_pop3(s: &str) -> Result<Self, LoginNameError> {
        Self::parse_for(LoginGrammar::Pop3, s)
    }

    /// Parses a login name with the grammar of `grammar`'s protocol.
    pub fn parse_for(grammar: LoginGrammar, s: &str) -> Result<Self, LoginNameError> {
        let mut fields = s.split('#');
        let user = fields.next().unwrap_or_default();
        if user.is_empty() {
            return Err(LoginNameError::MissingUser);
        }
        let server = fields.next().unwrap_or_default();
        if server.is_empty() {
            return Err(LoginNameError::MissingServerAddress);
        }
        let (host, port) = split_host_port(server)?;
        let mandant_id = required(fields.next(), LoginNameError::MissingMandantId)?;
        let client_system_id = required(fields.next(), LoginNameError::MissingClientSystemId)?;
        let workplace_id = required(fields.next(), LoginNameError::MissingWorkplaceId)?;
        let user_id = match grammar {
            LoginGrammar::Smtp => None,
            LoginGrammar::Pop3 => optional(fields.next()).map(str::to_owned),
        };
        let konnektor_id = optional(fields.next()).map(KonnektorId::new).transpose()?;
        Ok(Self {
            user: user.to_owned(),
            host,
            port,
            mandant_id,
            client_system_id,
            workplace_id,
            user_id,
            konnektor_id,
        })
    }
}

impl LoginName {
    /// The Konnektor call context this login name carries (MandantId, ClientSystemId,
    /// WorkplaceId and, for a professional card, UserId).
    pub fn call_context(&self) -> crate::konnektor::CallContext {
        crate::konnektor::CallContext {
            mandant_id: self.mandant_id.clone(),
            client_system_id: self.client_system_id.clone(),
            workplace_id: self.workplace_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

/// An optional field: absent, empty or the placeholder `*` means "not used" (A_21518-02).
fn optional(field: Option<&str>) -> Option<&str> {
    field.filter(|f| !f.is_empty() && *f != "*")
}

fn required(field: Option<&str>, missing: LoginNameError) -> Result<String, LoginNameError> {
    match field {
        Some(f) if !f.is_empty() => Ok(f.to_owned()),
        _ => Err(missing),
    }
}

fn split_host_port(server: &str) -> Result<(String, u16), LoginNameError> {
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(LoginNameError::InvalidHost)?;
        if host.parse::<core::net::Ipv6Addr>().is_err() {
            return Err(LoginNameError::InvalidHost);
        }
        let port = after.strip_prefix(':').ok_or(LoginNameError::MissingPort)?;
        (host, port)
    } else {
        let (host, port) = server.rsplit_once(':').ok_or(LoginNameError::MissingPort)?;
        if host.contains(':') {
            // An IPv6 literal must be bracketed, otherwise the port is ambiguous.
            return Err(LoginNameError::InvalidHost);
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(LoginNameError::MissingServerAddress);
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return Err(LoginNameError::InvalidHost);
    }
    if port.is_empty() {
        return Err(LoginNameError::MissingPort);
    }
    let port: u16 = port.parse().map_err(|_| LoginNameError::InvalidPort)?;
    if port == 0 {
        return Err(LoginNameError::InvalidPort);
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2010_spec_example() {
        let n = LoginName::parse("erik.mustermann@komle.de#mail.komle.de:465#1#KOM_LE#7").unwrap();
        assert_eq!(n.user, "erik.mustermann@komle.de");
        assert_eq!(n.host, "mail.komle.de");
        assert_eq!(n.port, 465);
        assert_eq!(n.mandant_id, "1");
        assert_eq!(n.client_system_id, "KOM_LE");
        assert_eq!(n.workplace_id, "7");
        assert_eq!(n.user_id, None);
    }

    fn konn(id: &str) -> Option<KonnektorId> {
        Some(KonnektorId::new(id).unwrap())
    }

    #[test]
    fn a_21518_02_pop3_user_id_is_the_sixth_and_konnektor_id_the_seventh() {
        let n = LoginName::parse_pop3("a@b.de#h:1#M#C#W#HBA-7#K1#more").unwrap();
        assert_eq!(n.user_id.as_deref(), Some("HBA-7"));
        assert_eq!(n.konnektor_id, konn("K1"));
        let n = LoginName::parse_pop3("a@b.de#h:1#M#C#W#*#K1").unwrap();
        assert_eq!(n.user_id, None);
        assert_eq!(n.konnektor_id, konn("K1"));
        let n = LoginName::parse_pop3("a@b.de#h:1#M#C#W#13").unwrap();
        assert_eq!((n.user_id.as_deref(), n.konnektor_id), (Some("13"), None));
    }

    #[test]
    fn a_21518_02_pop3_spec_examples() {
        let base =
            "erik.mustermann@hrst_domain.kim.telematik#hrst_domain.kim.telematik:995#1#KOM_LE#7";
        let cases = [
            ("", None, None),
            ("#13", Some("13"), None),
            ("#*#Konn_1", None, Some("Konn_1")),
            ("#13#Konn_1", Some("13"), Some("Konn_1")),
        ];
        for (tail, user_id, konnektor) in cases {
            let n = LoginName::parse_pop3(&format!("{base}{tail}")).unwrap();
            assert_eq!(n.user_id.as_deref(), user_id, "{tail}");
            assert_eq!(n.konnektor_id, konnektor.and_then(konn), "{tail}");
            assert_eq!(n.workplace_id, "7");
        }
    }

    #[test]
    fn a_21457_a_21519_02_smtp_sixth_field_is_the_konnektor_id_not_a_user_id() {
        let n = LoginName::parse_smtp(
            "erik.mustermann@hrst_domain.kim.telematik#hrst_domain.kim.telematik:465#1#KOM_LE#7#Konn_1",
        )
        .unwrap();
        assert_eq!(n.konnektor_id, konn("Konn_1"));
        assert_eq!(n.user_id, None);
        assert_eq!(n.call_context().user_id, None);
        let n = LoginName::parse_smtp("u#h:25#M#C#W").unwrap();
        assert_eq!(n.konnektor_id, None);
        let n = LoginName::parse_smtp("u#h:25#M#C#W#*#ignored").unwrap();
        assert_eq!(n.konnektor_id, None);
    }

    #[test]
    fn a_21457_a_21517_konnektor_id_with_bad_characters_is_refused() {
        for grammar in [LoginGrammar::Smtp, LoginGrammar::Pop3] {
            let prefix = match grammar {
                LoginGrammar::Smtp => "u#h:25#M#C#W#",
                LoginGrammar::Pop3 => "u#h:25#M#C#W#*#",
            };
            for bad in ["Konn 1", "K\u{7f}", "Kön", &"k".repeat(65)] {
                assert_eq!(
                    LoginName::parse_for(grammar, &format!("{prefix}{bad}")),
                    Err(LoginNameError::InvalidKonnektorId),
                    "{grammar:?} {bad}"
                );
            }
        }
        assert!(KonnektorId::new("10.0.0.7").is_ok());
        assert!(KonnektorId::new("konn-2.praxis").is_ok());
    }

    #[test]
    fn a_2010_ipv6_literal_and_ipv4_hosts() {
        let n = LoginName::parse("u#[2001:db8::1]:587#M#C#W").unwrap();
        assert_eq!((n.host.as_str(), n.port), ("2001:db8::1", 587));
        let n = LoginName::parse("u#127.0.0.1:2465#M#C#W").unwrap();
        assert_eq!((n.host.as_str(), n.port), ("127.0.0.1", 2465));
        assert_eq!(
            LoginName::parse("u#2001:db8::1:587#M#C#W"),
            Err(LoginNameError::InvalidHost)
        );
        assert_eq!(
            LoginName::parse("u#[nonsense]:587#M#C#W"),
            Err(LoginNameError::InvalidHost)
        );
    }

    #[test]
    fn a_2010_missing_parts_are_reported_precisely() {
        use LoginNameError::*;
        let cases = [
            ("mustermann@komle.de", MissingServerAddress),
            ("#h:1#M#C#W", MissingUser),
            ("u#h#M#C#W", MissingPort),
            ("u#h:#M#C#W", MissingPort),
            ("u#h:99999#M#C#W", InvalidPort),
            ("u#h:0#M#C#W", InvalidPort),
            ("u#:25#M#C#W", MissingServerAddress),
            ("u#h:25", MissingMandantId),
            ("u#h:25#M", MissingClientSystemId),
            ("u#h:25#M#C", MissingWorkplaceId),
            ("u#h:25#M#C#", MissingWorkplaceId),
            ("u#h:25##C#W", MissingMandantId),
            ("u#ho st:25#M#C#W", InvalidHost),
        ];
        for (input, want) in cases {
            assert_eq!(LoginName::parse(input), Err(want), "{input}");
        }
    }
}
